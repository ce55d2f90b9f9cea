"""Inspecting and repairing runs: ``status``, ``runs``, ``logs``, ``cancel``, ``retry``, ``skip``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .. import client
from ..exceptions import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE
from ..state.document import parse_iso
from .output import FORMATS, dump, short

WATCH_INTERVAL = 1.0


def add_parser(sub: Any) -> None:
    """Register the inspection commands."""
    status = sub.add_parser("status", help="a run's state (RUN = run id or workspace path)")
    status.add_argument("run")
    status.add_argument("--format", choices=FORMATS, default="text")
    status.add_argument("--watch", action="store_true", help="refresh until the run ends")
    status.add_argument("--base-dir", type=Path, help="where to look for workspaces")
    status.set_defaults(handler=handle_status)

    runs = sub.add_parser("runs", help="runs in the store, with status and age")
    runs.add_argument("--base-dir", type=Path, help="workspaces root (file store)")
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--status", help="only runs with this status")
    runs.add_argument("--workflow", help="only runs of this workflow")
    runs.add_argument("--schedule", metavar="NAME", help="only runs started by this schedule")
    runs.add_argument("--format", choices=FORMATS, default="text")
    runs.set_defaults(handler=handle_runs)

    logs = sub.add_parser("logs", help="a run's step logs, wherever the step ran")
    logs.add_argument("run")
    logs.add_argument("--step", help="only this step")
    logs.add_argument("--base-dir", type=Path)
    logs.set_defaults(handler=handle_logs)

    cancel = sub.add_parser("cancel", help="cancel a run: no further step starts")
    cancel.add_argument("run")
    cancel.add_argument("--base-dir", type=Path)
    cancel.set_defaults(handler=handle_cancel)

    for name, helptext in (("retry", "run a failed step again and continue"),
                           ("skip", "mark a step skipped and continue")):
        parser = sub.add_parser(name, help=helptext)
        parser.add_argument("run")
        parser.add_argument("--step", required=True)
        parser.add_argument("--base-dir", type=Path)
        parser.add_argument("--wait", action="store_true", help="fleet runs: follow until the end")
        parser.add_argument("--format", choices=FORMATS, default="text")
        parser.set_defaults(handler=handle_repair, repair=name)


def _base(args: argparse.Namespace) -> Any:
    return getattr(args, "base_dir", None)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def print_status(info: dict[str, Any]) -> None:
    """The text form of `status` (``info`` is a RunStatus as JSON)."""
    print(f"run {info['run_id']}  workflow {info['workflow']}  status {info['status']}  "
          f"({info['steps_done']}/{info['steps_total']} steps)")
    print(f"workspace {info['workspace']}  started {info['start_time']}  updated {info['last_updated']}")
    print(f"store {info['store']}  trigger {describe_trigger(info.get('trigger'))}")
    progress = info["progress"]
    eta = f", ETA {progress['eta']:.0f}s" if progress.get("eta") is not None else ""
    print(f"progress {progress['percent']}% ({progress['done']}/{progress['total']}), "
          f"elapsed {progress['elapsed'] or 0:.1f}s{eta}, errors {progress['errors']}, retries {progress['retries']}")
    if info["lost_by_store"]:
        print("warning: the state store (Redis) no longer has this run; shown from the workspace's "
              "JSON mirror. `submit --resume RUN` rebuilds it there.")
    for flag, value in info["flags"].items():
        print(f"flag: {flag}: {value}")
    print(f"{'STEP':<28} {'STATUS':<10} {'TRY':>3} {'TIME':>8}  DETAIL")
    for row in info["steps"]:
        detail = row["stalled"] or row["error"] or row["reason"] or ""
        progress = row.get("progress")
        if isinstance(progress, dict) and progress and row["status"] == "running" and not row["stalled"]:
            detail = f"{progress.get('done')}/{progress.get('total')} {progress.get('message') or ''}"
        status = "stalled" if row["stalled"] else row["status"]
        duration = f"{row['duration']:.2f}s" if isinstance(row["duration"], (int, float)) else ""
        print(f"{row['step']:<28} {status:<10} {row['attempts'] or '':>3} {duration:>8}  {short(detail, 80)}")


def describe_trigger(trigger: dict[str, Any] | None) -> str:
    """A run's trigger in a few words: ``manual``, ``watch``, ``schedule NAME @ TICK``."""
    if not trigger:
        return "manual"
    kind = str(trigger.get("type") or "manual")
    if kind == "schedule":
        return f"schedule {trigger.get('name')} @ {trigger.get('tick')}"
    return kind


