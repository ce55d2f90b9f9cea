"""The Celery tasks: ``ywf.step`` and ``ywf.batch_chunk``, thin adapters over run_step.

A delivery goes: one Lua round trip (run status, done marker, claim, attempt, the step
records its templates read); then the attempt (run_step records its transitions); then
the commit script (records + done marker + joins) and the successors; then the claim
goes back.  A delivery that finds the step done only finishes the dispatch; one that
finds a live claim waits (Celery retry with a countdown) instead of running a second copy.

Redis going away never drops a step: before the step ran, the delivery is retried (and
if the broker cannot take the retry either, the message stays unacked until it is
back); after the step ran, its commit is retried in place until Redis answers
(:func:`persistently`), so an outage never makes a step run twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from celery import Task
from celery.exceptions import Reject, Retry, TimeLimitExceeded

from ...engine.retry import RetryPlan
from ...engine.step import Outcome, fail_attempt, run_step
from ...exceptions import RunNotFound, StepTimeoutError, TaskError
from ...state.document import COMPLETED, FAILED, HOST, RETRYING, SKIPPED, step_event
from ...state.processes import ProcessRef, kill_group
from ...state.stores.redis import Begun
from ...tasks.batching import BatchInputs
from . import batch, config
from .dispatch import CHUNK_TASK, STEP_TASK, advance, after_outcome, schedule_retry, send_step
from .persist import TRANSIENT, patience, persistently
from .runtime import FleetRun, forget_run, get_run, run_environment, set_worker_name

log = logging.getLogger("yaml_workflow.fleet")

# Seconds a delivery that found a live claim waits before it looks again.
CLAIM_WAIT = 5.0
# How early a retry may arrive before its not_before (clock skew between hosts).
EARLY = 0.5
class FleetTask(Task):
    """Late ack, requeue on a lost worker; a hard time limit is recorded as the step's failure."""

    acks_late = True
    reject_on_worker_lost = True
    # Our Redis store is the truth of every step; a Celery result nobody reads would cost
    # two round trips per delivery (STARTED, then SUCCESS).  Flower follows the task
    # events (received, started, succeeded, retried), which do not depend on results.
    ignore_result = True
    # Unlimited Celery retries: we count attempts ourselves, and a long retry delay or a
    # claim wait re-schedules the message many times (`retry(max_retries=None)` would
    # mean Celery's default of 3, not "no limit").
    max_retries = None

    def retry(self, *args: Any, **options: Any) -> Any:
        """A retry is a new message: it keeps the `run=<id> step=<name>` argsrepr that
        Flower shows (Celery would put the bare argument tuple there).

        Celery turns a retry it cannot publish (the broker is down) into
        ``Reject(requeue=False)``, which drops the message for good.  Here publishing is
        retried until the broker is back; past that, the message is left unacknowledged
        (the worker is told to requeue it) and comes back by the visibility timeout.
        """
        request_args = list(self.request.args or [])
        if "argsrepr" not in options and len(request_args) >= 2:
            options["argsrepr"] = getattr(self.request, "argsrepr", None) or (
                f"run={request_args[0]} step={request_args[1]}"
                + (f" chunk={request_args[3]}" if len(request_args) == 4 else ""))
        deadline = time.monotonic() + patience()
        while True:
            try:
                return super().retry(*args, **options)
            except Reject as rejected:
                if rejected.requeue or time.monotonic() > deadline:
                    raise Reject(rejected.reason, requeue=True) from None
                log.warning("the broker cannot take a retry of %s now (%s); trying again",
                            options.get("argsrepr"), rejected.reason)
                time.sleep(1.0)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Celery calls this in the parent when the hard time limit killed the child."""
        if isinstance(exc, TimeLimitExceeded) and args:
            try:
                hard_timeout(self.app, list(args))
            except Exception:  # noqa: BLE001 - logged; the run can be resumed
                log.exception("could not record the hard time limit of %s", args)


def _recover(run: FleetRun, name: str, attempt: int) -> Outcome | None:
    """A redelivery of an attempt that started: if the store already has its end, reuse it;
    if it died in the middle, nothing of the first copy may outlive it on this host."""
    doc = run.store.load(run.run_id)
    record = doc["execution_state"]["step_outputs"].get(name) or {}
    status = record.get("status")
    if status not in (COMPLETED, SKIPPED, FAILED):
        proc = record.get("proc")
        if proc and proc.get("host") == HOST and kill_group(ProcessRef.from_dict(proc)):
            log.warning("killed what the dead first copy of %s/%s left running (group %s)",
                        run.run_id, name, proc.get("pid"))
        return None  # it died in the middle: run the attempt again
    keep = ("result", "attempt", "error", "error_type", "error_message", "reason", "duration", "host")
    run.recorder.last[name] = step_event(name, status, **{k: record[k] for k in keep if k in record})
    if status != FAILED:
        return Outcome(status, result=record.get("result"), attempt=attempt)
    on_error = run.step(name).on_error
    action = on_error.action if on_error and on_error.action != "retry" else "fail"
    return Outcome(FAILED, error=TaskError(record.get("error") or "failed"), action=action,
                   next_step=on_error.next if on_error and action == "next" else None, attempt=attempt)


def _secret_failure(run: FleetRun, name: str, attempt: int) -> Outcome:
    """A declared secret missing on this worker fails the run (no retry, no on_error)."""
    step = run.step(name)
    last = RetryPlan.for_step(step).max_attempts  # the last attempt: no retry is planned
    outcome = fail_attempt(run.context({}), step, max(attempt, last), time.time(),
                           run.secret_error)  # type: ignore[arg-type]
    outcome.action = "fail"
    return outcome


def _begin(task: Task, run_id: str, name: str, claim: str) -> tuple[FleetRun, Begun] | str:
    """The start of every delivery: the run, then one Lua round trip (status, claim, records).

    Returns why there is nothing to do (a string), or the run and what ``begin`` read; a
    live claim held by another delivery sends this one back to wait.
    """
    set_worker_name(task.request.hostname or "")
    try:
        run = get_run(run_id)
    except RunNotFound:
        return "run gone"
    refs = run.refs.get(name)
    run.fs.worker = task.request.hostname or run.fs.worker
    info = run.fs.begin(run_id, claim, uuid.uuid4().hex, ["*"] if refs is None else refs)
    if info.status != "running":
        return f"run {info.status}"
    if not info.claimed:
        wait = min(CLAIM_WAIT, config.retry_countdown_cap(), max(0.5, info.claim_wait))
        raise task.retry(countdown=wait, max_retries=None)
    if info.gen != run.spec.get("gen", ""):  # resumed since this process cached it
        forget_run(run_id)
        run = get_run(run_id)
    return run, info


def step_body(task: Task, run_id: str, name: str) -> str:
    """One delivery of one step."""
    begun = _begin(task, run_id, name, name)
    if isinstance(begun, str):
        return begun
    run, info = begun
    run.recorder.forget(name)  # nothing held from an earlier delivery that failed half-way
    try:
        attempt = info.attempt
        if info.done:  # recorded by an earlier delivery: finish its dispatch only
            persistently(lambda: advance(task.app, run, run.fs.commit(run_id, name, {}, run.successors(name), None)),
                         f"dispatching after {name}")
            return "already done"
        wait = info.not_before - time.time()
        if wait > EARLY:
            run.fs.release(info.claim_key)
            raise task.retry(countdown=min(wait, config.retry_countdown_cap()), max_retries=None)
        again = info.started == str(attempt)
        outcome = _recover(run, name, attempt) if again else None
        if outcome is None and run.secret_error is not None:
            outcome = _secret_failure(run, name, attempt)
        if outcome is None and run.step(name).task == "batch":
            with run_environment(run.environ):
                outcome, _ = batch.fan_out(task.app, run, name, attempt, info.ns,
                                                 again and info.fanout == str(attempt))
            if outcome is None:
                return "fanned out"
        if outcome is None:
            rc = run.context(info.ns)
            with run_environment(rc.environ):
                outcome = run_step(rc, run.step(name), attempt)
        if outcome.status == RETRYING:
            countdown = persistently(lambda: schedule_retry(run, name, attempt, outcome),
                                     f"scheduling the retry of {name}")
            persistently(lambda: run.fs.release(info.claim_key), f"releasing {name}")
            raise task.retry(countdown=countdown, max_retries=None)
        # The step ran: its commit (which gives the claim back) is retried in place until
        # Redis answers, never by running the step again.
        final = outcome
        persistently(lambda: after_outcome(task.app, run, name, attempt, final), f"recording {name}")
        return outcome.status
    finally:
        _release(run, info)  # when a path above did not


def chunk_body(task: Task, run_id: str, name: str, attempt: int, chunk: int) -> str:
    """One delivery of one chunk of a batch step."""
    begun = _begin(task, run_id, name, f"{name}#{attempt}#{chunk}")
    if isinstance(begun, str):
        return begun
    run, info = begun
    try:
        with run_environment(run.environ):
            batch.run_chunk(task.app, run, name, attempt, chunk, info.ns, again=info.started == "1")
        return "chunk done"
    finally:
        _release(run, info)


def _release(run: FleetRun, info: Begun) -> None:
    """Give the claim back if nothing did; Redis being away must not hide the real outcome
    (the worker's guard then gives it back, or it expires)."""
    try:
        run.fs.release(info.claim_key)
    except TRANSIENT:
        pass


def hard_timeout(app: Any, args: list[Any]) -> None:
    """The child running a step was killed at the hard limit: record the step failed."""
    run = get_run(args[0])
    name = args[1]
    limit = run.limits.get(name, config.step_timeout())
    error = StepTimeoutError(f"step '{name}' ran past its limit of {limit:g}s and was killed")
    if len(args) == 4:  # a chunk: its items fail, the batch goes on counting
        fanout, chunk = int(args[2]), int(args[3])
        run.fs.break_claim(run.run_id, f"{name}#{fanout}#{chunk}")
        plan = run.fs.fanout_plan(run.run_id, name, fanout)
        if plan is None:
            return
        inputs = BatchInputs.model_validate(plan["inputs"])
        items: dict[int, dict[str, Any]] = {
            i: {"status": "failed", "error": str(error), "error_type": "StepTimeoutError"}
            for i in inputs.chunk_indexes(chunk)}
        batch.count_chunk(app, run, name, fanout, chunk, items, plan, inputs)
        return
    run.fs.break_claim(run.run_id, name)
    attempt = int(run.fs.field(run.run_id, f"attempt:{name}") or 1)
    outcome = fail_attempt(run.context({}), run.step(name), attempt, time.time(), error)
    if outcome.status == RETRYING:
        send_step(app, run, name, countdown=schedule_retry(run, name, attempt, outcome))
    else:
        after_outcome(app, run, name, attempt, outcome)




def register(app: Any) -> None:
    """Define the fleet's tasks on ``app``."""

    @app.task(bind=True, base=FleetTask, name=STEP_TASK)
    def step(self: Task, run_id: str, name: str) -> str:
        try:
            return step_body(self, run_id, name)
        except Retry:
            raise
        except TRANSIENT as err:
            raise self.retry(exc=err, countdown=2, max_retries=None) from None

    @app.task(bind=True, base=FleetTask, name=CHUNK_TASK)
    def batch_chunk(self: Task, run_id: str, name: str, attempt: int, chunk: int) -> str:
        try:
            return chunk_body(self, run_id, name, attempt, chunk)
        except Retry:
            raise
        except TRANSIENT as err:
            raise self.retry(exc=err, countdown=2, max_retries=None) from None
