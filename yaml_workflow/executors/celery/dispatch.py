"""What to enqueue after a step: successors, next-jumps, joins, the end of the run.

The plan is compiled once, at submit, into ``deps`` and ``succ`` (a linear plan is a
chain: each step depends on the one before it).  When a step is recorded done, the
commit script counts it into the join counter of every successor and returns the ones
whose counter just reached their number of dependencies; only those are enqueued, so a
join fires once, after all of its inputs, whichever message was delivered twice.
"""

from __future__ import annotations

import time
from typing import Any

from ...engine.hooks import fault_point
from ...engine.plan import Plan
from ...engine.step import Outcome, describe_error
from ...spec.models import Workflow
from ...state.document import COMPLETED, FAILED, RETRYING, SKIPPED, step_event
from ...state.stores.redis import Committed
from ...tasks import get_task
from ...tasks.registry import CALL_BUILTIN
from . import config
from .runtime import FleetRun, ns_entry, printer_event, referenced_steps

STEP_TASK = "ywf.step"
CHUNK_TASK = "ywf.batch_chunk"


def compile_plan(workflow: Workflow, plan: Plan) -> dict[str, Any]:
    """deps, successors (with join sizes), roots, step limits and template references."""
    deps = plan.dependencies()
    succ: dict[str, list[list[Any]]] = {name: [] for name in plan.order}
    for name, its_deps in deps.items():
        for dep in its_deps:
            succ[dep].append([name, len(its_deps)])
    default_limit = config.step_timeout()
    limits, refs = {}, {}
    for name in plan.order:
        step = workflow.step(name)
        limits[name] = float(step.timeout or default_limit)
        builtin = get_task(step.task).call == CALL_BUILTIN
        refs[name] = referenced_steps(step, workflow.step_names, builtin)
    return {"deps": deps, "succ": succ, "roots": [n for n in plan.order if not deps[n]],
            "limits": limits, "refs": refs}


def _send(app: Any, name: str, args: list[Any], argsrepr: str, queue: str, limit: float,
          countdown: float | None = None) -> None:
    # ignore_result: a sender that has not registered the task would otherwise subscribe
    # to its result channel (a pub/sub connection per submitting process) for nothing.
    app.send_task(
        name, args=args, queue=queue, argsrepr=argsrepr, countdown=countdown or None,
        soft_time_limit=limit + config.SOFT_GRACE, time_limit=limit + config.HARD_GRACE,
        ignore_result=True,
    )


def send_step(app: Any, run: FleetRun, step: str, countdown: float | None = None) -> None:
    """Enqueue one step: the message holds ids only, never inputs or secrets."""
    queue = run.step(step).queue or run.queue
    _send(app, STEP_TASK, [run.run_id, step], f"run={run.run_id} step={step}", queue,
          run.limits[step], countdown)


def send_chunk(app: Any, run: FleetRun, step: str, attempt: int, chunk: int) -> None:
    """Enqueue one chunk of a batch step."""
    queue = run.step(step).queue or run.queue
    _send(app, CHUNK_TASK, [run.run_id, step, attempt, chunk],
          f"run={run.run_id} step={step} chunk={chunk}", queue, run.limits[step])


def commit(run: FleetRun, step: str, event: dict[str, Any], forced: dict[str, str] | None = None,
           *, successors: bool = True) -> Committed:
    """Record a step's end in the store and count it done, in one transaction."""
    records = run.recorder.held(step)
    committed = run.fs.commit(run.run_id, step, ns_entry(event),
                              run.successors(step) if successors else [], printer_event(event), forced,
                              records=records, count=successors)
    run.recorder.forget(step, records)  # only now: a commit that failed is retried with them
    return committed


def advance(app: Any, run: FleetRun, committed: Committed) -> list[str]:
    """Enqueue what a commit made ready; steps to skip are recorded here, inline; the run
    ends when nothing remains.  Returns the steps sent (a step's message marks itself
    sent when it arrives, so a replay after a crash sends only what never arrived)."""
    if committed.status != "running":
        return []  # cancelled or failed: nothing more is enqueued
    replay = not committed.new
    stack = list(committed.ready)
    finished = committed.remaining == 0
    to_send: list[str] = []
    while stack:
        name, reason = stack.pop(0)
        reason = reason or run.plan.skipped.get(name, "")
        if not reason:
            to_send.append(name)
            continue
        if replay and run.fs.field(run.run_id, f"done:{name}"):
            res = run.fs.commit(run.run_id, name, {}, run.successors(name), None)  # recorded before
        else:
            event = step_event(name, SKIPPED, reason=reason, finished_at=time.time())
            run.record(event)  # held for the commit below
            res = commit(run, name, event)
        replay = replay or not res.new
        if res.status != "running":
            return []
        stack.extend(res.ready)
        finished = finished or res.remaining == 0
    if replay and to_send:  # a redelivery: skip what the first delivery already sent
        to_send = [n for n, sent in zip(to_send, run.fs.sent(run.run_id, to_send), strict=False) if not sent]
    for name in to_send:
        send_step(app, run, name)
    if finished and run.fs.status(run.run_id) == "running":
        run.finish(COMPLETED)
    return to_send


def after_outcome(app: Any, run: FleetRun, step: str, attempt: int, outcome: Outcome) -> list[str]:
    """Act on what an attempt came to (a retry is scheduled by the caller)."""
    event = run.recorder.last.get(step) or step_event(step, outcome.status)
    if outcome.status in (COMPLETED, SKIPPED) or (outcome.status == FAILED and outcome.action == "continue"):
        committed = commit(run, step, event)
        fault_point("after_commit", step, run.workspace)
        return advance(app, run, committed)
    error = event.get("error") or (describe_error(outcome.error) if outcome.error else "failed")
    if outcome.status == FAILED and outcome.action == "next" and outcome.next_step:
        forced = run.plan.jump_skips(step, outcome.next_step)
        if forced is not None:
            return advance(app, run, commit(run, step, event, forced))
    # A failure nothing handles: recorded without counting it out of `remaining`, so no
    # parallel step can take the run for finished; then the run fails.
    commit(run, step, event, successors=False)
    run.fail(step, error)
    return []


def schedule_retry(run: FleetRun, step: str, attempt: int, outcome: Outcome) -> float:
    """Remember the next attempt and when it may start; the countdown to give Celery."""
    delay = max(0.0, outcome.delay)
    run.fs.set_fields(run.run_id, **{f"attempt:{step}": attempt + 1,
                                     f"not_before:{step}": time.time() + delay})
    event = run.recorder.last.get(step)
    if event and event.get("status") == RETRYING:
        run.fs.event(run.run_id, printer_event(event))
    return min(delay, config.retry_countdown_cap())