def _status(args: argparse.Namespace) -> dict[str, Any]:
    found = client.status(args.run, base_dir=_base(args))
    if found.warning:
        print(f"warning: {found.warning}; shown from its workspace", file=sys.stderr)
    return found.model_dump(mode="json")


def _notice(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def handle_status(args: argparse.Namespace) -> int:
    """Print a run's state; exit 0 when found (2 when not, via RunNotFound)."""
    if not args.watch:
        _print(_status(args), args.format)
        return EXIT_OK
    # --watch rides out a Redis outage: one line when it is lost, one when it is back.
    snapshots = (s.model_dump(mode="json") for s in
                 client.watch(args.run, base_dir=_base(args), interval=WATCH_INTERVAL, on_notice=_notice))
    if args.format == "text" and sys.stdout.isatty():
        from .watch import watch

        # On a terminal: live bars; elsewhere the text below is printed again each second.
        watch(lambda: next(snapshots), interval=0)
        return EXIT_OK
    for number, info in enumerate(snapshots):
        if number and args.format == "text":
            print()
        _print(info, args.format)
        sys.stdout.flush()
    return EXIT_OK


def _print(info: dict[str, Any], fmt: str) -> None:
    if fmt == "text":
        print_status(info)
    else:
        sys.stdout.write(dump(info, fmt))


def handle_runs(args: argparse.Namespace) -> int:
    """List the runs of every configured place (the state Redis, the workspaces)."""
    listing = client.runs(base_dir=args.base_dir, limit=args.limit, status=args.status,
                          workflow=args.workflow, schedule=args.schedule)
    for warning in listing.warnings:
        print(f"warning: {warning}; listing the workspaces only", file=sys.stderr)
    code = EXIT_UNREACHABLE if listing.warnings else EXIT_OK
    if args.format != "text":
        sys.stdout.write(dump(listing.model_dump(mode="json"), args.format))
        return code
    print(f"# read: {'; '.join(listing.sources)}")
    if not listing.runs:
        print("no runs")
        return code
    now = time.time()
    print(f"{'RUN':<18} {'WORKFLOW':<24} {'STATUS':<10} {'AGE':>6}  {'STORE':<10} {'TRIGGER':<10} WORKSPACE")
    for row in listing.runs:
        started = parse_iso(row.start_time)
        age = _age(now - started) if started is not None else ""
        store = "redis" if row.store != "workspace" else "workspace"
        print(f"{row.run_id:<18} {short(row.workflow, 24):<24} {row.status or '':<10} "
              f"{age:>6}  {store:<10} {_short_trigger(row.trigger):<10} {row.workspace or ''}")
    return code


def _short_trigger(trigger: dict[str, Any] | None) -> str:
    """The TRIGGER column of `runs`: the type, and for a schedule its tick."""
    if trigger and trigger.get("type") == "schedule":
        return f"schedule@{trigger.get('tick')}"
    return str((trigger or {}).get("type") or "manual")


def handle_logs(args: argparse.Namespace) -> int:
    """Print step logs from the run's workspace."""
    for entry in client.logs(args.run, step=args.step, base_dir=_base(args)):
        print(f"==> {entry.step} ({entry.path}) <==")
        print(entry.text, end="")
        if entry.truncated:
            print(f"\n... (cut: the whole log is {entry.path})")
    return EXIT_OK


def handle_cancel(args: argparse.Namespace) -> int:
    """Record the run as cancelled; running executors stop before their next step."""
    outcome = client.cancel(args.run, base_dir=_base(args))
    print(outcome.message)
    return EXIT_OK if outcome.status == "cancelled" else EXIT_REFUSED


def handle_repair(args: argparse.Namespace) -> int:
    """`retry` / `skip` a step of a run, then continue it where it ran (locally or on the fleet)."""
    from .output import StepPrinter, print_result

    repair = client.retry if args.repair == "retry" else client.skip
    outcome = repair(args.run, args.step, wait=args.wait, observer=StepPrinter(), base_dir=_base(args))
    if outcome.result is None:
        print(outcome.run_id)
        print(outcome.message, file=sys.stderr)
        return EXIT_OK
    print_result(outcome.result, args.format)
    return EXIT_OK if outcome.result.ok else EXIT_FAILED
