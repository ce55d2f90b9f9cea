"""Follow a fleet run with an observer, the way ``run`` feeds its display.

``wait_for_run`` reads the run's event stream (step transitions and recorded progress);
this adds what the local executor tells its observer around them: the plan first (so a
display knows how many steps there are and which are already done) and the run's final
status last.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import redis

from ...engine.request import RunResult
from ...exceptions import StoreUnavailable, WaitTimeout
from ...state.document import FINISHED, SKIPPED
from ...state.stores import open_store
from ...state.stores.redis import FleetState
from . import config
from .app import default_app

NO_WORKER_AFTER = 10.0


def follow_run(run_id: str, *, observer: Any, timeout: float | None = None,
               state_url: str | None = None, app: Any = None) -> RunResult:
    """Tell ``observer`` the plan, every streamed event, then the status; the run's result."""
    fs = FleetState(state_url or config.state_url())
    spec = fs.spec(run_id) or {}
    order = list((spec.get("plan") or {}).get("order") or [])
    # No step counts as done yet: the stream is read from its start, so every step that
    # finished before we came is replayed to the observer.
    observer("plan", {"order": order, "done": []})
    result = wait_for_run(run_id, timeout=timeout, observer=observer, app=app, state_url=state_url)
    if result.status in FINISHED:
        observer("status", {"status": result.status})
    return result


def _no_worker(app: Any, queue: str | None) -> bool:
    try:
        return not app.control.ping(timeout=1.0)
    except Exception:  # noqa: BLE001 - a broker problem shows up elsewhere
        return False


def wait_for_run(run_id: str, *, timeout: float | None = None, observer: Any = None,
                 app: Any = None, state_url: str | None = None, since: str = "0-0") -> RunResult:
    """Follow a run from Redis until it ends: its step events after ``since`` (a resume
    starts past the end event of the attempt it resumes), then its final document."""
    fs = FleetState(state_url or config.state_url())
    try:
        return _follow(fs, run_id, timeout, observer, app, since)
    except (OSError, redis.RedisError) as err:
        raise StoreUnavailable(f"lost the state store while following run {run_id}: {err}",
                               hint=f"the run goes on; follow it with `yaml-workflow status {run_id}`") from None


def _follow(fs: Any, run_id: str, timeout: float | None, observer: Any, app: Any,
            since: str = "0-0") -> RunResult:
    last_id, started = since, time.monotonic()
    quiet_since, warned, next_status = started, False, 0.0
    while True:
        now = time.monotonic()
        if timeout is not None and now - started >= timeout:
            raise WaitTimeout(f"gave up waiting for run {run_id} after {timeout:g}s; the run goes on",
                              hint=f"follow it with `yaml-workflow status {run_id}`")
        block = 200 if timeout is None else max(1, min(200, int((timeout - (now - started)) * 1000)))
        ended = None
        for entry_id, event in fs.read_events(run_id, last_id, block):
            last_id = entry_id
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
            if _no_worker(app or default_app(), None):
                print(f"warning: no worker answered in {NO_WORKER_AFTER:g}s; run {run_id} is queued "
                      "and waits for one (start one with `yaml-workflow worker`)",
                      file=sys.stderr, flush=True)


def result_of(run_id: str, fs: Any) -> RunResult:
    """The run's outcome from its document in the store."""
    from .runtime import state_store

    doc = (state_store() if fs.url == config.state_url() else open_store(fs.url)).load(run_id)
    state = doc.get("execution_state", {})
    failed = state.get("failed_step") or {}
    records = state.get("step_outputs", {})
    # In plan order, as `run` gives them (records arrive in the order steps finished).
    order = [n for n in (doc.get("plan") or {}).get("order") or [] if n in records]
    order += [n for n in records if n not in order]
    outputs = {name: records[name].get("result") for name in order
               if records[name].get("status") != SKIPPED}
    return RunResult(run_id=run_id, status=doc.get("status") or state.get("status"),
                     workflow=doc.get("name") or "", workspace=doc.get("workspace") or "",
                     outputs=outputs, error=failed.get("error"), failed_step=failed.get("step_name"))
