"""Starting runs: ``run`` (here), ``submit`` (the fleet), ``resume``, ``wait`` and ``validate``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..engine.context import Observer
from ..engine.request import RunRequest, RunResult
from ..exceptions import UsageError, WorkflowError
from ..spec.models import Workflow
from .models import SubmitResult, ValidationIssue, ValidationReport

WorkflowArg = str | Path | Workflow


def _quiet(kind: str, info: dict[str, Any]) -> None:
    return None


def load(workflow: WorkflowArg) -> Workflow:
    """A workflow file loaded and checked (every load-time error raised here), or as given."""
    if isinstance(workflow, Workflow):
        return workflow
    from ..engine.load import load_workflow

    return load_workflow(workflow)


def _request(workflow: WorkflowArg | None, params: Mapping[str, Any] | None, **options: Any) -> RunRequest:
    def path(value: Any) -> Path | None:
        return Path(value) if value is not None else None

    return RunRequest(
        workflow=load(workflow) if workflow is not None else None,
        params=dict(params or {}),
        base_dir=path(options.get("base_dir")), workspace=path(options.get("workspace")),
        flow=options.get("flow"), start_from=options.get("start_from"),
        skip_steps=list(options.get("skip_steps") or []),
        observer=options.get("observer") or _quiet,
    )


def run(workflow: WorkflowArg, params: Mapping[str, Any] | None = None, *,
        base_dir: str | Path | None = None, workspace: str | Path | None = None,
        flow: str | None = None, start_from: str | None = None,
        skip_steps: list[str] | None = None, observer: Observer | None = None,
        trigger: dict[str, Any] | None = None) -> RunResult:
    """Run a workflow in this process until it ends; its result (status, outputs, error).
    ``trigger``: what started the run, as recorded (default: by hand)."""
    from ..executors.local_run import start_run

    request = _request(workflow, params, base_dir=base_dir, workspace=workspace, flow=flow,
                       start_from=start_from, skip_steps=skip_steps, observer=observer)
    request.trigger = trigger
    return start_run(request)


def submit(workflow: WorkflowArg, params: Mapping[str, Any] | None = None, *,
           base_dir: str | Path | None = None, workspace: str | Path | None = None,
           flow: str | None = None, start_from: str | None = None,
           skip_steps: list[str] | None = None, queue: str | None = None,
           export_env: bool = True, wait: bool = False, timeout: float | None = None,
           observer: Observer | None = None, idempotency_key: str | None = None,
           trigger: dict[str, Any] | None = None) -> SubmitResult:
    """Hand a run to the fleet; with ``wait``, follow it to its end (WaitTimeout past ``timeout``).

    With ``idempotency_key``, a second submit with the same key (within
    YAML_WORKFLOW_IDEMPOTENCY_TTL) starts nothing and returns the first one's run
    (``existing`` is then True); the same key with another workflow or other params is
    refused (UsageError).  ``trigger``: what started the run (default: by hand).
    """
    from ..executors.celery.idempotent import submit_once
    from ..executors.celery.submit import submit_run

    check_timeout(timeout)
    request = _request(workflow, params, base_dir=Path(base_dir).absolute() if base_dir else None,
                       workspace=Path(workspace).absolute() if workspace else None, flow=flow,
                       start_from=start_from, skip_steps=skip_steps)
    request.trigger = trigger
    existing = False
    if idempotency_key is not None:
        submitted = submit_once(request, idempotency_key, queue=queue, export_env=export_env)
        run_id, existing, where = submitted.run_id, submitted.existing, submitted.workspace
    else:
        run_id = submit_run(request, queue=queue, export_env=export_env)
        where = str(request.workspace)
    assert request.workflow is not None
    result = wait_for(run_id, timeout=timeout, observer=observer) if wait else None
    return SubmitResult(run_id=run_id, workflow=request.workflow.name, workspace=where,
                        existing=existing, result=result)


def check_timeout(timeout: float | None) -> None:
    """A wait limit is a positive, finite number of seconds."""
    if timeout is not None and not (0 < timeout < float("inf")):
        raise UsageError(f"--timeout {timeout}: give a positive number of seconds")


def wait_for(run_id: str, *, timeout: float | None = None, observer: Observer | None = None) -> RunResult:
    """Follow a fleet run until it ends (the observer sees the plan, each step, the end)."""
    from ..executors.celery.follow import follow_run

    check_timeout(timeout)
    return follow_run(run_id, observer=observer or _quiet, timeout=timeout)


def resume(run: str | None = None, params: Mapping[str, Any] | None = None, *,
           workflow: WorkflowArg | None = None, workspace: str | Path | None = None,
           base_dir: str | Path | None = None, from_step: str | None = None,
           override_params: bool = False, force: bool = False, fleet: bool = False,
           wait: bool = True, timeout: float | None = None,
           observer: Observer | None = None) -> RunResult | None:
    """Continue a failed or interrupted run: here (``run --resume``) or on the fleet
    (``submit --resume``, None when not waited for)."""
    if fleet:
        from ..executors.celery.resume import resume_fleet_run

        if run is None:
            raise UsageError("a fleet resume needs the run id")
        check_timeout(timeout)
        given = dict(params or {})
        where = workspace or base_dir
        return resume_fleet_run(
            run, from_step=from_step, force=force,
            override_params=given if override_params else None,
            params=None if override_params else given,
            workflow=load(workflow) if workflow is not None else None,
            workspace=Path(where).absolute() if where else None,
            wait=wait, timeout=timeout, observer=observer)
    from ..executors.local_run import resume_run

    request = _request(workflow, params, base_dir=base_dir, workspace=workspace, observer=observer)
    request.resume, request.from_step = True, from_step
    request.override_params, request.force = override_params, force
    return resume_run(request)


def validate(workflow: WorkflowArg, *, strict: bool = False,
             params: Mapping[str, Any] | None = None) -> ValidationReport:
    """Load and lint a workflow file; errors (and, with ``strict``, warnings) make it invalid.
    With ``params``, they are checked as a run would check them (types, required, allowed)."""
    from ..engine.lint import lint_workflow
    from ..exceptions import SpecError
    from ..spec.params import resolve_params

    file = str(workflow.source if isinstance(workflow, Workflow) else workflow)
    try:
        loaded = load(workflow)
    except WorkflowError as err:
        if isinstance(err, SpecError):
            issue = ValidationIssue(message=err.detail + (f" ({err.hint})" if err.hint else ""), line=err.line)
        else:
            issue = ValidationIssue(message=err.one_line())
        return ValidationReport(file=file, valid=False, errors=[issue])
    warnings = [ValidationIssue(message=w.message, line=w.line, step=w.step) for w in lint_workflow(loaded)]
    errors: list[ValidationIssue] = []
    if strict:
        errors, warnings = warnings, []
    if params is not None:
        from ..settings import process_environment

        environ = process_environment()  # no error may quote a declared secret's value
        hidden = [environ[name] for name in loaded.secrets if environ.get(name)]
        try:
            resolve_params(loaded, dict(params), hidden)
        except WorkflowError as err:
            errors.append(ValidationIssue(message=err.one_line()))
    return ValidationReport(file=file, valid=not errors, steps=len(loaded.steps), errors=errors,
                            warnings=warnings)
