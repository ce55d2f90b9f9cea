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
