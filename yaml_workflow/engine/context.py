"""Everything one run needs while its steps execute, in whichever executor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..settings import process_environment
from ..spec.models import Step, Workflow
from ..templating import Namespace, render_value
from .secrets import Masker
from .step_log import append_step_log

# What a step record keeps in the `steps` namespace (and in step_outputs).
STEP_NS_KEYS = ("status", "result", "error", "error_message", "error_type", "attempt", "reason", "items")

Observer = Callable[[str, dict[str, Any]], None]

# `workflow.trigger` of a run that records no trigger (started by hand, or before triggers).
MANUAL_TRIGGER: dict[str, Any] = {"type": "manual", "name": None, "tick": None}


def no_observer(kind: str, info: dict[str, Any]) -> None:
    """The observer that ignores everything (runs nobody watches)."""
    return None


def _worth_logging(event: dict[str, Any]) -> bool:
    """Failures, retries and what subprocesses printed go to logs/<step>.log.

    A quiet success has nothing to say that the state does not hold, and creating a file
    per step would be most of the per-step cost of a fast workflow.
    """
    status = event.get("status")
    if status in ("failed", "retrying"):
        return True
    result = event.get("result")
    return status == "completed" and isinstance(result, dict) and bool(
        result.get("stdout") or result.get("stderr")
    )


@dataclass
class RunContext:
    """A run in progress: its identity, its namespaces and the recorder of its transitions."""

    workflow: Workflow
    run_id: str
    workspace: Path
    args: dict[str, Any]
    recorder: Any  # RunRecorder-like: .record(event)
    run_number: int | None = None
    # The environment of templates and subprocesses (process env + workflow `env:`).
    environ: dict[str, str] = field(default_factory=lambda: process_environment())
    masker: Masker = field(default_factory=Masker)
    timestamp: str = ""
    observer: Observer = no_observer
    # The live `steps` namespace; entries are replaced whole, never mutated, so a
    # template reading it while a parallel step finishes sees old or new, not half.
    steps: Namespace = field(default_factory=lambda: Namespace("steps"))
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Item records of steps that run again (batch resume): step -> index -> record.
    prior_items: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Set once the observer has been told which run this is (see `record`).
    announced: bool = False
    # What started the run ({type, name, tick}); None: by hand (`run`, `submit`).
    trigger: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._args_ns = Namespace("args", self.args)
        self._env_ns = Namespace("env", self.environ)
        self._settings_ns = Namespace("settings", self.workflow.settings)
        self._workflow_ns = Namespace(
            "workflow",
            {
                "name": self.workflow.name,
                "file": self.workflow.source,
                "workspace": str(self.workspace),
                "run_id": self.run_id,
                "run_number": self.run_number,
                "timestamp": self.timestamp,
                "description": self.workflow.description,
                "trigger": Namespace("trigger", dict(self.trigger or MANUAL_TRIGGER)),
            },
        )

    # --- namespaces ------------------------------------------------------------------

    def namespaces(self, step: Step | None = None, attempt: int = 1) -> dict[str, Any]:
        """Template namespaces as a step sees them."""
        scope: dict[str, Any] = {
            "args": self._args_ns,
            "env": self._env_ns,
            "steps": self.steps,
            "workflow": self._workflow_ns,
            "settings": self._settings_ns,
        }
        if step is not None:
            scope["current"] = Namespace(
                "current", {"name": step.name, "task": step.task, "attempt": attempt}
            )
        return scope

    def set_step(self, name: str, record: Mapping[str, Any]) -> None:
        """Make a step's record visible to later templates as ``steps.<name>``."""
        entry = {k: record[k] for k in STEP_NS_KEYS if k in record}
        entry.setdefault("result", None)
        self.steps[name] = entry

    def load_steps(self, step_outputs: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore the ``steps`` namespace from stored step records (resume, fleet)."""
        for name, record in step_outputs.items():
            self.set_step(name, record)

    def render_env(self) -> None:
        """Render the workflow's ``env:`` (templated with args) into the environment."""
        if not self.workflow.env:
            return
        scope = {"args": self._args_ns, "env": Namespace("env", dict(self.environ))}
        for key, value in self.workflow.env.items():
            rendered = render_value(value, scope)
            self.environ[str(key)] = "" if rendered is None else str(rendered)
        self._env_ns = Namespace("env", self.environ)  # templates see what subprocesses get

    # --- recording -------------------------------------------------------------------

    def record(self, event: dict[str, Any]) -> None:
        """Record a transition (its data masked, its ids, names and statuses not) and tell
        the observer."""
        if self.masker:
            event = self.masker.event(event)
        self.recorder.record(event)
        if event.get("t") == "step" and _worth_logging(event):
            append_step_log(self.workspace, event)
        if not self.announced:
            # Before its first transition, an observer hears which run this is: a caller
            # that runs the workflow elsewhere (a child process) learns the id early.
            self.announced = True
            self.observer("run", {"run_id": self.run_id, "workspace": str(self.workspace),
                                  "workflow": self.workflow.name})
        self.observer(event.get("t", ""), event)

    def elapsed_since(self, started: float) -> float:
        """Seconds since a time.time() value, rounded for records."""
        return round(time.time() - started, 6)
