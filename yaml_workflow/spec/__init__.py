"""The workflow dialect: YAML with line numbers -> validated pydantic models."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "OnError",
    "Param",
    "RetryPolicy",
    "Step",
    "Workflow",
    "load_workflow_file",
    "parse_assignments",
    "resolve_params",
]

# name -> its module, imported on first use (the models cost a command's start-up).
_WHERE = {"load_workflow_file": ".loader", "parse_assignments": ".params", "resolve_params": ".params",
          **dict.fromkeys(("OnError", "Param", "RetryPolicy", "Step", "Workflow"), ".models")}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)


if TYPE_CHECKING:
    from .loader import load_workflow_file
    from .models import OnError, Param, RetryPolicy, Step, Workflow
    from .params import parse_assignments, resolve_params
