"""Inspecting and repairing runs: ``status``, ``runs``, ``logs``, ``cancel``, ``retry``, ``skip``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..exceptions import EXIT_FAILED, EXIT_OK, UsageError
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


def _locate(args: argparse.Namespace) -> Any:
    from ..state.locate import locate_run

    roots = [args.base_dir] if getattr(args, "base_dir", None) else None
    return locate_run(args.run, roots=roots)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def step_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per planned step (pending ones too), in plan order."""
    records = doc["execution_state"]["step_outputs"]
    order = list((doc.get("plan") or {}).get("order") or records)
    order += [n for n in records if n not in order]
    rows = []
    for name in order:
        record = records.get(name, {})
        rows.append({
            "step": name,
            "status": record.get("status", "pending"),
            "attempts": record.get("attempt"),
            "duration": record.get("duration"),
            "host": record.get("host"),
            "error": record.get("error_message") or record.get("error"),
            "reason": record.get("reason"),
            "progress": record.get("progress"),
        })
    return rows


def status_document(located: Any) -> dict[str, Any]:
    """What `status --format json` prints."""
    from ..state.progress import run_progress

    doc = located.doc
    rows = step_rows(doc)
    done = sum(1 for r in rows if r["status"] in ("completed", "skipped", "failed"))
    return {
        "run_id": located.run_id,
        "workflow": doc.get("name"),
        "status": doc.get("status"),
        "workspace": str(located.workspace) if located.workspace else doc.get("workspace"),
        "start_time": doc.get("start_time"),
        "last_updated": doc.get("last_updated"),
        "current_step": doc["execution_state"].get("current_step"),
        "failed_step": doc["execution_state"].get("failed_step"),
        "steps_done": done,
        "steps_total": len(rows),
        "lost_by_store": located.lost_by_store,
        "flags": doc.get("flags") or {},
        "history": doc.get("history") or [],
        "progress": run_progress(doc),
        "steps": rows,
    }


def print_status(info: dict[str, Any]) -> None:
    """The text form of `status`."""
    print(f"run {info['run_id']}  workflow {info['workflow']}  status {info['status']}  "
          f"({info['steps_done']}/{info['steps_total']} steps)")
    print(f"workspace {info['workspace']}  started {info['start_time']}  updated {info['last_updated']}")
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
        detail = row["error"] or row["reason"] or ""
        progress = row.get("progress")
        if isinstance(progress, dict) and progress and row["status"] == "running":
            detail = f"{progress.get('done')}/{progress.get('total')} {progress.get('message') or ''}"
        duration = f"{row['duration']:.2f}s" if isinstance(row["duration"], (int, float)) else ""
        print(f"{row['step']:<28} {row['status']:<10} {row['attempts'] or '':>3} {duration:>8}  {short(detail, 80)}")


def handle_status(args: argparse.Namespace) -> int:
    """Print a run's state; exit 0 when found (2 when not, via RunNotFound)."""
    if args.watch and args.format == "text" and sys.stdout.isatty():
        from .watch import watch

        # On a terminal: live bars; elsewhere the text below is printed again each second.
        watch(lambda: status_document(_locate(args)), interval=WATCH_INTERVAL)
        return EXIT_OK
    while True:
        info = status_document(_locate(args))
        if args.format == "text":
            print_status(info)
        else:
            sys.stdout.write(dump(info, args.format))
        if not args.watch or info["status"] not in ("running",):
            return EXIT_OK
        sys.stdout.flush()
        time.sleep(WATCH_INTERVAL)
        if args.format == "text":
            print()


def handle_runs(args: argparse.Namespace) -> int:
    """List the runs the store knows."""
    from ..state.store import default_state_url, open_store

    store = open_store(default_state_url(), root=str(args.base_dir) if args.base_dir else None)
    rows = store.list_runs(limit=args.limit)
    if args.format != "text":
        sys.stdout.write(dump(rows, args.format))
        return EXIT_OK
    if not rows:
        print("no runs")
        return EXIT_OK
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    print(f"{'RUN':<18} {'WORKFLOW':<24} {'STATUS':<10} {'AGE':>6}  WORKSPACE")
    for row in rows:
        age = ""
        if row.get("start_time"):
            started = datetime.fromisoformat(str(row["start_time"]).replace("Z", "+00:00"))
            age = _age((now - started).total_seconds())
        print(f"{row['workflow_id']:<18} {short(row.get('name'), 24):<24} {row.get('status') or '':<10} "
              f"{age:>6}  {row.get('workspace') or ''}")
    return EXIT_OK


def handle_logs(args: argparse.Namespace) -> int:
    """Print step logs from the run's workspace."""
    from ..engine.step_log import log_path

    located = _locate(args)
    if located.workspace is None:
        raise UsageError(f"run {located.run_id} has no workspace on this machine")
    steps = [args.step] if args.step else [r["step"] for r in step_rows(located.doc)]
    shown = 0
    for step in steps:
        path = log_path(located.workspace, step)
        if path.is_file():
            print(f"==> {step} ({path}) <==")
            print(path.read_text(encoding="utf-8", errors="replace"), end="")
            shown += 1
    if args.step and not shown:
        raise UsageError(f"no log for step '{args.step}' in {located.workspace}",
                         hint="the step has not run yet, or the name is wrong")
    return EXIT_OK


def handle_cancel(args: argparse.Namespace) -> int:
    """Record the run as cancelled; running executors stop before their next step."""
    from ..executors.control import cancel_run

    located = _locate(args)
    cancel_run(located)
    print(f"run {located.run_id} cancelled")
    return EXIT_OK


def handle_repair(args: argparse.Namespace) -> int:
    """`retry` / `skip` a step of a run, then continue it where it ran (locally or on the fleet)."""
    from ..executors.control import repair_run
    from .output import StepPrinter, print_result

    located = _locate(args)
    result = repair_run(located, args.repair, args.step, observer=StepPrinter(), wait=args.wait)
    if result is None:
        print(located.run_id)
        return EXIT_OK
    print_result(result, args.format)
    return EXIT_OK if result.ok else EXIT_FAILED
