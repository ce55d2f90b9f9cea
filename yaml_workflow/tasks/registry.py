"""The task registry: one door for built-in tasks and plugins.

A task is a plain function.  Built-ins register with :func:`builtin_task` and receive
``(inputs, ctx)``; user code registers with :func:`register_task` and receives either a
:class:`TaskConfig` (when its one parameter is annotated so, or named ``config``) or the
rendered inputs as keyword arguments.  Installed plugins are found lazily through the
``yaml_workflow.tasks`` entry-point group the first time a name is not known.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..exceptions import TaskNotFoundError, TaskRegistrationError

ENTRY_POINT_GROUP = "yaml_workflow.tasks"

# How a registered function wants to be called.
CALL_BUILTIN = "builtin"  # fn(inputs, ctx)
CALL_CONFIG = "config"  # fn(TaskConfig)
CALL_KWARGS = "kwargs"  # fn(**inputs)


@dataclass(frozen=True)
class TaskSpec:
    """A registered task type."""

    name: str
    func: Callable[..., Any]
    call: str
    # Validates rendered inputs (built-ins); None means the inputs are passed as they are.
    inputs_model: type[BaseModel] | None = None
    # Inputs the task renders itself (e.g. the template task's `template`); the engine
    # leaves them raw so that nothing is rendered twice.
    raw_inputs: frozenset[str] = field(default_factory=frozenset)

    @property
    def required_inputs(self) -> list[str]:
        """Inputs the model requires, checked when the workflow loads."""
        if self.inputs_model is None:
            return []
        return [
            name if info.alias is None else info.alias
            for name, info in self.inputs_model.model_fields.items()
            if info.is_required()
        ]


_REGISTRY: dict[str, TaskSpec] = {}
_LOCK = threading.Lock()
_state = {"builtins": False, "plugins": False}


def _add(spec: TaskSpec) -> None:
    with _LOCK:
        existing = _REGISTRY.get(spec.name)
        if existing is not None and existing.func is not spec.func:
            # Re-importing the same module (e.g. a plugin found twice) is not a clash.
            same = getattr(existing.func, "__qualname__", None) == getattr(
                spec.func, "__qualname__", None
            ) and getattr(existing.func, "__module__", None) == getattr(spec.func, "__module__", None)
            if not same:
                raise TaskRegistrationError(
                    f"task '{spec.name}' is registered twice "
                    f"({existing.func.__module__} and {spec.func.__module__})",
                    hint="give one of them another name",
                )
        _REGISTRY[spec.name] = spec


def builtin_task(
    name: str,
    *,
    inputs: type[BaseModel] | None = None,
    raw: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a built-in task ``fn(inputs, ctx)``; ``inputs`` validates rendered inputs."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for task_name in (name, *aliases):
            _add(TaskSpec(task_name, func, CALL_BUILTIN, inputs, frozenset(raw)))
        return func

    return decorate


def _wants_config(func: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(params) != 1 or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    annotation = params[0].annotation
    names = {"TaskConfig", "yaml_workflow.tasks.TaskConfig"}
    if isinstance(annotation, str):
        return annotation.split(".")[-1] in names or params[0].name == "config"
    return getattr(annotation, "__name__", None) == "TaskConfig" or params[0].name == "config"


def register_task(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a custom task under ``name`` (default: the function's name)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        task_name = name or func.__name__
        _load_builtin(task_name)  # a clash with a built-in is reported here, not later
        call = CALL_CONFIG if _wants_config(func) else CALL_KWARGS
        _add(TaskSpec(task_name, func, call))
        return func

    return decorate


# Which module of `tasks.builtin` registers each built-in task.  A run imports only the
# modules its steps use: each module's input models cost ~1 ms apiece to create, and a
# short workflow should not pay for every task type (tests keep this map complete).
BUILTIN_MODULES = {
    "echo": "basic", "noop": "basic", "fail": "basic", "notify": "basic",
    "batch": "batch",
    "write_file": "files", "append_file": "files", "read_file": "files", "write_json": "files",
    "write_yaml": "files", "read_json": "files", "read_yaml": "files", "copy_file": "files",
    "move_file": "files", "delete_file": "files",
    "http.request": "http", "http_request": "http",
    "python_code": "python", "python_function": "python", "python_script": "python",
    "python_module": "python",
    "shell": "shell",
    "template": "template",
}


def _load_builtin(name: str) -> None:
    # Built-ins come in through the same door as plugins: their modules register what
    # they define when imported, by name (the registry never imports them statically).
    module = BUILTIN_MODULES.get(name)
    if module is not None and name not in _REGISTRY:
        import importlib

        importlib.import_module(f"{__package__}.builtin.{module}")


def _load_builtins() -> None:
    if not _state["builtins"]:
        _state["builtins"] = True
        import importlib

        for module in sorted(set(BUILTIN_MODULES.values())):
            importlib.import_module(f"{__package__}.builtin.{module}")


def rescan_plugins() -> None:
    """Look for entry-point plugins again the next time a name is unknown (sys.path grew)."""
    _state["plugins"] = False


def _load_plugins() -> None:
    if _state["plugins"]:
        return
    _state["plugins"] = True
    _load_builtins()  # a plugin clashing with a built-in is reported, whatever was used first
    from importlib import metadata  # only when a name is unknown: it costs ~20 ms

    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as err:  # noqa: BLE001 - a broken plugin is reported, not fatal
            raise TaskRegistrationError(
                f"task plugin '{entry.name}' ({entry.value}) failed to load: {err}",
                hint="fix or uninstall the plugin",
            ) from None
        # An entry point may name a module (registering on import) or a function.
        if callable(loaded) and not inspect.ismodule(loaded):
            register_task(entry.name)(loaded)


def get_task(name: str) -> TaskSpec:
    """The task registered as ``name``; unknown names get a "did you mean"."""
    spec = _REGISTRY.get(name)
    if spec is None:
        _load_builtin(name)
        spec = _REGISTRY.get(name)
    if spec is None:
        _load_plugins()
        spec = _REGISTRY.get(name)
    if spec is None:
        from ..spec.loader import closest

        near = closest(name, _REGISTRY)
        raise TaskNotFoundError(
            f"unknown task type '{name}'",
            hint=f"did you mean '{near}'?" if near else "see `yaml-workflow list --tasks`",
        )
    return spec


def task_names() -> list[str]:
    """Every known task type, built-ins and plugins."""
    _load_builtins()
    _load_plugins()
    return sorted(_REGISTRY)
