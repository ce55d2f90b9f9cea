"""Submit a run to the fleet and follow it.

``submit_run`` refuses everything it can before it creates anything (params, secrets,
plan options, unreachable broker or Redis, a step limit the visibility timeout cannot
cover); then it creates the workspace, the run in the store, the compiled spec, and
enqueues the first steps.  Workers need neither the YAML file nor the submitter.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis
from kombu.exceptions import OperationalError

from ...engine.plan import build_plan
from ...engine.request import RunRequest, RunResult
from ...engine.secrets import Masker, check_secrets, looks_secret
from ...engine.workspace import create_workspace, prepare, run_number_of
from ...exceptions import (
    BrokerUnavailable,
    StoreUnavailable,
    UsageError,
    WaitTimeout,
    WorkflowError,
)
from ...settings import get_settings
from ...spec.params import resolve_params
from ...state.document import FINISHED, RUNNING, SKIPPED, history_event, now_iso
from ...state.mirror import STATE_FILE
from ...state.recorder import RunRecorder
from ...state.store import open_store
from . import config
from .dispatch import compile_plan

# Names whose values only make sense in the submitting process; the fleet's own
# settings (YAML_WORKFLOW_*, CELERY_*) are each worker's, never the submitter's.
_LOCAL_ONLY = ("PWD", "OLDPWD", "SHLVL", "_")
_FLEET_SETTINGS = ("YAML_WORKFLOW_", "CELERY_")
NO_WORKER_AFTER = 10.0


def _check_reachable(url: str, what: str, error: type[WorkflowError]) -> None:
    """One clear line within a few seconds, before anything is created."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        return
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except (redis.RedisError, OSError) as err:
        where = f"{parsed.hostname}:{parsed.port or 6379}"
        raise error(f"cannot reach the {what} at {where} ({type(err).__name__})",
                    hint="start Redis or set YAML_WORKFLOW_BROKER_URL / YAML_WORKFLOW_STATE_URL") from None
    except Exception as err:  # noqa: BLE001 - e.g. a malformed URL
        raise error(f"cannot reach the {what} {url}: {err}") from None


def exported_env(environ: dict[str, str], secrets: list[str], values: list[str]) -> dict[str, str]:
    """The submitter's environment as the run's `env`, without anything secret."""
    out = {}
    for name, value in environ.items():
        if (name in secrets or looks_secret(name, value) or name in _LOCAL_ONLY
                or name.startswith(_FLEET_SETTINGS)):
            continue
        if any(v and len(v) >= 3 and v in value for v in values):
            continue  # a copy of a secret under another name stays out of Redis too
        out[name] = value
    return out


def _check_limits(workflow: Any, plan: Any, fs: Any) -> None:
    """Refuse a step whose limit plus the retry countdown cap reaches the visibility
    timeout: Redis would hand its message to a second worker while it still runs."""
    vt = fs.visibility_timeout() or config.visibility_timeout()
    cap = config.retry_countdown_cap(vt)
    for name in plan.order:
        limit = workflow.step(name).timeout or config.step_timeout()
        if limit + cap >= vt:
            raise UsageError(
                f"step '{name}': its time limit {limit:g}s plus the retry countdown cap {cap:g}s "
                f"is not below the workers' visibility timeout {vt:g}s",
                hint="lower the step's timeout (or YAML_WORKFLOW_STEP_TIMEOUT), or raise "
                     "YAML_WORKFLOW_VISIBILITY_TIMEOUT on the workers",
            )


def _workspace(request: RunRequest, name: str) -> tuple[Path, int]:
    if request.workspace is not None:
        path = request.workspace.absolute()
        # A new run in a used workspace starts a new state: the old journals must not be
        # merged into it (as `run` does).
        (path / STATE_FILE).unlink(missing_ok=True)
        shutil.rmtree(path / ".ywf", ignore_errors=True)
        prepare(path)
        return path, run_number_of(path) or 1
    root = get_settings().workspace_root
    base = (request.base_dir or Path(root)).absolute()
    return create_workspace(base, name)


