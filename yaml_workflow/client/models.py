"""The typed results of the public API: what the CLI prints, the dashboard and the MCP server show."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..engine.request import RunResult

__all__ = [
    "ActionResult",
    "LogEntry",
    "RunList",
    "RunResult",
    "RunStatus",
    "RunSummary",
    "StepOutput",
    "StepState",
    "SubmitResult",
    "ValidationIssue",
    "ValidationReport",
    "WorkspaceFile",
    "FileContent",
    "WorkflowFile",
    "ScheduleInfo",
    "FireResult",
]

_MODEL = ConfigDict(defer_build=True, extra="forbid")


class StepState(BaseModel):
    """One planned step of a run: its status and what its last attempt recorded."""

    model_config = _MODEL

    step: str
    status: str = Field(description="pending, running, retrying, completed, failed or skipped")
    attempts: int | None = None
    duration: float | None = None
    host: str | None = None
    error: str | None = None
    reason: str | None = None
    progress: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    depends_on: list[str] = Field(default_factory=list, description="the steps it waits for")
    stalled: str | None = Field(None, description="why a running step is thought lost, if it is")


class RunStatus(BaseModel):
    """A run's state: what `status` prints and the dashboard's run page shows."""

    model_config = _MODEL

    run_id: str
    workflow: str | None
    status: str | None
    workspace: str | None
    start_time: str | None
    last_updated: str | None
    current_step: str | None
    failed_step: dict[str, Any] | None
    steps_done: int
    steps_total: int
    lost_by_store: bool = Field(description="the fleet's Redis lost the run; shown from its workspace")
    store: str = Field(description="where the run was read: a Redis URL (password masked) or 'workspace'")
    warning: str | None = None
    mode: str | None = Field(None, description="local or fleet")
    params: dict[str, Any] = Field(default_factory=dict)
    trigger: dict[str, Any] | None = None
    flags: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    progress: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepState] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list,
                               description="the secrets its workflow declares (names only; values are masked)")

    @property
    def finished(self) -> bool:
        """True once the run completed, failed or was cancelled."""
        return self.status in ("completed", "failed", "cancelled")


class RunSummary(BaseModel):
    """One row of `runs`."""

    model_config = _MODEL

    run_id: str
    workflow: str | None
    status: str | None
    start_time: str | None
    last_updated: str | None
    workspace: str | None
    current_step: str | None = None
    steps_done: int | None = None
    steps_total: int | None = Field(None, description="steps in the run's plan")
    hosts: list[str] = Field(default_factory=list, description="the hosts its steps ran on")
    duration: float | None = Field(None, description="seconds from start to end, or to now while it runs")
    store: str = "workspace"
    trigger: dict[str, Any] | None = None


class RunList(BaseModel):
    """Runs from every configured place, newest first."""

    model_config = _MODEL

    runs: list[RunSummary]
    store: str = Field("workspace", description="the state store that was read (its URL, password "
                                                "masked), or 'workspace' when only the workspaces were")
    sources: list[str] = Field(description="the places that were read")
    warnings: list[str] = Field(default_factory=list)
    total: int | None = Field(0, description="runs that matched before the page was cut "
                                             "(None: not counted, the store holds more than was read)")
    offset: int = Field(0, description="where the page starts among the matching runs")
    limit: int | None = Field(None, description="the page size asked for")
    more: bool = Field(False, description="more matching runs follow this page")


class StepOutput(BaseModel):
    """What a step recorded: its result (stored masked, as everywhere) and its status record."""

    model_config = _MODEL

    step: str
    status: str
    result: Any = None
    has_result: bool = Field(False, description="the step recorded a result (it may be null)")


class WorkspaceFile(BaseModel):
    """A file of a run's workspace (path relative to it)."""

    model_config = _MODEL

    path: str
    size: int


class FileContent(BaseModel):
    """The text of a file of a run's workspace."""

    model_config = _MODEL

    path: str = Field(description="relative to the workspace")
    text: str
    size: int
    truncated: bool = False


class LogEntry(BaseModel):
    """A step's log file."""

    model_config = _MODEL

    step: str
    path: str
    text: str
    truncated: bool = False


class ActionResult(BaseModel):
    """What `cancel`, `retry` and `skip` did, read back from the store after writing."""

    model_config = _MODEL

    run_id: str
    action: str
    status: str | None = Field(description="the run's status as read back after the action")
    message: str
    result: RunResult | None = Field(None, description="the run's outcome when the action waited for it")


class SubmitResult(BaseModel):
    """A run handed to the fleet."""

    model_config = _MODEL

    run_id: str
    workflow: str
    workspace: str
    existing: bool = Field(False, description="an earlier submit with the same idempotency key made this run")
    result: RunResult | None = Field(None, description="the run's outcome, when the submit waited for it")


class ValidationIssue(BaseModel):
    """One error or warning about a workflow file."""

    model_config = _MODEL

    message: str
    line: int | None = None
    step: str | None = None


class ValidationReport(BaseModel):
    """What `validate` found."""

    model_config = _MODEL

    file: str
    valid: bool
    steps: int = 0
    errors: list[ValidationIssue] = Field(default_factory=list)
    warnings: list[ValidationIssue] = Field(default_factory=list)


class WorkflowFile(BaseModel):
    """A workflow file found under a directory (`list`), loaded and checked."""

    model_config = _MODEL

    file: str = Field(description="the path relative to the directory listed")
    valid: bool
    name: str | None = None
    description: str | None = None
    steps: int | None = None
    params: list[str] = Field(default_factory=list, description="the params it declares")
    error: str | None = Field(None, description="why it does not load, with file:line")


class ScheduleInfo(BaseModel):
    """A schedule in the fleet's Redis: what `schedule list` shows."""

    model_config = _MODEL

    name: str = Field(description="the schedule's name: its workflow's `name`")
    timing: str = Field(description="`cron EXPR ZONE` or `every Ns`")
    catchup: str
    max_active_runs: int
    params: dict[str, Any] = Field(default_factory=dict)
    paused: bool
    source: str | None = Field(None, description="the file it was added from")
    added: str | None = None
    next_tick: str | None = Field(None, description="the next tick (None while paused)")
    cursor: str | None = Field(None, description="the last tick decided by a beat")
    last: dict[str, Any] | None = Field(
        None, description="the last tick's outcome: {tick, outcome: run|skipped|failed, run_id, reason}")
    last_status: str | None = Field(None, description="the status of the last tick's run")
    recent: list[dict[str, Any]] = Field(default_factory=list, description="the latest log entries, newest first")


class FireResult(BaseModel):
    """What `schedule run-now` made of its tick."""

    model_config = _MODEL

    name: str
    tick: str
    outcome: str | None = Field(None, description="run, skipped, failed; None: no worker decided it in time")
    run_id: str | None = None
    reason: str | None = None
