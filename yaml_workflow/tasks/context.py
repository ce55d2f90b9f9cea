"""What a running task can see and do besides its inputs.

The engine builds one :class:`TaskContext` per step execution.  Tasks never import the
engine: rendering, calling a sub-task (``batch``) and reporting progress come in as
callables, so the same task code runs in-process and on a Celery worker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import WorkspacePathError
from ..settings import process_environment
from ..templating import render_text, render_value

log = logging.getLogger("yaml_workflow.task")


def _no_progress(done: int, total: int | None, message: str | None = None, **extra: Any) -> None:
    return None


@dataclass
class TaskContext:
    """The step's view of the run: namespaces, workspace, environment, deadline."""

    step: str
    task: str
    workspace: Path
    namespaces: dict[str, Any]
    # Environment for subprocesses: the process environment, the workflow `env:` and
    # (on the fleet) the submitter's exported environment.
    env: dict[str, str] = field(default_factory=lambda: process_environment())
    attempt: int = 1
    deadline: float | None = None  # time.monotonic() value, or None for no limit
    run_id: str = ""
    # Set by the engine: run a registered task with raw inputs and extra namespaces.
    call_task: Callable[[str, Any, Mapping[str, Any]], Any] | None = None
    report_progress: Callable[..., None] = _no_progress
    # Item records of an earlier run of this step (batch resume): index -> record.
    prior_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Set by the engine: record finished items (index -> record) durably, one call per chunk.
    record_items: Callable[[dict[str, dict[str, Any]]], None] = lambda items: None
    mask: Callable[[str], str] = lambda text: text
    # Set by the engine: a subprocess started for the step (its pid leads its own process
    # group), recorded so that a resume after a crash can kill what outlived its owner.
    on_process: Callable[[int], None] = lambda pid: None
    logger: logging.Logger = log

    # --- templates -------------------------------------------------------------------

    def scope(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The namespaces, with ``extra`` (e.g. ``batch``) laid over them."""
        if not extra:
            return self.namespaces
        merged = dict(self.namespaces)
        merged.update(extra)
        return merged

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Render a raw value (native for a single expression)."""
        return render_value(value, self.scope(extra))

    def render_text(self, source: str, extra: Mapping[str, Any] | None = None) -> str:
        """Render a raw template string to text."""
        return render_text(source, self.scope(extra))

    # --- files and time --------------------------------------------------------------

    def resolve_path(self, path: str | os.PathLike[str]) -> Path:
        """A path inside the workspace; relative to it; refused if it resolves outside."""
        root = self.workspace.resolve()
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = root / candidate
        resolved = candidate.resolve()  # follows symlinks: a link out of the workspace is refused
        if resolved != root and root not in resolved.parents:
            raise WorkspacePathError(
                f"step '{self.step}': path '{path}' resolves outside the workspace {root}",
                hint="use a path inside the run workspace",
            )
        return resolved

    def remaining(self) -> float | None:
        """Seconds left before the step's timeout, or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def progress(self, done: int, total: int | None = None, message: str | None = None, **extra: Any) -> None:
        """Report progress (throttled by the engine to the step's progress_interval)."""
        self.report_progress(done, total, message, **extra)
