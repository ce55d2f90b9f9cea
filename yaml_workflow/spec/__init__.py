"""The workflow dialect: YAML with line numbers -> validated pydantic models."""

from .loader import load_workflow_file
from .models import OnError, Param, RetryPolicy, Step, Workflow
from .params import parse_assignments, resolve_params

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
