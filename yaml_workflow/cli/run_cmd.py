"""``yaml-workflow run``: run a workflow in this process (or resume one)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import client
from ..exceptions import EXIT_FAILED, EXIT_OK, ParamError, UsageError
from .live import make_observer
from .output import FORMATS, check_output_target, print_result


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `run` and `submit`."""
    parser.add_argument("params", nargs="*", metavar="k=v", help="workflow parameters (also --k=v)")
    parser.add_argument("--workspace", type=Path, help="the run's workspace directory")
    parser.add_argument("--base-dir", type=Path, help="where run workspaces are created (default: runs)")
    parser.add_argument("--flow", help="the flow to run (default: flows.default, else every step)")
    parser.add_argument("--start-from", metavar="STEP", help="a fresh run beginning at STEP")
    parser.add_argument("--skip-steps", metavar="A,B", default="", help="steps to skip, comma-separated")
    parser.add_argument("--from-step", metavar="STEP", help="with --resume: run again from STEP")
    parser.add_argument("--override-params", action="store_true",
                        help="with --resume: the k=v arguments replace the first run's params")
    parser.add_argument("--force", action="store_true",
                        help="with --resume: run steps whose definition changed again")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument("--output", metavar="FILE", help="also write the result document to FILE")
    parser.add_argument("--quiet", "-q", action="store_true", help="no step lines")


def add_parser(sub: Any) -> None:
    """Register `run`."""
    parser = sub.add_parser("run", help="run a workflow locally", allow_abbrev=False)
    parser.add_argument("workflow", type=Path, nargs="?", help="the workflow YAML file")
    add_run_flags(parser)
    parser.add_argument("--resume", action="store_true", help="continue a failed or interrupted run")
    parser.add_argument("--dry-run", action="store_true", help="show what would run; write nothing")
    parser.add_argument("--watch", action="store_true",
                        help="run now, then again each time the file (or a file it imports) changes")
    parser.add_argument("--watch-restart", action="store_true",
                        help="with --watch: a change cancels the run in progress and starts again")
    # Set by `run --watch` on the runs it starts, so they record `trigger: {type: watch}`.
    parser.add_argument("--trigger-type", choices=("manual", "watch"), default="manual", help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle, accepts_extra=True)


def collect_params(args: argparse.Namespace, extra: list[str]) -> dict[str, str]:
    """``k=v`` positionals and ``--k=v`` flags; anything else is a usage error."""
    for item in extra:
        if "=" not in item or (item.startswith("-") and not item.startswith("--")):
            raise UsageError(f"unrecognized argument '{item}'",
                             hint="parameters are name=value or --name=value")
    try:
        from ..spec.params import parse_assignments

        return parse_assignments([*args.params, *extra])
    except ParamError as err:
        raise UsageError(err.message, hint=err.hint) from None


def check_resume_flags(args: argparse.Namespace, resume: bool) -> None:
    """--from-step, --override-params and --force only mean something with --resume."""
    for flag in ("from_step", "override_params", "force"):
        if getattr(args, flag) and not resume:
            raise UsageError(f"--{flag.replace('_', '-')} needs --resume")
    if resume and args.start_from:
        raise UsageError("--start-from starts a fresh run; with --resume use --from-step")


def handle(args: argparse.Namespace, extra: list[str]) -> int:
    """Run (or resume, or dry-run) a workflow; exit 0 completed, 1 failed."""
    params = collect_params(args, extra)
    check_resume_flags(args, args.resume)
    check_output_target(args.output)
    if args.workflow is None and not (args.resume and args.workspace):
        raise UsageError("run needs a workflow file", hint="yaml-workflow run WORKFLOW.yaml [k=v ...]")
    if args.watch_restart and not args.watch:
        raise UsageError("--watch-restart needs --watch")
    if args.watch:
        from .run_watch import watch_and_run

        return watch_and_run(args, params)
    workflow = client.load(args.workflow) if args.workflow is not None else None
    skip = [s.strip() for s in args.skip_steps.split(",") if s.strip()]
    if args.dry_run:
        from .dry_run import dry_run

        return dry_run(workflow, params, args, skip)
    observer = make_observer(quiet=args.quiet, fmt=args.format)
    try:
        if args.resume:
            result = client.resume(None, params, workflow=workflow, workspace=args.workspace,
                                   base_dir=args.base_dir, from_step=args.from_step,
                                   override_params=args.override_params, force=args.force,
                                   observer=observer)
        else:
            assert workflow is not None
            result = client.run(workflow, params, base_dir=args.base_dir, workspace=args.workspace,
                                flow=args.flow, start_from=args.start_from, skip_steps=skip,
                                observer=observer, trigger=client.make_trigger(args.trigger_type))
    finally:
        stop = getattr(observer, "stop", None)
        if stop is not None:
            stop()
    assert result is not None
    print_result(result, args.format, args.output)
    sys.stdout.flush()
    return EXIT_OK if result.ok else EXIT_FAILED
