"""``yaml-workflow submit`` and ``yaml-workflow worker``: the Celery fleet."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .. import client
from ..exceptions import EXIT_FAILED, EXIT_OK, UsageError, WaitTimeout
from ..settings import get_settings, use_settings
from .live import make_observer
from .output import check_output_target, dump, print_result
from .run_cmd import add_run_flags, check_resume_flags, collect_params


def add_parser(sub: Any) -> None:
    """Register `submit` and `worker`."""
    parser = sub.add_parser("submit", help="run a workflow on the Celery fleet", allow_abbrev=False)
    parser.add_argument("workflow", type=Path, nargs="?",
                        help="the workflow YAML file (with --resume: optional, to compare against)")
    add_run_flags(parser)
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="continue a failed, cancelled or stalled run on the fleet")
    parser.add_argument("--wait", action="store_true", help="follow the run and exit with its outcome")
    parser.add_argument("--timeout", type=float, metavar="S", help="with --wait: stop waiting after S seconds (exit 4)")
    parser.add_argument("--queue", metavar="Q", help="the Celery queue of the run's steps (a step's `queue` wins)")
    parser.add_argument("--idempotency-key", metavar="KEY",
                        help="one run per KEY: a second submit with it returns (and with --wait "
                             "follows) the first one's run (YAML_WORKFLOW_IDEMPOTENCY_TTL)")
    parser.add_argument("--no-export-env", action="store_true",
                        help="do not pass this environment to the run (workers use their own)")
    parser.set_defaults(handler=handle_submit, accepts_extra=True)

    worker = sub.add_parser("worker", help="start a Celery worker of the fleet", allow_abbrev=False)
    worker.add_argument("--concurrency", "-c", type=int, help="worker processes/threads")
    worker.add_argument("--queues", "-Q", metavar="A,B", help="queues to consume (default: celery)")
    worker.add_argument("--pool", "-P", choices=("prefork", "solo", "threads"), default="prefork")
    worker.add_argument("--hostname", "-n", metavar="H", help="the worker's node name (name@host)")
    worker.add_argument("--loglevel", "-l", default="INFO")
    worker.add_argument("--without-mingle", action="store_true", help="skip the start-up sync with other workers")
    worker.add_argument("--without-gossip", action="store_true", help="do not follow other workers' events")
    worker.add_argument("--without-heartbeat", action="store_true", help="send no worker heartbeats")
    worker.set_defaults(handler=handle_worker)


def handle_submit(args: argparse.Namespace, extra: list[str]) -> int:
    """Submit (and maybe follow) a run; 0 completed, 1 failed, 2 refused, 3 unreachable, 4 timeout."""
    params = collect_params(args, extra)
    check_resume_flags(args, bool(args.resume))
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout needs --wait")
    client.check_timeout(args.timeout)  # before anything is enqueued
    check_output_target(args.output)
    if args.resume:
        if args.idempotency_key is not None:
            raise UsageError("--idempotency-key starts a new run; --resume continues one",
                             hint="drop one of them")
        return _resume(args, params)
    if args.workflow is None:
        raise UsageError("submit needs a workflow file", hint="yaml-workflow submit WORKFLOW.yaml [k=v ...]")
    workflow = client.load(args.workflow)
    skip = [s.strip() for s in args.skip_steps.split(",") if s.strip()]
    submitted = client.submit(workflow, params, base_dir=args.base_dir, workspace=args.workspace,
                              flow=args.flow, start_from=args.start_from, skip_steps=skip,
                              queue=args.queue, export_env=not args.no_export_env,
                              idempotency_key=args.idempotency_key)
    run_id = submitted.run_id
    as_text = args.format == "text"
    if as_text:
        print(run_id, flush=True)
    if submitted.existing:
        print(f"run {run_id} was already submitted with idempotency key '{args.idempotency_key}'; "
              + ("following it" if args.wait else "nothing new was started"), file=sys.stderr, flush=True)
    if not args.wait:
        if not as_text:
            sys.stdout.write(dump({"run_id": run_id, "status": "submitted", "workflow": workflow.name,
                                   "workspace": submitted.workspace, "existing": submitted.existing},
                                  args.format))
        return EXIT_OK
    # The same display as `run`: rich bars on a terminal, else one line per event.
    observer = make_observer(quiet=args.quiet, fmt=args.format)
    try:
        result = client.wait_for(run_id, timeout=args.timeout, observer=observer)
    except WaitTimeout:
        if not as_text:
            sys.stdout.write(dump({"run_id": run_id, "status": "running", "workflow": workflow.name,
                                   "workspace": submitted.workspace, "error": "timed out waiting"},
                                  args.format))
        print(f"error: gave up waiting after {args.timeout:g}s; run {run_id} goes on "
              f"(follow it with `yaml-workflow status {run_id}`)", file=sys.stderr)
        return WaitTimeout.exit_code
    finally:
        stop = getattr(observer, "stop", None)
        if stop is not None:
            stop()
    print_result(result, args.format, args.output)
    sys.stdout.flush()
    return EXIT_OK if result.ok else EXIT_FAILED


def _resume(args: argparse.Namespace, params: dict[str, str]) -> int:
    """`submit --resume RUN_ID`: the run holds its workflow; a file given is compared."""
    from ..state.locate import check_run_reference

    check_run_reference(args.resume)
    for flag in ("flow", "skip_steps", "queue"):
        if getattr(args, flag):
            raise UsageError(f"--{flag.replace('_', '-')} is the run's own on --resume",
                             hint="a resumed run keeps its flow, skips, workspace and queue")
    if args.workflow is not None and "=" in args.workflow.name and not args.workflow.exists():
        # No file with --resume: the first k=v landed in the file's place.
        params = {**collect_params(argparse.Namespace(params=[str(args.workflow)]), []), **params}
        args.workflow = None
    observer = make_observer(quiet=args.quiet, fmt=args.format) if args.wait else None
    try:
        # --workspace names the run's workspace; --base-dir a folder to look for it in.
        result = client.resume(args.resume, params, workflow=args.workflow,
                               workspace=args.workspace, base_dir=args.base_dir,
                               from_step=args.from_step, override_params=args.override_params,
                               force=args.force, fleet=True, wait=args.wait, timeout=args.timeout,
                               observer=observer)
    finally:
        stop = getattr(observer, "stop", None)
        if stop is not None:
            stop()
    if args.format == "text":
        print(args.resume, flush=True)
    if result is None:
        if args.format != "text":
            sys.stdout.write(dump({"run_id": args.resume, "status": "submitted"}, args.format))
        return EXIT_OK
    print_result(result, args.format, args.output)
    sys.stdout.flush()
    return EXIT_OK if result.ok else EXIT_FAILED


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The `celery worker` command line equivalent to these flags (events on: -E)."""
    argv = ["worker", "-E", f"--loglevel={args.loglevel}", f"--pool={args.pool}"]
    if args.concurrency:
        argv.append(f"--concurrency={args.concurrency}")
    if args.queues:
        argv.append(f"--queues={args.queues}")
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    for flag in ("without_mingle", "without_gossip", "without_heartbeat"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    return argv


def handle_worker(args: argparse.Namespace) -> int:
    """Run a worker in this process until it is stopped."""
    settings = get_settings()
    if settings.soft_shutdown_timeout > 0:
        # SIGTERM (docker stop, Kubernetes) then starts Celery's soft shutdown: running
        # steps get that many seconds, then go back to the queue for another worker.
        # billiard reads this when it is first imported, below.
        os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    try:
        from workers.app import app
    except ImportError as err:
        raise UsageError(f"the fleet needs Celery and redis: {err}",
                         hint="pip install 'yaml-workflow[fleet]'") from None
    use_settings(settings.model_copy(update={"worker_pool": args.pool}))
    app.worker_main(worker_argv(args))
    return EXIT_OK
