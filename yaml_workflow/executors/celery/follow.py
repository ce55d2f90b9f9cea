"""Follow a fleet run with an observer, the way ``run`` feeds its display.

``wait_for_run`` reads the run's event stream (step transitions and recorded progress);
``follow_run`` adds what the local executor tells its observer around them: the plan
first (so a display knows how many steps there are and which are already done) and the
run's final status last.

A follower rides out a Redis outage: it says once that it lost Redis and once that it
is back, and keeps reconnecting, with backoff, for ``YAML_WORKFLOW_RECONNECT_TIMEOUT``;
past that it gives up with what it last knew (exit 3).  A run that Redis no longer has
when it comes back (a restart without persistence) ends the wait with exit 3 and how to
rebuild it.  Steps whose worker stopped answering are reported as stalled.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import redis

from ...engine.request import RunResult
from ...exceptions import StoreUnavailable, WaitTimeout
from ...settings import get_settings, mask_url
from ...state.document import FINISHED, SKIPPED
from ...state.stores import open_store
from ...state.stores.redis import FleetState
from . import config
from .app import default_app

NO_WORKER_AFTER = 10.0
STATUS_EVERY = 1.0  # seconds between reads of the run's status (and stalled steps)
_LOST = (OSError, redis.RedisError)


def follow_run(run_id: str, *, observer: Any, timeout: float | None = None,
               state_url: str | None = None, app: Any = None) -> RunResult:
    """Tell ``observer`` the plan, every streamed event, then the status; the run's result."""
    fs = FleetState(state_url or config.state_url())
    try:
        spec = fs.spec(run_id) or {}
    except _LOST:
        spec = {}
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


def _notice(observer: Any, text: str) -> None:
    if observer is not None:
        observer("notice", {"text": text})
    else:
        print(f"warning: {text}", file=sys.stderr, flush=True)


class _Follower:
    """The state of one follow: where in the stream, what is known, whether Redis is away."""

    def __init__(self, fs: FleetState, run_id: str, observer: Any, app: Any, since: str) -> None:
        self.fs, self.run_id, self.observer, self.app = fs, run_id, observer, app
        self.last_id = since
        self.status = "running"
        self.done = 0
        self.total = len(((fs.spec(run_id) or {}).get("plan") or {}).get("order") or [])
        self.lost_at: float | None = None
        self.stalled = ""
        self.quiet_since = time.monotonic()
        self.warned = False

    def read(self, block_ms: int) -> str | None:
        """One pass: new events, then (each second) the status; the end status, if ended."""
        ended = None
        for entry_id, event in self.fs.read_events(self.run_id, self.last_id, block_ms):
            self.last_id = entry_id
            self.quiet_since = time.monotonic()
            if event.get("t") == "end":
                ended = event["status"]
            else:
                if event.get("t", "step") == "step" and event.get("status") in ("completed", "skipped", "failed"):
                    self.done += 1
                if self.observer is not None:  # "step" transitions and "progress" reports
                    self.observer(event.get("t") or "step", event)
        return ended

    def drain(self) -> None:
        """Read what is left in the stream without waiting (the run has ended)."""
        while True:
            before = self.last_id
            self.read(0)
            if self.last_id == before:
                return

    def check(self) -> str | None:
        """The run's status from Redis, stalled steps told to the observer; None while running."""
        status = self.fs.status(self.run_id)
        if not status:
            raise StoreUnavailable(
                f"the store lost run {self.run_id} (Redis came back without it)",
                hint=f"`yaml-workflow submit --resume {self.run_id}` rebuilds it from the workspace")
        self.status = status
        if status in FINISHED:
            return status
        stalled = self._stalled()
        if stalled != self.stalled:
            self.stalled = stalled
            if self.observer is not None:
                self.observer("stalled", {"text": stalled})
        return None

    def _stalled(self) -> str:
        now = time.time()
        texts = [f"{name.split('#')[0]}: stalled (worker {holder.worker}: no heartbeat for "
                 f"{now - holder.renewed:.0f} s)"
                 for name, (holder, live) in sorted(self.fs.holders(self.run_id).items()) if not live]
        return "; ".join(texts)

    def lost(self, err: BaseException) -> None:
        """Redis went away: say so once, give up past the reconnect timeout."""
        now = time.monotonic()
        limit = get_settings().reconnect_timeout
        if self.lost_at is None:
            self.lost_at = now
            _notice(self.observer, f"lost Redis at {mask_url(self.fs.url)} ({type(err).__name__}); "
                                   f"reconnecting for up to {limit:g}s")
        elif now - self.lost_at >= limit:
            raise StoreUnavailable(
                f"Redis unreachable for {limit:g} s; last recorded: run {self.run_id} {self.status}, "
                f"{self.done}/{self.total or '?'} steps",
                hint=f"the run goes on if Redis comes back; follow it with `yaml-workflow status {self.run_id}`")

    def regained(self) -> None:
        """Redis answers again: say so once."""
        if self.lost_at is not None:
            _notice(self.observer, f"reconnected to Redis after {time.monotonic() - self.lost_at:.0f}s")
            self.lost_at = None
            self.quiet_since = time.monotonic()  # workers need a moment to reconnect too


def wait_for_run(run_id: str, *, timeout: float | None = None, observer: Any = None,
                 app: Any = None, state_url: str | None = None, since: str = "0-0") -> RunResult:
    """Follow a run from Redis until it ends: its step events after ``since`` (a resume
    starts past the end event of the attempt it resumes), then its final document."""
    fs = FleetState(state_url or config.state_url())
    try:
        follower = _Follower(fs, run_id, observer, app, since)
    except _LOST as err:
        raise StoreUnavailable(f"cannot reach Redis at {mask_url(fs.url)} to follow run {run_id}: {err}",
                               hint=f"follow it later with `yaml-workflow status {run_id}`") from None
    started = time.monotonic()
    next_status, backoff = 0.0, 0.2
    while True:
        now = time.monotonic()
        if timeout is not None and now - started >= timeout:
            raise WaitTimeout(f"gave up waiting for run {run_id} after {timeout:g}s; the run goes on",
                              hint=f"follow it with `yaml-workflow status {run_id}`")
        block = 200 if timeout is None else max(1, min(200, int((timeout - (now - started)) * 1000)))
        try:
            ended = follower.read(block)
            if ended is None and time.monotonic() >= next_status:
                next_status = time.monotonic() + STATUS_EVERY
                ended = follower.check()
                if ended is not None:
                    follower.drain()  # the steps that ended between the last read and the check
            follower.regained()
            if ended is not None:
                return result_of(run_id, fs)
            backoff = 0.2
        except _LOST as err:
            follower.lost(err)
            time.sleep(backoff)
            backoff = min(2 * backoff, 2.0)
            continue
        if not follower.warned and time.monotonic() - follower.quiet_since >= NO_WORKER_AFTER:
            follower.warned = True
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
