"""A run as a worker process sees it: the compiled spec, read once and cached.

A step task needs the workflow, the plan, the params and the environment of its run;
they never change after ``submit``, so each worker process reads them from Redis the
first time it meets the run and keeps them (a small LRU), which keeps a step's hot path
to the few round trips that carry state.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...engine.context import STEP_NS_KEYS, RunContext
from ...engine.lifecycle import workflow_env
from ...engine.plan import Plan
from ...engine.secrets import Masker, check_secrets, restore_params
from ...exceptions import RunNotFound, SecretError, WorkflowError
from ...settings import get_settings
from ...spec.models import Step, Workflow
from ...state.document import COMPLETED, FAILED, RUNNING, SKIPPED, now_iso, status_event
from ...state.processes import ProcessRef
from ...state.recorder import RunRecorder
from ...state.store import Store
from ...state.stores import open_store
from ...state.stores.redis import FleetState
from ...state.stores.redis.fleet import report_process
from ...tasks.batching import failed_item_counts
from . import config
from .persist import TRANSIENT
from .progress import current_task_progress

# Runs a worker process keeps loaded (spec, models, open journal).  Steps of many runs in
# flight interleave on every process: a cache smaller than that set reloads a run and
# compacts its mirror on nearly every delivery.  Each entry holds one journal descriptor.
_CACHE_SIZE = 256
DONE = (COMPLETED, SKIPPED, FAILED)
_REF = re.compile(r"\bsteps\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")
_ANY_REF = re.compile(r"\bsteps\b")


def referenced_steps(step: Step, names: list[str], builtin: bool) -> list[str] | None:
    """Steps whose records the step's templates name; None when it may read any of them."""
    if not builtin:
        return None  # a plugin's TaskConfig can look at the whole `steps` namespace
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk([step.inputs, step.condition, step.on_error.message if step.on_error else None])
    found: set[str] = set()
    known = set(names)
    for text in texts:
        if "steps" not in text:
            continue
        matches = list(_REF.finditer(text))
        if len(matches) != len(_ANY_REF.findall(text)):
            return None  # `steps` used some other way (a loop, steps[var]): read them all
        for match in matches:
            name = match.group(1) or match.group(2)
            if name not in known:
                return None  # steps.get(...), steps.items(): dynamic
            found.add(name)
    return sorted(found)


def ns_entry(event: dict[str, Any]) -> dict[str, Any]:
    """A step record as later templates see it (what RunContext.set_step keeps)."""
    entry = {k: event[k] for k in STEP_NS_KEYS if k in event}
    entry.setdefault("result", None)
    return entry


def printer_event(event: dict[str, Any]) -> dict[str, Any]:
    """The part of a step transition `submit --wait` prints."""
    keys = ("step", "status", "duration", "error", "error_message", "reason", "attempt",
            "max_attempts", "next_delay", "host")
    out = {k: event[k] for k in keys if k in event}
    out["t"] = "step"
    counts = failed_item_counts(event.get("result"))  # the result stays out of the stream
    if counts is not None:
        out["items_failed"], out["items_total"] = counts
    return out


class FleetRecorder:
    """The run's recorder on a worker.

    It names the worker as the step's host and keeps each step's last transition.  A
    step's ``running`` and final transitions are written to the journal at once but held
    for the store: the commit writes them in the same transaction as the done marker,
    which saves two round trips per step; a step still running after
    ``running_delay`` seconds has its ``running`` record flushed by a thread, so
    ``status`` shows it.  Any other transition of the run flushes what is held first,
    so the store sees transitions in their order.
    """

    def __init__(self, inner: RunRecorder, host: str) -> None:
        self.inner = inner
        self.host = host
        self.last: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.RLock()

    def record(self, event: dict[str, Any]) -> None:
        """Record one transition (store + this process's journal)."""
        if event.get("t") == "proc":
            # The worker's guard stops (freezes, kills) this group with the step.
            report_process(self.inner.run_id, event["step"], ProcessRef.from_dict(event["proc"]))
        if event.get("t") == "step":
            if "host" in event:
                event = {**event, "host": self.host, "worker": self.host}
            name, status = event["step"], event.get("status")
            self.last[name] = event
            if status in DONE or status == RUNNING:
                self.journal(event)
                with self.lock:
                    self.pending.setdefault(name, []).append(event)
                if status == RUNNING:
                    _DEFERRED.watch(self, name)
                return
        with self.lock:
            scope = event.get("step")  # progress, items, proc: that step; run events: every step
            try:
                for step in [scope] if scope else list(self.pending):
                    self.flush(step)
                self.inner.record(event)
            except TRANSIENT:
                if not scope:
                    raise  # a run-level transition: its caller retries it (persist.py)
                # A step's progress, items or subprocess while Redis is away: kept for the
                # step's commit (which is retried until Redis answers), and journaled now.
                self.journal(event)
                self.pending.setdefault(scope, []).append(event)

    def journal(self, event: dict[str, Any]) -> None:
        """Write a transition to this process's journal only."""
        if self.inner.mirror is not None:
            self.inner._to_mirror(self.inner.mirror.append, event)

    def held(self, step: str) -> list[dict[str, Any]]:
        """The held transitions of a step (for its commit); a flush in flight finishes first."""
        with self.lock:
            return list(self.pending.get(step, []))

    def forget(self, step: str, events: list[dict[str, Any]] | None = None) -> None:
        """The step's held transitions reached the store (its commit succeeded), or an
        earlier delivery's are to be dropped (``events`` None: all of them)."""
        with self.lock:
            if events is None:
                self.pending.pop(step, None)
            else:
                rest = self.pending.get(step, [])[len(events):]
                if rest:
                    self.pending[step] = rest
                else:
                    self.pending.pop(step, None)

    def flush(self, step: str) -> None:
        """Send a step's held transitions to the store now (kept held if the store fails)."""
        with self.lock:
            events = list(self.pending.get(step, []))
            if events:
                self.inner.store.record_many(self.inner.run_id, events)
                self.forget(step, events)

    def close(self) -> None:
        """Flush and compact the mirror."""
        for step in list(self.pending):
            self.flush(step)
        self.inner.close()


