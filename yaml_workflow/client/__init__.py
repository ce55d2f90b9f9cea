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

from .actions import cancel, retry, skip
from .files import find_workflow_files, list_workflows
from .inspect import locate, logs, runs, secret_names, status
from .models import (
    ActionResult,
    LogEntry,
    RunList,
    RunResult,
    RunStatus,
    RunSummary,
    StepState,
    SubmitResult,
    ValidationIssue,
    ValidationReport,
    WorkflowFile,
)
from .start import check_timeout, load, resume, run, submit, validate, wait_for

__all__ = [
    # starting runs
    "run", "submit", "resume", "wait_for", "validate", "load", "check_timeout",
    # workflow files
    "list_workflows", "find_workflow_files",
    # reading runs
    "status", "runs", "logs", "locate", "secret_names",
    # acting on runs
    "cancel", "retry", "skip",
    # results
    "ActionResult", "LogEntry", "RunList", "RunResult", "RunStatus", "RunSummary",
    "StepState", "SubmitResult", "ValidationIssue", "ValidationReport", "WorkflowFile",
]
