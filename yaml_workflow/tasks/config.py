"""``TaskConfig``: the object a custom task receives, as in the public dialect's plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .context import TaskContext


class TaskConfig:
    """A custom task's view of its step: name, type, inputs (rendered), workspace, context."""

    def __init__(self, ctx: TaskContext, inputs: dict[str, Any], raw_inputs: dict[str, Any]) -> None:
        self._ctx = ctx
        self.name = ctx.step
        self.type = ctx.task
        self.inputs = raw_inputs
        self.workspace: Path = ctx.workspace
        self.step = {"name": ctx.step, "task": ctx.task, "inputs": raw_inputs}
        self._processed_inputs = inputs

    @property
    def context(self) -> dict[str, Any]:
        """The template namespaces (args, env, steps, workflow, ...)."""
        return self._ctx.namespaces

    @property
    def task_context(self) -> TaskContext:
        """The full task context (progress, path resolution, deadline)."""
        return self._ctx

    @property
    def processed_inputs(self) -> dict[str, Any]:
        """The step's inputs with templates rendered."""
        return self._processed_inputs

    def process_inputs(self) -> dict[str, Any]:
        """The step's inputs with templates rendered (rendered once, by the engine)."""
        return self._processed_inputs

    def get_variable(self, name: str, namespace: str | None = None) -> Any:
        """A value from a namespace (``args``, ``env``, ``steps``...) or a top-level name."""
        if namespace:
            return self._ctx.namespaces.get(namespace, {}).get(name)
        return self._ctx.namespaces.get(name)
