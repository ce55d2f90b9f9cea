"""The public Python API: what the CLI, the dashboard (`serve`) and the MCP server call.

    from yaml_workflow import client

    result = client.run("wf.yaml", {"name": "Alice"})           # here, until it ends
    submitted = client.submit("wf.yaml", {"name": "Alice"})     # on the fleet
    outcome = client.wait_for(submitted.run_id, timeout=600)
    client.status(submitted.run_id).steps

Every function returns a typed result (pydantic models in :mod:`.models`) and raises
the project's exceptions (:mod:`yaml_workflow.exceptions`), each carrying its exit code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {  # name -> the module that defines it (imported on first use: the CLI starts fast)
    "make_trigger": "..engine.lifecycle",
    "cancel": ".actions",
    "resume_detached": ".actions",
    "retry": ".actions",
    "skip": ".actions",
    "files": ".files",
    "read_file": ".files",
    "locate": ".inspect",
    "logs": ".inspect",
    "outputs": ".inspect",
    "runs": ".inspect",
    "secret_names": ".inspect",
    "status": ".inspect",
    "watch": ".inspect",
    "ActionResult": ".models",
    "FileContent": ".models",
    "FireResult": ".models",
    "LogEntry": ".models",
    "RunList": ".models",
    "RunResult": ".models",
    "RunStatus": ".models",
    "RunSummary": ".models",
    "ScheduleInfo": ".models",
    "StepOutput": ".models",
    "StepState": ".models",
    "SubmitResult": ".models",
    "ValidationIssue": ".models",
    "ValidationReport": ".models",
    "WorkflowFile": ".models",
    "WorkspaceFile": ".models",
    "add_schedule": ".schedules",
    "pause_schedule": ".schedules",
    "remove_schedule": ".schedules",
    "resume_schedule": ".schedules",
    "run_now": ".schedules",
    "schedules": ".schedules",
    "check_timeout": ".start",
    "load": ".start",
    "resume": ".start",
    "run": ".start",
    "submit": ".start",
    "validate": ".start",
    "wait_for": ".start",
    "find_workflow_files": ".workflows",
    "list_workflows": ".workflows",
}

__all__ = [
    # starting runs
    "run", "submit", "resume", "wait_for", "validate", "load", "check_timeout", "make_trigger",
    # workflow files
    "list_workflows", "find_workflow_files",
    # reading runs
    "status", "watch", "runs", "logs", "outputs", "files", "read_file", "locate", "secret_names",
    # acting on runs
    "cancel", "retry", "skip", "resume_detached",
    # schedules (the fleet's beat)
    "add_schedule", "schedules", "pause_schedule", "resume_schedule", "remove_schedule", "run_now",
    # results
    "ActionResult", "FileContent", "FireResult", "LogEntry", "RunList", "RunResult", "RunStatus", "RunSummary",
    "ScheduleInfo", "StepOutput", "StepState", "SubmitResult", "ValidationIssue", "ValidationReport", "WorkflowFile",
    "WorkspaceFile",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    loaded = importlib.import_module(module, __name__)
    # Bind every name of that module now: loading `.files` or `.schedules` set the package's
    # attribute of that name to the submodule, and the function must win.
    for other, where in _WHERE.items():
        if where == module:
            globals()[other] = getattr(loaded, other)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from ..engine.lifecycle import make_trigger
    from .actions import cancel, resume_detached, retry, skip
    from .files import files, read_file
    from .inspect import locate, logs, outputs, runs, secret_names, status, watch
    from .models import (
        ActionResult,
        FileContent,
        FireResult,
        LogEntry,
        RunList,
        RunResult,
        RunStatus,
        RunSummary,
        ScheduleInfo,
        StepOutput,
        StepState,
        SubmitResult,
        ValidationIssue,
        ValidationReport,
        WorkflowFile,
        WorkspaceFile,
    )
    from .schedules import (
        add_schedule,
        pause_schedule,
        remove_schedule,
        resume_schedule,
        run_now,
        schedules,
    )
    from .start import check_timeout, load, resume, run, submit, validate, wait_for
    from .workflows import find_workflow_files, list_workflows