def submit_run(request: RunRequest, *, queue: str | None = None, export_env: bool = True,
               app: Any = None) -> str:
    """Create the run in Redis and enqueue its first steps; the run id (the workspace
    it created is set in ``request.workspace``)."""
    from .fleet_state import FleetState
    from .runtime import FleetRun

    workflow = request.workflow
    if workflow is None:
        raise UsageError("submit needs a workflow file")
    args = resolve_params(workflow, request.params)
    secrets = check_secrets(workflow.secrets, request.environ)
    plan = build_plan(workflow, flow=request.flow, start_from=request.start_from,
                      skip_steps=request.skip_steps)
    compiled = compile_plan(workflow, plan)
    broker, state = config.broker_url(), request.state_url or config.state_url()
    _check_reachable(broker, "broker", BrokerUnavailable)
    if state != broker:
        _check_reachable(state, "state store", StoreUnavailable)
    fs = FleetState(state)
    _check_limits(workflow, plan, fs)

    from ..local_run import new_run_id

    masker = Masker(secrets.values())
    workspace, number = _workspace(request, workflow.name)
    run_id = new_run_id()
    env = exported_env(dict(request.environ), list(workflow.secrets), list(secrets.values())) if export_env else {}
    spec = {"v": 1, "workflow": workflow.model_dump(mode="json"), "plan": plan.to_dict(),
            **compiled, "args": args, "env": env, "workspace": str(workspace),
            "run_number": number, "timestamp": now_iso(), "queue": queue or config.DEFAULT_QUEUE}
    store = open_store(state)
    header = {
        "t": "run", "at": time.time(), "workflow_id": run_id, "name": workflow.name,
        "start_time": now_iso(), "status": RUNNING, "workflow_file": workflow.source,
        "workspace": str(workspace), "run_number": number, "params": args, "fingerprints": {},
        "workflow": spec["workflow"], "plan": spec["plan"], "mode": "fleet",
        "options": {"flow": request.flow, "start_from": request.start_from,
                    "skip_steps": list(request.skip_steps), "queue": spec["queue"]},
    }
    recorder = RunRecorder(store, run_id, workspace)
    recorder.start(masker.value(header))
    recorder.record(history_event("submit"))
    fs.create(run_id, spec, len(plan.order))
    run = FleetRun(run_id, spec, fs, store, workflow=workflow, recorder=recorder)
    from .dispatch import advance

    roots = [(name, "") for name in compiled["roots"]]
    try:
        advance(app or _app(), run, {"status": "running", "new": True, "ready": roots,
                                    "remaining": len(plan.order)})
    except (OSError, redis.RedisError, OperationalError) as err:  # the broker went away just now
        raise BrokerUnavailable(f"cannot enqueue run {run_id} on {broker}: {err}",
                                hint="the run is created; start it again with `yaml-workflow submit` "
                                     "once the broker is back") from None
    run.recorder.close()
    request.workspace = workspace
    return run_id


def _app() -> Any:
    from .app import default_app

    return default_app()


def _no_worker(app: Any, queue: str | None) -> bool:
    try:
        return not app.control.ping(timeout=1.0)
    except Exception:  # noqa: BLE001 - a broker problem shows up elsewhere
        return False


def wait_for_run(run_id: str, *, timeout: float | None = None, observer: Any = None,
                 app: Any = None, state_url: str | None = None, since: str = "0-0") -> RunResult:
    """Follow a run from Redis until it ends: its step events after ``since`` (a resume
    starts past the end event of the attempt it resumes), then its final document."""
    from .fleet_state import FleetState

    fs = FleetState(state_url or config.state_url())
    try:
        return _follow(fs, run_id, timeout, observer, app, since)
    except (OSError, redis.RedisError) as err:
        raise StoreUnavailable(f"lost the state store while following run {run_id}: {err}",
                               hint=f"the run goes on; follow it with `yaml-workflow status {run_id}`") from None


def _follow(fs: Any, run_id: str, timeout: float | None, observer: Any, app: Any,
            since: str = "0-0") -> RunResult:
    from .fleet_state import _s

    stream = fs.k(run_id, "events")
    last_id, started = since, time.monotonic()
    quiet_since, warned, next_status = started, False, 0.0
    while True:
        now = time.monotonic()
        if timeout is not None and now - started >= timeout:
            raise WaitTimeout(f"gave up waiting for run {run_id} after {timeout:g}s; the run goes on",
                              hint=f"follow it with `yaml-workflow status {run_id}`")
        block = 200 if timeout is None else max(1, min(200, int((timeout - (now - started)) * 1000)))
        entries = fs.r.xread({stream: last_id}, count=500, block=block)
        ended = None
        for _, items in entries or []:
            for entry_id, fields in items:
                last_id = _s(entry_id)
                event = json.loads(fields[b"e"])
                quiet_since = time.monotonic()
                if event.get("t") == "end":
                    ended = event["status"]
                elif observer is not None:  # "step" transitions and "progress" reports
                    observer(event.get("t") or "step", event)
        if ended is None and time.monotonic() >= next_status:
            next_status = time.monotonic() + 1.0
            status = fs.status(run_id)
            if status in FINISHED:
                ended = status
        if ended is not None:
            return result_of(run_id, fs)
        if not warned and time.monotonic() - quiet_since >= NO_WORKER_AFTER:
            warned = True
            if _no_worker(app or _app(), None):
                print(f"warning: no worker answered in {NO_WORKER_AFTER:g}s; run {run_id} is queued "
                      "and waits for one (start one with `yaml-workflow worker`)",
                      file=sys.stderr, flush=True)


def resume_fleet_run(run_id: str, **options: Any) -> RunResult | None:
    """`submit --resume` (and `retry`/`skip` of a fleet run): see :mod:`.resume`."""
    from .resume import resume_fleet_run as resume

    return resume(run_id, **options)


def result_of(run_id: str, fs: Any) -> RunResult:
    """The run's outcome from its document in the store."""
    from .runtime import state_store

    doc = (state_store() if fs.url == config.state_url() else open_store(fs.url)).load(run_id)
    state = doc.get("execution_state", {})
    failed = state.get("failed_step") or {}
    outputs = {name: rec.get("result") for name, rec in state.get("step_outputs", {}).items()
               if rec.get("status") != SKIPPED}
    return RunResult(run_id=run_id, status=doc.get("status") or state.get("status"),
                     workflow=doc.get("name") or "", workspace=doc.get("workspace") or "",
                     outputs=outputs, error=failed.get("error"), failed_step=failed.get("step_name"))
