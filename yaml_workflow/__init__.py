"""yaml-workflow: YAML workflows run in-process or on a fleet of Celery workers.

The public facade; everything else is importable from its layer.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    # tasks
    "TaskConfig",
    "register_task",
    # state
    "WorkflowState",
    # errors
    "WorkflowError",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy: `import yaml_workflow` must stay cheap for the CLI and for plugins.
    if name in ("TaskConfig", "register_task"):
        from . import tasks

        return getattr(tasks, name)
    if name == "WorkflowState":
        from .state import WorkflowState

        return WorkflowState
    if name == "WorkflowError":
        from .exceptions import WorkflowError

        return WorkflowError
    raise AttributeError(name)
