"""Progress on the fleet: the store, the run's event stream and Celery task events.

A progress report that the engine records (``progress_update: true``, at most once per
``progress_interval``) is also

- appended to the run's event stream, so ``submit --wait`` draws it like ``run`` does;
- sent as a ``task-progress`` Celery event of the task that made it, so Flower (and any
  ``celery events`` receiver) sees it.  Flower shows such a task in state ``PROGRESS``;
  its REST API does not return the custom fields (run, step, done, total, failed,
  retries, percent, message), an event receiver gets them all.

Everything sent is the recorded event, which the run's masker has already cleaned, and
ids: never inputs.  Progress is advisory: a failure to publish it never fails a step.

A fleet batch counts its items across chunks in the fan-out's hash (``p_done``,
``p_failed``, ``p_retries``); a gate key (``SET NX PX interval``) lets one chunk record
per interval, whichever worker it runs on.  A redelivered chunk counts its items again,
so the counters are clamped to the total; the step's final record is exact.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

log = logging.getLogger("yaml_workflow.fleet")

TASK_PROGRESS = "task-progress"
# The fields of a progress report that go into a task event (all small scalars).
EVENT_FIELDS = ("done", "total", "failed", "retries", "percent", "message")


class TaskProgress:
    """An observer of a fleet task's RunContext: publishes the recorded progress reports.

    It is made in the task's own thread, where Celery's request is; a custom task may
    report from another thread (a step with ``timeout`` runs in one), so the task id and
    worker name are kept here rather than read from the thread-local request later.
    """

    # The per-report calls are for live displays; this one only wants recorded reports.
    wants_progress = False

    def __init__(self, run: Any, task: Any = None) -> None:
        self.run = run
        self.app = getattr(task, "app", None)
        request = getattr(task, "request", None)
        self.task_id = getattr(request, "id", None)
        self.hostname = getattr(request, "hostname", None)

    def __call__(self, kind: str, event: dict[str, Any]) -> None:
        if kind != "progress" or "t" not in event:
            return  # a step transition, or an unrecorded per-item call
        publish(self.run, event, self.app, self.task_id, self.hostname)


def current_task_progress(run: Any) -> TaskProgress:
    """The observer for the Celery task running in this thread (none outside a task)."""
    from celery import current_task

    task = current_task._get_current_object() if current_task else None
    return TaskProgress(run, task)


def publish(run: Any, event: dict[str, Any], app: Any, task_id: str | None, hostname: str | None) -> None:
    """A recorded progress report to the event stream and as a Celery task event."""
    info = event.get("progress") or {}
    step = event.get("step")
    try:
        run.fs.event(run.run_id, {"t": "progress", "step": step, "progress": info, "at": event.get("at")})
    except redis.RedisError as err:
        log.warning("progress of %s/%s not streamed: %s", run.run_id, step, err)
    if app is None or not task_id:
        return
    fields = {k: info[k] for k in EVENT_FIELDS if info.get(k) is not None}
    try:
        with app.events.default_dispatcher(hostname=hostname) as dispatcher:
            dispatcher.send(TASK_PROGRESS, uuid=task_id, run=run.run_id, step=step, **fields)
    except Exception as err:  # noqa: BLE001 - a monitor that misses an update is no failure
        log.warning("task-progress event of %s/%s not sent: %s", run.run_id, step, err)


class BatchProgress:
    """Items of a fleet batch as they finish, counted across all of its chunks."""

    def __init__(self, run: Any, rc: Any, step: Any, fanout: int, total: int, nchunks: int) -> None:
        self.run, self.rc, self.name = run, rc, step.name
        self.fanout, self.total, self.nchunks = fanout, total, nchunks
        self.interval = step.progress_interval
        self.lock = threading.Lock()
        self.done = self.failed = self.retries = 0  # not yet counted in Redis
        self.last = time.monotonic()

    def item(self, ok: bool, attempts: int) -> None:
        """One item finished (called from the chunk's item threads)."""
        with self.lock:
            self.done += 1
            self.failed += 0 if ok else 1
            self.retries += max(0, attempts - 1)
            if time.monotonic() - self.last >= self.interval:
                self._flush()

    def finish(self) -> None:
        """The chunk is over: count what is left (and record it when due or final)."""
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        self.last = time.monotonic()
        if not self.done:
            return
        counts = (self.done, self.failed, self.retries)
        self.done = self.failed = self.retries = 0
        try:
            done, failed, retries, due = self.run.fs.count_progress(
                self.run.run_id, self.name, self.fanout, *counts, self.interval)
        except redis.RedisError as err:
            log.warning("batch progress of %s/%s not counted: %s", self.run.run_id, self.name, err)
            return
        done = min(int(done), self.total)
        if not due and done < self.total:
            return  # another chunk recorded within this interval
        percent = round(100.0 * done / self.total, 1) if self.total else 100.0
        self.rc.record({"t": "progress", "step": self.name, "at": time.time(), "progress": {
            "done": done, "total": self.total, "failed": min(int(failed), done),
            "retries": int(retries), "percent": percent,
            "message": f"{done}/{self.total} items in {self.nchunks} chunks"}})
