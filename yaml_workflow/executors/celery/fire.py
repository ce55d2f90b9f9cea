"""``ywf.fire(name, tick)``: a worker turns one tick of a schedule into a run (or a skip).

The beat only enqueues this small task; the worker that takes it has what a run needs
(the shared workspace volume, the secrets) and submits the schedule's stored workflow
with the idempotency key ``schedule:<name>:<tick>``, so a tick fired twice (two beats
for a moment, a redelivered message) still makes one run.  Under the schedule's fire
lock it first looks whether the tick was decided already, then counts the schedule's
runs still running against ``max_active_runs``: a tick that finds too many is recorded
as skipped, with the reason.  Every outcome goes to the schedule's log (``schedule list``).
"""

from __future__ import annotations

import logging
from typing import Any

from ...engine.lifecycle import make_trigger, stored_workflow
from ...engine.request import RunRequest
from ...exceptions import BrokerUnavailable, StoreUnavailable, WorkflowError
from ...spec.models import Schedule, Workflow
from ...state.document import now_iso, parse_iso
from ...state.stores.redis import IdempotencyKeys, Schedules
from . import config
from .idempotent import submit_once

log = logging.getLogger("yaml_workflow.beat")

FIRE_TASK = "ywf.fire"
# Failures worth another try: the run was not created and may be next time.
TRANSIENT = (BrokerUnavailable, StoreUnavailable)


def tick_key(name: str, tick: str) -> str:
    """The idempotency key of a schedule's tick."""
    return f"schedule:{name}:{tick}"


def fire_tick(app: Any, name: str, tick: str, *, forced: bool = False) -> dict[str, Any]:
    """Decide one tick: an existing outcome, a skip, or a new run; what it became.

    ``forced`` (``schedule run-now``): neither a pause nor ``max_active_runs`` holds it back.
    """
    at = parse_iso(tick)
    if at is None:
        raise ValueError(f"tick {tick!r} is not an ISO 8601 time")
    schedules = Schedules(config.state_url())
    definition = schedules.definition(name)
    if definition is None:
        log.warning("schedule %s: tick %s dropped, the schedule was removed", name, tick)
        return {"tick": tick, "outcome": "dropped", "reason": "the schedule was removed"}
    schedule = Schedule.model_validate(definition["schedule"])
    key = tick_key(name, tick)
    with schedules.fire_lock(name):
        found = schedules.outcome(name, at)
        if found is not None:
            return found  # fired before: a duplicate (two beats for a moment, a redelivery)
        bound = IdempotencyKeys(config.state_url()).get(key)
        if bound is None and not forced:
            reason = _held_back(schedules, name, schedule)
            if reason:
                entry = {"tick": tick, "outcome": "skipped", "reason": reason, "at": now_iso()}
                schedules.record(name, entry, at)
                log.info("schedule %s: tick %s skipped: %s", name, tick, reason)
                return entry
        try:
            submitted = _submit(app, name, tick, definition, schedule)
        except TRANSIENT:
            raise  # the task tries again
        except WorkflowError as err:  # the stored workflow, its params or this worker's secrets
            entry = {"tick": tick, "outcome": "failed", "reason": err.one_line(), "at": now_iso()}
            schedules.record(name, entry, at)
            log.error("schedule %s: tick %s could not start a run: %s", name, tick, err.one_line())
            return entry
        schedules.add_active(name, submitted)
        entry = {"tick": tick, "outcome": "run", "run_id": submitted, "at": now_iso()}
        schedules.record(name, entry, at)
        log.info("schedule %s: tick %s started run %s", name, tick, submitted)
        return entry


def _held_back(schedules: Schedules, name: str, schedule: Schedule) -> str | None:
    """Why the tick may not start a run now (paused, too many running), or None."""
    state = schedules.states([name])[name]
    if state.get("paused") == "1":
        return "the schedule is paused"
    running = schedules.running(name)
    if len(running) >= schedule.max_active_runs:
        return (f"{len(running)} run{'s' if len(running) != 1 else ''} of the schedule still running "
                f"({', '.join(running[:5])}; max_active_runs {schedule.max_active_runs})")
    return None


def _submit(app: Any, name: str, tick: str, definition: dict[str, Any], schedule: Schedule) -> str:
    """Submit the stored workflow for this tick (idempotent by the tick's key); the run id."""
    workflow: Workflow = stored_workflow(definition, f"schedule {name}")
    request = RunRequest(workflow=workflow, params=dict(schedule.params),
                         trigger=make_trigger("schedule", name, tick))
    # The run's environment is this worker's own (nothing of a submitter to pass on).
    return submit_once(request, tick_key(name, tick), export_env=False, app=app).run_id


def register_fire(app: Any) -> None:
    """Define ``ywf.fire`` on the workers' app (``workers.app`` calls this).

    Not in :func:`.app.create_app`'s tasks: firing submits runs, and the submit module
    imports the app factory, so the factory importing this would close an import cycle.
    Publishers (the beat, ``schedule run-now``) send it by name and need no definition.
    """
    import redis
    from celery import Task

    @app.task(bind=True, name=FIRE_TASK, acks_late=True, reject_on_worker_lost=True, max_retries=None)
    def fire(self: Task, name: str, tick: str, forced: bool = False) -> dict[str, Any]:
        """One tick of a schedule; a transient failure (Redis, the broker) tries again."""
        try:
            return fire_tick(self.app, name, tick, forced=forced)
        except (*TRANSIENT, redis.ConnectionError, redis.TimeoutError) as err:
            raise self.retry(exc=err, countdown=5, max_retries=None) from None
