"""``yaml-workflow schedule add|list|pause|resume|remove|run-now`` and ``yaml-workflow beat``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import client
from ..exceptions import EXIT_OK, UsageError
from .output import FORMATS, dump, short


def add_parser(sub: Any) -> None:
    """Register `schedule` and `beat`."""
    parser = sub.add_parser("schedule", help="schedules on the fleet (cron, every) fired by `beat`")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser("add", help="check a workflow file with `schedule:` and store it in Redis")
    add.add_argument("workflow", type=Path)
    add.add_argument("--format", choices=FORMATS, default="text")
    listing = actions.add_parser("list", help="schedules, their next tick and last run")
    listing.add_argument("--recent", type=int, default=0, metavar="N", help="also the last N log entries of each")
    listing.add_argument("--format", choices=FORMATS, default="text")
    for name, helptext in (("pause", "stop firing a schedule"), ("resume", "fire a paused schedule again"),
                           ("remove", "forget a schedule (its runs stay)"),
                           ("run-now", "fire a tick now, paused or not, and print its run id")):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("name")
        action.add_argument("--format", choices=FORMATS, default="text")
        if name == "run-now":
            action.add_argument("--timeout", type=float, default=60.0, metavar="S",
                                help="wait this long for a worker to make the run (exit 4 past it)")
    parser.set_defaults(handler=handle_schedule)

    beat = sub.add_parser("beat", help="run the scheduler that fires schedules (one lock holder among replicas)")
    beat.add_argument("--loglevel", "-l", default="INFO")
    beat.set_defaults(handler=handle_beat)


def _print(info: client.ScheduleInfo, fmt: str) -> None:
    if fmt != "text":
        sys.stdout.write(dump(info.model_dump(mode="json"), fmt))
        return
    state = "paused" if info.paused else f"next tick {info.next_tick}"
    print(f"schedule {info.name}: {info.timing}, catchup {info.catchup}, "
          f"max_active_runs {info.max_active_runs}; {state}")


def _last(info: client.ScheduleInfo) -> str:
    last = info.last
    if not last:
        return "-"
    if last.get("outcome") == "run":
        return f"{last.get('tick')} run {last.get('run_id')} {info.last_status or ''}".rstrip()
    return f"{last.get('tick')} {last.get('outcome')}: {last.get('reason')}"


def handle_schedule(args: argparse.Namespace) -> int:
    """One `schedule` action."""
    if args.action is None:
        raise UsageError("schedule needs an action", hint="add, list, pause, resume, remove or run-now")
    if args.action == "add":
        _print(client.add_schedule(args.workflow), args.format)
    elif args.action == "list":
        found = client.schedules(recent=args.recent)
        if args.format != "text":
            sys.stdout.write(dump([s.model_dump(mode="json") for s in found], args.format))
            return EXIT_OK
        if not found:
            print("no schedules (add one with `yaml-workflow schedule add FILE`)")
            return EXIT_OK
        print(f"{'NAME':<20} {'WHEN':<28} {'STATE':<7} {'NEXT TICK':<26} LAST")
        for info in found:
            print(f"{short(info.name, 20):<20} {short(info.timing, 28):<28} "
                  f"{'paused' if info.paused else 'active':<7} {info.next_tick or '-':<26} {_last(info)}")
            for entry in info.recent:
                detail = entry.get("run_id") or entry.get("reason") or ""
                print(f"    {entry.get('tick')} {entry.get('outcome')} {detail}")
    elif args.action in ("pause", "resume"):
        act = client.pause_schedule if args.action == "pause" else client.resume_schedule
        _print(act(args.name), args.format)
    elif args.action == "remove":
        client.remove_schedule(args.name)
        print(f"schedule {args.name} removed")
    else:
        fired = client.run_now(args.name, timeout=args.timeout)
        if args.format != "text":
            sys.stdout.write(dump(fired.model_dump(mode="json"), args.format))
        elif fired.run_id:
            print(fired.run_id)
            print(f"schedule {fired.name}: tick {fired.tick} started run {fired.run_id}", file=sys.stderr)
        else:
            print(f"schedule {fired.name}: tick {fired.tick} {fired.outcome}: {fired.reason}", file=sys.stderr)
    return EXIT_OK


def handle_beat(args: argparse.Namespace) -> int:
    """Run the beat until stopped."""
    try:
        from ..executors.celery.app import default_app
        from ..executors.celery.beat import run_beat
    except ImportError as err:
        raise UsageError(f"the beat needs Celery and redis: {err}",
                         hint="pip install 'yaml-workflow[fleet]'") from None
    run_beat(default_app(), args.loglevel)
    return EXIT_OK
