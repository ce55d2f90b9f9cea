"""State: the run document, the Store interface and its implementations, the JSON mirror."""

from __future__ import annotations

from typing import Any

__all__ = ["Store", "WorkflowState", "open_store"]


def __getattr__(name: str) -> Any:
    if name == "WorkflowState":
        from .workflow_state import WorkflowState

        return WorkflowState
    if name in ("Store", "open_store"):
        from . import store

        return getattr(store, name)
    raise AttributeError(name)
