"""State: the run document, the Store interface and its implementations, the JSON mirror."""

from __future__ import annotations

from typing import Any

__all__ = ["Store", "WorkflowState", "open_store"]


def __getattr__(name: str) -> Any:
    if name == "WorkflowState":
        from .workflow_state import WorkflowState

        return WorkflowState
    if name == "Store":
        from .store import Store

        return Store
    if name == "open_store":
        from .stores import open_store

        return open_store
    raise AttributeError(name)
