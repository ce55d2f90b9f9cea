"""What a caller asks of a run, and what it gets back; the same for both executors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..settings import process_environment
from ..spec.models import Workflow
from .context import Observer, no_observer


@dataclass
class RunRequest:
    """A run to start or resume."""

    workflow: Workflow | None
    params: dict[str, Any] = field(default_factory=dict)  # as given (command-line strings)
    base_dir: Path | None = None
    workspace: Path | None = None
    flow: str | None = None
    start_from: str | None = None
    skip_steps: list[str] = field(default_factory=list)
    state_url: str | None = None
    # What started the run: {type: manual|schedule|watch, name, tick} (None: manual).
    trigger: dict[str, Any] | None = None
    observer: Observer = no_observer
    # resume
    resume: bool = False
    run_id: str | None = None
    from_step: str | None = None
    override_params: bool = False
    force: bool = False
    # Manual repair (`retry`/`skip` RUN --step S): steps to run again / to mark skipped.
    rerun_steps: list[str] = field(default_factory=list)
    mark_skipped: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=lambda: process_environment())


class RunResult(BaseModel):
    """How a run ended (what `run` and `submit --wait` print with --format json)."""

    model_config = ConfigDict(defer_build=True)

    run_id: str
    status: str  # completed | failed | cancelled | running
    workflow: str
    workspace: str
    outputs: dict[str, Any]
    error: str | None = None
    failed_step: str | None = None

    @property
    def ok(self) -> bool:
        """True when the run completed."""
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        """The document `run/submit --format json` print."""
        return {
            "run_id": self.run_id,
            "status": "success" if self.ok else "failed",
            "run_status": self.status,
            "workflow": self.workflow,
            "workspace": self.workspace,
            "outputs": self.outputs,
            "error": self.error,
            "failed_step": self.failed_step,
        }
