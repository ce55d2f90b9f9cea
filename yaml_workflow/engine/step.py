"""``run_step``: one attempt of one step, the same in every executor.

An attempt goes through public phases that both executors call: :func:`begin_attempt`
(cancel check, condition, the ``running`` record), :func:`execute` (render the inputs and
call the task, within the step's timeout), then :func:`complete` or :func:`fail_attempt`
(record the outcome and decide what happens next: completed, retry after a delay, or
failed with an action — fail, continue, next).  Executors only act on the
:class:`Outcome`: the local one sleeps and calls again, the Celery one calls
``self.retry(countdown=...)``; a fleet batch begins and ends its step through the same
phases, with its items run by the chunks in between.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..exceptions import (
    BatchItemsFailed,
    OutputNotSerializable,
    ShellCommandError,
    StepTimeoutError,
    TaskError,
    WorkflowError,
)
from ..spec.models import Step
from ..state.document import COMPLETED, FAILED, HOST, RETRYING, RUNNING, SKIPPED, step_event
from ..state.processes import ProcessRef
from ..tasks import TaskConfig, TaskContext, get_task
from ..tasks.registry import CALL_BUILTIN, CALL_CONFIG, TaskSpec
from ..templating import Namespace, render_text, render_value, truthy
from .context import RunContext
from .plan import fingerprint
from .resources import Usage, measure
from .retry import RetryPlan


@dataclass
class Outcome:
    """What one attempt of a step came to."""

    status: str  # completed | skipped | retrying | failed
    result: Any = None
    error: BaseException | None = None
    delay: float = 0.0  # before the next attempt, when retrying
    action: str = "fail"  # when failed: fail | continue | next
    next_step: str | None = None
    attempt: int = 1

    @property
    def stops_run(self) -> bool:
        """A failure nothing handles: the run fails."""
        return self.status == FAILED and self.action == "fail"


def describe_error(error: BaseException) -> str:
    """One line for a failure: the cause without a traceback."""
    if isinstance(error, WorkflowError):
        return error.one_line()
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {' '.join(text.split())}"


def _check_json(step: str, result: Any) -> None:
    try:
        json.dumps(result)
    except (TypeError, ValueError) as err:
        raise OutputNotSerializable(
            f"step '{step}' returned a value that cannot be stored as JSON ({err})",
            hint="return plain data: dict, list, str, int, float, bool or None",
        ) from None


def render_inputs(spec: TaskSpec, inputs: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Render a step's inputs once, leaving the task's raw inputs for the task itself."""
    if not spec.raw_inputs:
        return render_value(inputs, scope)  # type: ignore[no-any-return]
    return {
        key: value if key in spec.raw_inputs else render_value(value, scope)
        for key, value in inputs.items()
    }


def call_task(spec: TaskSpec, rendered: dict[str, Any], raw: dict[str, Any], ctx: TaskContext) -> Any:
    """Call a registered task the way it asked to be called."""
    if spec.call == CALL_BUILTIN:
        if spec.inputs_model is not None:
            try:
                model = spec.inputs_model.model_validate(rendered)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())) or "inputs"
                raise TaskError(
                    f"step '{ctx.step}': task '{spec.name}' input '{where}': {first.get('msg')}"
                ) from None
            return spec.func(model, ctx)
        return spec.func(rendered, ctx)
    if spec.call == CALL_CONFIG:
        return spec.func(TaskConfig(ctx, rendered, raw))
    return spec.func(**rendered)