class _Deferred:
    """One thread per process that flushes `running` records of steps still running."""

    def __init__(self) -> None:
        self._due: list[tuple[float, FleetRecorder, str]] = []
        self._lock = threading.Lock()
        self._pid = 0

    def watch(self, recorder: FleetRecorder, step: str) -> None:
        with self._lock:
            self._due.append((time.monotonic() + get_settings().running_delay, recorder, step))
            if self._pid != os.getpid():  # first use in this (forked) process
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="ywf-running", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(max(0.01, get_settings().running_delay / 4))
            now = time.monotonic()
            with self._lock:
                due = [d for d in self._due if d[0] <= now]
                self._due = [d for d in self._due if d[0] > now]
            for _, recorder, step in due:
                try:
                    recorder.flush(step)
                except Exception:  # noqa: BLE001 - the commit writes it anyway
                    pass


_DEFERRED = _Deferred()


def _extend_sys_path(pythonpath: str | None) -> None:
    """Modules and task plugins the submitter could import (PYTHONPATH on a shared volume)
    are importable here too; appended, so they never shadow the worker's own packages."""
    if not pythonpath:
        return
    added = False
    for entry in pythonpath.split(os.pathsep):
        if entry and os.path.isdir(entry) and entry not in sys.path:
            sys.path.append(entry)
            added = True
    if added:
        import importlib

        from ...tasks import registry

        importlib.invalidate_caches()
        registry.rescan_plugins()  # look for entry points again on the new path


@contextmanager
def run_environment(environ: dict[str, str]) -> Iterator[None]:
    """The run's environment as this process's os.environ while a step runs, so that
    in-process code (python_code reading os.environ) sees what it sees under `run`.
    Not under the threads pool, where steps of different runs share one os.environ."""
    if get_settings().worker_pool == "threads":
        yield
        return
    saved = dict(os.environ)
    # Only what differs (putenv is not free), and never this worker's own settings.
    delta = {k: v for k, v in environ.items() if saved.get(k) != v and not k.startswith("YAML_WORKFLOW_")}
    try:
        os.environ.update(delta)
        yield
    finally:
        for key in [k for k in os.environ if k not in saved]:
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


