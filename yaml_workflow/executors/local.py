"""The local executor: runs a plan in this process, steps of a DAG in a thread pool.

It defines the semantics the Celery executor reproduces: the order of steps, what
``continue`` and ``next`` do, when a run fails.  Each step attempt goes through
:func:`engine.step.run_step`; this module only sequences attempts and steps.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ..engine.cancel import cancel_requested
from ..engine.context import RunContext
from ..engine.plan import Plan
from ..engine.step import Outcome, describe_error, run_step, skip_step
from ..state.document import CANCELLED, COMPLETED, FAILED, SKIPPED, now_iso, status_event

DEFAULT_MAX_PARALLEL = min(32, (os.cpu_count() or 1) + 4)


def run_with_retries(rc: RunContext, name: str, sleep: Callable[[float], Any] = time.sleep) -> Outcome:
    """Attempts of one step until it completes, is skipped or has failed for good."""
    step = rc.workflow.step(name)
    if cancel_requested(rc.workspace):
        rc.cancelled.set()
    attempt = 1
    while True:
        outcome = run_step(rc, step, attempt)
        if outcome.status != "retrying":
            return outcome
        # Wait in slices so a cancel is noticed during long delays.
        deadline = time.monotonic() + outcome.delay
        while not rc.cancelled.is_set() and time.monotonic() < deadline:
            sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        attempt += 1


class _Failure:
    """The first failure that stops the run."""

    def __init__(self) -> None:
        self.step: str | None = None
        self.error: str | None = None

    def set(self, step: str, outcome: Outcome) -> None:
        if self.step is None:
            self.step = step
            self.error = describe_error(outcome.error) if outcome.error else "failed"


def execute_plan(rc: RunContext, plan: Plan, done: set[str] | None = None) -> _Failure:
    """Run every step of the plan not already ``done``; return the stopping failure, if any."""
    done = set(done or ())
    failure = _Failure()
    rc.observer("plan", {"order": plan.order, "done": sorted(done)})
    if plan.is_dag:
        _execute_dag(rc, plan, done, failure)
    else:
        _execute_linear(rc, plan, done, failure)
    if failure.error:
        # The run's error is printed and returned as is: secrets must not reach it.
        failure.error = rc.masker.text(failure.error)
    return failure


def _execute_linear(rc: RunContext, plan: Plan, done: set[str], failure: _Failure) -> None:
    order = plan.order
    index = 0
    while index < len(order):
        name = order[index]
        if rc.cancelled.is_set():
            return
        if name in done:
            index += 1
            continue
        if name in plan.skipped:
            skip_step(rc, name, plan.skipped[name])
            index += 1
            continue
        outcome = run_with_retries(rc, name)
        if outcome.stops_run:
            failure.set(name, outcome)
            return
        if outcome.status == FAILED and outcome.action == "next" and outcome.next_step:
            skips = plan.jump_skips(name, outcome.next_step)
            if skips is None:
                failure.set(name, outcome)
                return
            for jumped, reason in skips.items():
                if jumped not in done:
                    skip_step(rc, jumped, reason)
            index = order.index(outcome.next_step)
            continue
        index += 1


def _execute_dag(rc: RunContext, plan: Plan, done: set[str], failure: _Failure) -> None:
    deps = plan.deps or {}
    finished: set[str] = set(done)
    forced_skip: dict[str, str] = {}
    # A `next:` target no longer waits for the step that jumped to it.
    released: set[tuple[str, str]] = set()
    pending = [n for n in plan.order if n not in finished]
    workers = int(rc.workflow.settings.get("max_parallel", DEFAULT_MAX_PARALLEL))
    running: dict[Future[Outcome], str] = {}
    lock = threading.Lock()

    def ready(name: str) -> bool:
        return all(d in finished or (name, d) in released for d in deps.get(name, []))

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ywf-step") as pool:
        while pending or running:
            if failure.step is None and not rc.cancelled.is_set():
                for name in [n for n in pending if ready(n)]:
                    pending.remove(name)
                    reason = plan.skipped.get(name) or forced_skip.get(name)
                    if reason:
                        skip_step(rc, name, reason)
                        finished.add(name)
                        continue
                    running[pool.submit(run_with_retries, rc, name)] = name
            if not running:
                if pending and (failure.step is not None or rc.cancelled.is_set()):
                    return
                if pending:  # nothing can become ready: only a bug could bring us here
                    failure.step, failure.error = pending[0], "unreachable step in the plan"
                    return
                continue
            completed, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in completed:
                name = running.pop(future)
                outcome = future.result()
                with lock:
                    finished.add(name)
                if outcome.stops_run:
                    failure.set(name, outcome)
                elif outcome.status == FAILED and outcome.action == "next" and outcome.next_step:
                    skips = plan.jump_skips(name, outcome.next_step)
                    if skips is None:
                        failure.set(name, outcome)
                        continue
                    for dependent, reason in skips.items():
                        forced_skip.setdefault(dependent, reason)
                    released.add((outcome.next_step, name))


def finish_run(rc: RunContext, failure: _Failure, step_count: int) -> str:
    """Record the run's final status and return it."""
    if rc.cancelled.is_set():
        status = CANCELLED
        rc.record(status_event(CANCELLED))
    elif failure.step is not None:
        status = FAILED
        rc.record(status_event(FAILED, failed_step={
            "step_name": failure.step, "error": failure.error, "failed_at": now_iso(),
        }))
    else:
        status = COMPLETED
        rc.record(status_event(COMPLETED, current_step=None))
    return status


def outputs_of(rc: RunContext, order: list[str]) -> dict[str, Any]:
    """Results of the steps that ran, by step name, in plan order (as the fleet gives them).

    ``rc.steps`` holds them in the order they finished, which parallel steps make vary.
    """
    names = [n for n in order if n in rc.steps] + [n for n in rc.steps if n not in order]
    return {name: rc.steps[name].get("result") for name in names
            if rc.steps[name].get("status") not in (SKIPPED,)}