def _with_timeout(step: Step, func: Any) -> Any:
    """Run ``func`` within the step's timeout; past it the step fails, the thread is abandoned."""
    if step.timeout is None:
        return func()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = func()
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, name=f"ywf-step-{step.name}", daemon=True)
    thread.start()
    thread.join(step.timeout)
    if thread.is_alive():
        raise StepTimeoutError(f"step '{step.name}' ran past its timeout of {step.timeout:g}s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


class _Progress:
    """Throttles a task's progress reports to the step's progress_interval.

    A batch calls this once per item, so the path that is not due does no more than a
    clock read: the record (a journal line, a Redis write) happens at most once per
    interval, and the observer sees every report only when it draws them (a live
    display sets ``wants_progress``); others see the recorded reports through record().
    """

    def __init__(self, rc: RunContext, step: Step) -> None:
        self.rc, self.step = rc, step
        self.last = float("-inf")
        self.enabled = step.progress_update
        self.interval = step.progress_interval
        self.live = bool(getattr(rc.observer, "wants_progress", False))

    def __call__(self, done: int, total: int | None = None, message: str | None = None, **extra: Any) -> None:
        if self.live:
            info = {"done": done, "total": total, "message": message, **extra}
            self.rc.observer("progress", {"step": self.step.name, "progress": info})
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < self.interval and (total is None or done < total):
            return  # not due, and not the final report
        self.last = now
        percent = round(100.0 * done / total, 1) if total else None
        self.rc.record({"t": "progress", "step": self.step.name, "at": time.time(),
                        "progress": {"done": done, "total": total, "message": message, **extra,
                                     "percent": percent}})


def make_task_context(rc: RunContext, step: Step, attempt: int, scope: dict[str, Any]) -> TaskContext:
    """The TaskContext of one attempt, wired to render and call sub-tasks."""
    deadline = time.monotonic() + step.timeout if step.timeout else None
    ctx = TaskContext(
        step=step.name,
        task=step.task,
        workspace=rc.workspace,
        namespaces=scope,
        env=rc.environ,
        attempt=attempt,
        deadline=deadline,
        run_id=rc.run_id,
        report_progress=_Progress(rc, step),
        mask=rc.masker.text,
        prior_items=rc.prior_items.get(step.name, {}),
        record_items=lambda items: rc.record({"t": "items", "step": step.name, "items": items,
                                              "at": time.time()}),
        on_process=lambda pid: rc.record({"t": "proc", "step": step.name, "at": time.time(),
                                          "proc": {**ProcessRef.of(pid).to_dict(), "host": HOST}}),
    )

    def call_sub_task(task_name: str, raw_inputs: Any, extra: Any) -> Any:
        sub_spec = get_task(task_name)
        sub_scope = ctx.scope(extra)
        raw = raw_inputs if isinstance(raw_inputs, dict) else {}
        rendered = render_inputs(sub_spec, raw, sub_scope)
        sub_ctx = TaskContext(
            step=step.name, task=task_name, workspace=rc.workspace, namespaces=sub_scope,
            env=rc.environ, attempt=attempt, deadline=deadline, run_id=rc.run_id,
            mask=rc.masker.text, on_process=ctx.on_process,
        )
        sub_ctx.call_task = call_sub_task
        return call_task(sub_spec, rendered, raw, sub_ctx)

    ctx.call_task = call_sub_task
    return ctx


def condition_holds(step: Step, scope: dict[str, Any]) -> bool:
    """Whether the step's ``condition`` (rendered) lets it run."""
    if step.condition is None:
        return True
    value = render_value(step.condition, scope) if isinstance(step.condition, str) else step.condition
    return truthy(value)


def skip_step(rc: RunContext, step_name: str, reason: str) -> Outcome:
    """Record a step as skipped (condition false, --skip-steps, jumped over by next)."""
    event = step_event(step_name, SKIPPED, reason=reason, finished_at=time.time())
    rc.record(event)
    rc.set_step(step_name, event)
    return Outcome(SKIPPED)


@dataclass
class Attempt:
    """One attempt of a step that has begun: recorded ``running``, its namespaces built."""

    rc: RunContext
    step: Step
    number: int
    started: float
    scope: dict[str, Any]

    def fail(self, error: BaseException) -> Outcome:
        """What the attempt's failure comes to (see :func:`fail_attempt`)."""
        return fail_attempt(self.rc, self.step, self.number, self.started, error)


def begin_attempt(rc: RunContext, step: Step, attempt: int = 1) -> Attempt | Outcome:
    """Phase 1: the cancel check and the condition; then the step is recorded running.

    Returns the Outcome when the attempt ends here (cancelled, condition false, or the
    condition failed to render), else the :class:`Attempt` to execute.
    """
    if rc.cancelled.is_set():
        return Outcome(FAILED, error=TaskError("the run was cancelled"), action="fail")
    started = time.time()
    scope = rc.namespaces(step, attempt)
    try:
        if not condition_holds(step, scope):
            return skip_step(rc, step.name, "condition was false")
        get_task(step.task)
    except Exception as error:  # noqa: BLE001 - every failure goes through error handling
        return fail_attempt(rc, step, attempt, started, error)
    rc.record(step_event(step.name, RUNNING, attempt=attempt, started_at=started,
                         fingerprint=fingerprint(step), host=HOST, pid=os.getpid()))
    return Attempt(rc, step, attempt, started, scope)


def execute(attempt: Attempt) -> tuple[Any, dict[str, Any]]:
    """Phase 2: render the inputs and call the task, both within the step's timeout; the
    result (masked, checked to be JSON) and the resources it used.  Raises on failure."""
    rc, step = attempt.rc, attempt.step
    spec = get_task(step.task)
    ctx = make_task_context(rc, step, attempt.number, attempt.scope)
    before = Usage.now()
    thread_cpu: list[float] = []

    def invoke() -> Any:
        # Runs in the thread that executes the task, so thread_time is the task's own,
        # and a template that loops is stopped by the step's timeout like the task is.
        start_cpu = time.thread_time()
        try:
            rendered = render_inputs(spec, step.inputs, attempt.scope)
            return call_task(spec, rendered, step.inputs, ctx)
        finally:
            thread_cpu.append(time.thread_time() - start_cpu)

    result = rc.masker.value(_with_timeout(step, invoke))
    _check_json(step.name, result)
    return result, measure(before, thread_cpu[0] if thread_cpu else None)


def complete(attempt: Attempt, result: Any, resources: dict[str, Any] | None = None) -> Outcome:
    """Phase 3: record the step completed with its result."""
    finished = time.time()
    fields: dict[str, Any] = {"result": result, "attempt": attempt.number, "started_at": attempt.started,
                              "finished_at": finished, "duration": round(finished - attempt.started, 6)}
    if resources is not None:
        fields["resources"] = resources
    event = step_event(attempt.step.name, COMPLETED, **fields)
    attempt.rc.record(event)
    attempt.rc.set_step(attempt.step.name, event)
    return Outcome(COMPLETED, result=result, attempt=attempt.number)


def run_step(rc: RunContext, step: Step, attempt: int = 1) -> Outcome:
    """Run one attempt of ``step`` and record what came of it: begin, execute, complete or fail."""
    begun = begin_attempt(rc, step, attempt)
    if isinstance(begun, Outcome):
        return begun
    try:
        result, resources = execute(begun)
    except Exception as error:  # noqa: BLE001 - every failure goes through error handling
        return begun.fail(error)
    return complete(begun, result, resources)


def fail_attempt(rc: RunContext, step: Step, attempt: int, started: float, error: BaseException) -> Outcome:
    """Phase 3 on failure: a retry after a delay, or a failure with its action (fail,
    continue, next), recorded with the error and the step's error message."""
    message = rc.masker.text(describe_error(error))
    error_type = type(error).__name__
    plan = RetryPlan.for_step(step)
    if plan.should_retry(error, attempt) and not rc.cancelled.is_set():
        delay = plan.delay_before(attempt + 1)
        rc.record(step_event(step.name, RETRYING, attempt=attempt, max_attempts=plan.max_attempts,
                             next_delay=delay, error=message, error_type=error_type))
        return Outcome(RETRYING, error=error, delay=delay, attempt=attempt)
    on_error = step.on_error
    action = on_error.action if on_error else "fail"
    if action == "retry":
        action = "fail"
    error_message = _error_message(rc, step, error, message, attempt)
    finished = time.time()
    fields: dict[str, Any] = {
        "attempt": attempt, "error": message, "error_type": error_type,
        "error_message": error_message, "started_at": started, "finished_at": finished,
        "duration": round(finished - started, 6),
        # What the failure led to: `continue`/`next` mean the run went on past it, so a
        # resume keeps it; `fail` (or a cancel) means it runs again.
        "action": "fail" if rc.cancelled.is_set() else action,
    }
    if isinstance(error, BatchItemsFailed):
        fields["result"] = rc.masker.value(error.result)
    if isinstance(error, ShellCommandError):
        fields["result"] = {"return_code": error.return_code,
                            "stdout": rc.masker.text(error.stdout), "stderr": rc.masker.text(error.stderr)}
    event = step_event(step.name, FAILED, **fields)
    rc.record(event)
    rc.set_step(step.name, event)
    return Outcome(FAILED, error=error, action=action, attempt=attempt,
                   next_step=on_error.next if on_error and action == "next" else None)


def _error_message(rc: RunContext, step: Step, error: BaseException, message: str, attempt: int) -> str:
    template = step.on_error.message if step.on_error else None
    if not template:
        return message
    scope = rc.namespaces(step, attempt)
    scope["error"] = Namespace("error", {
        "message": message, "type": type(error).__name__, "step": step.name, "attempt": attempt,
    })
    try:
        return rc.masker.text(render_text(template, scope))
    except WorkflowError as err:
        return f"{template} (message template failed: {err.one_line()})"