class FleetRun:
    """One run's compiled spec and this process's recorder of it."""

    def __init__(self, run_id: str, spec: dict[str, Any], fs: FleetState, store: Store, *,
                 workflow: Workflow | None = None, recorder: RunRecorder | None = None) -> None:
        self.run_id, self.spec, self.fs, self.store = run_id, spec, fs, store
        self.workflow = workflow or Workflow.model_validate(spec["workflow"])
        self._steps = {s.name: s for s in self.workflow.steps}
        self.plan = Plan.from_dict(spec["plan"])
        self.deps: dict[str, list[str]] = spec["deps"]
        self.succ: dict[str, list[tuple[str, int]]] = {k: [tuple(p) for p in v] for k, v in spec["succ"].items()}
        self.refs: dict[str, list[str] | None] = spec["refs"]
        self.limits: dict[str, float] = spec["limits"]
        self.workspace = Path(spec["workspace"])
        self.queue: str = spec.get("queue") or config.DEFAULT_QUEUE
        environ = dict(os.environ)
        environ.update(spec.get("env") or {})
        self.host = worker_name()
        # Why this worker cannot run the run's steps (reported as the step's failure).
        self.secret_error: Exception | None = None
        secrets: dict[str, str] = {}
        try:  # declared secrets come from this worker's own environment, never from Redis
            secrets = check_secrets(self.workflow.secrets, os.environ)
        except SecretError as err:
            self.secret_error = SecretError(
                f"{err.message} on worker {self.host}: workers take secrets from their own "
                "environment (docs/security.md)", hint=err.hint)
        environ.update(secrets)
        self.masker = Masker(secrets)
        # Params stored as references to secrets: the values come from this worker's environment.
        self.args: dict[str, Any] = spec["args"] if self.secret_error else restore_params(
            spec["args"], spec.get("arg_secrets"), secrets)
        try:  # the workflow's env:, rendered once for the run as `run` renders it
            environ = workflow_env(self.workflow, dict(self.args), environ)
        except WorkflowError as err:
            self.secret_error = self.secret_error or err
        self.environ = environ
        _extend_sys_path((spec.get("env") or {}).get("PYTHONPATH"))
        self.recorder = FleetRecorder(recorder or RunRecorder(store, run_id, self.workspace), self.host)
        self.lock = threading.Lock()

    def step(self, name: str) -> Step:
        """A step of the run's workflow (by dict: Workflow.step scans the list)."""
        return self._steps[name]

    def context(self, ns: dict[str, dict[str, Any]]) -> RunContext:
        """A RunContext for one task, with the records of the steps it reads."""
        rc = RunContext(self.workflow, self.run_id, self.workspace, dict(self.args),
                        self.recorder, run_number=self.spec.get("run_number"),
                        environ=dict(self.environ), masker=self.masker,
                        timestamp=self.spec.get("timestamp", ""), trigger=self.spec.get("trigger"))
        # Recorded progress goes on to `submit --wait` and Flower (as a task event).
        rc.observer = current_task_progress(self)
        rc.load_steps(ns)
        rc.prior_items = self.spec.get("prior_items") or {}  # a resumed batch reuses its items
        return rc

    def record(self, event: dict[str, Any]) -> None:
        """Record a transition that no RunContext made (skips, run status)."""
        self.recorder.record(self.masker.event(event) if self.masker else event)

    def successors(self, name: str) -> list[tuple[str, int]]:
        """(step, number of its dependencies) for every step waiting on ``name``."""
        return self.succ.get(name, [])

    def finish(self, status: str, failed_step: dict[str, Any] | None = None) -> None:
        """Record the run's end everywhere and tell followers; the JSON file first, so a
        follower that sees the end also sees a complete file."""
        if status == COMPLETED:
            self.record(status_event(COMPLETED, current_step=None))
        else:
            self.record(status_event(status, failed_step=failed_step))
        try:
            self.recorder.close()
        finally:
            forget_run(self.run_id)
            self.fs.set_status(self.run_id, status, {"t": "end", "status": status, "at": time.time()})

    def fail(self, step: str, error: str) -> None:
        """The run fails at ``step``: nothing more is enqueued (the first failure wins)."""
        if self.fs.status(self.run_id) != "running":
            return
        self.finish(FAILED, {"step_name": step, "error": error, "failed_at": now_iso()})


_RUNS: OrderedDict[str, FleetRun] = OrderedDict()
_RUNS_LOCK = threading.Lock()
_WORKER = {"name": ""}


def set_worker_name(name: str) -> None:
    """The Celery node name of this worker (recorded as each step's host)."""
    if name:
        _WORKER["name"] = name


def worker_name() -> str:
    """This worker's node name, else YAML_WORKFLOW_WORKER_NAME, else the host name."""
    from ...state.document import HOST

    return _WORKER["name"] or get_settings().worker_name or HOST


def fleet_state() -> FleetState:
    """This process's FleetState on the state URL."""
    return _fleet_state(config.state_url(), get_settings().key_prefix)


_FS: dict[tuple[str, str, int], FleetState] = {}
_STORES: dict[tuple[str, int], Store] = {}


def _fleet_state(url: str, prefix: str) -> FleetState:
    key = (url, prefix, os.getpid())
    if key not in _FS:
        _FS[key] = FleetState(url, prefix)
    return _FS[key]


def release_held_claims() -> None:
    """Give back every claim this process holds, at once (it is being told to stop):
    the requeued messages then run on another worker without waiting out the TTL."""
    for (_, _, pid), fs in list(_FS.items()):
        if pid == os.getpid():
            try:
                fs.release_all_now()
            except Exception:  # noqa: BLE001 - the claims then expire by their TTL
                pass


def state_store() -> Store:
    """This process's Store on the state URL."""
    key = (config.state_url(), os.getpid())
    if key not in _STORES:
        _STORES[key] = open_store(config.state_url())
    return _STORES[key]


def get_run(run_id: str) -> FleetRun:
    """The cached run, read from Redis the first time."""
    with _RUNS_LOCK:
        run = _RUNS.get(run_id)
        if run is not None:
            _RUNS.move_to_end(run_id)
            return run
    fs = fleet_state()
    spec = fs.spec(run_id)
    if spec is None:
        raise RunNotFound(f"run '{run_id}' has no compiled spec in {config.state_url()}")
    run = FleetRun(run_id, spec, fs, state_store())
    with _RUNS_LOCK:
        _RUNS[run_id] = run
        while len(_RUNS) > _CACHE_SIZE:
            _, old = _RUNS.popitem(last=False)
            try:
                old.recorder.close()
            except Exception:  # noqa: BLE001 - closing an idle journal may fail harmlessly
                pass
    return run


def forget_run(run_id: str) -> None:
    """Drop a finished run from the cache."""
    with _RUNS_LOCK:
        _RUNS.pop(run_id, None)
