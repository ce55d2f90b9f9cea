"""Tasks: the registry, the context a task runs with, and the built-in task types."""

from .config import TaskConfig
from .context import TaskContext
from .registry import TaskSpec, builtin_task, get_task, register_task, task_names

__all__ = [
    "TaskConfig",
    "TaskContext",
    "TaskSpec",
    "builtin_task",
    "get_task",
    "register_task",
    "task_names",
]
