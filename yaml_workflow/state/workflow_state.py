"""``WorkflowState``: the seed's Python API over whichever store holds a run.

    from yaml_workflow.state import WorkflowState

    state = WorkflowState.load("workflow_id")      # or a workspace path
    state.update_step("step1", status="completed", output="result")
    state.set_variable("key", "value")
    state.mark_completed()
    state.save()

Changes are transitions applied to a local copy at once (so the properties show them)
and queued; ``save()`` records them through a :class:`.recorder.RunRecorder`, so with
Redis as the store the workspace's JSON mirror gets the same transitions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .document import COMPLETED, apply, status_event, step_event
from .locate import locate_run
from .recorder import RunRecorder
from .store import Store
from .stores.json_file import JsonFileStore


class WorkflowState:
    """A run's state: read it, change it, save the changes."""

    def __init__(self, store: Store, run_id: str, doc: dict[str, Any]) -> None:
        self.store, self.run_id, self._doc = store, run_id, doc
        self._pending: list[dict[str, Any]] = []

    @classmethod
    def load(cls, workflow_id: str | os.PathLike[str]) -> WorkflowState:
        """The run with this id (Redis, else under the workspace root) or in this workspace."""
        found = locate_run(os.fspath(workflow_id))
        store = found.store
        if found.lost_by_store and found.workspace is not None:
            # Redis no longer has it: its workspace file is the whole state now.
            store.close()
            store = JsonFileStore("file://", root=found.workspace.parent)
        return cls(store, found.run_id, found.doc)

    # --- reading ---------------------------------------------------------------------

    @property
    def workflow_id(self) -> str:
        """The run id."""
        return str(self._doc["workflow_id"])

    @property
    def status(self) -> str:
        """The run's status (running, completed, failed, cancelled)."""
        return str(self._doc["status"])

    @property
    def current_step(self) -> str | None:
        """The step that ran last (None when the run finished)."""
        return self._doc["execution_state"].get("current_step")  # type: ignore[no-any-return]

    @property
    def step_outputs(self) -> dict[str, dict[str, Any]]:
        """Step records by name; ``["step1"]["result"]`` is the step's output."""
        return self._doc["execution_state"]["step_outputs"]  # type: ignore[no-any-return]

    @property
    def variables(self) -> dict[str, Any]:
        """The run's variables."""
        return self._doc.setdefault("variables", {})  # type: ignore[no-any-return]

    @property
    def document(self) -> dict[str, Any]:
        """The whole state document, with unsaved changes applied."""
        return self._doc

    # --- changing --------------------------------------------------------------------

    def _change(self, event: dict[str, Any]) -> None:
        apply(self._doc, event)
        self._pending.append(event)

    def update_step(self, name: str, status: str, output: Any = None, **fields: Any) -> None:
        """Set a step's status (and its output, error... as keyword fields)."""
        if output is not None:
            fields["result"] = output
        self._change(step_event(name, status, **fields))

    def set_variable(self, key: str, value: Any) -> None:
        """Set one run variable."""
        self._change({"t": "var", "key": key, "value": value, "at": time.time()})

    def mark_completed(self) -> None:
        """Mark the run completed."""
        self._change(status_event(COMPLETED, current_step=None))

    def save(self) -> None:
        """Record the queued changes in the store (and the workspace mirror with Redis)."""
        if not self._pending:
            return
        workspace = self._doc.get("workspace")
        has_mirror = bool(workspace) and Path(str(workspace)).is_dir()
        recorder = RunRecorder(self.store, self.run_id, workspace if has_mirror else None)
        events, self._pending = self._pending, []
        for event in events:
            recorder.record(event)
        recorder.close()
