"""Python tasks: inline code, an importable function, a script or a module in a subprocess."""

from __future__ import annotations

import importlib
import inspect
import sys
from functools import lru_cache
from types import CodeType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...exceptions import TaskError
from ..context import TaskContext
from ..registry import builtin_task
from .shell import run_command

# Names python_code always sees, taken from the template namespaces.
_CODE_NAMESPACES = ("args", "env", "steps", "batch")


class PythonCodeInputs(BaseModel):
    """Inputs of ``python_code``; every other input becomes a variable of the code."""

    model_config = ConfigDict(defer_build=True, extra="allow")

    code: str
    result_variable: str | None = None


class PythonFunctionInputs(BaseModel):
    """Inputs of ``python_function``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    module: str
    function: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class _SubprocessInputs(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    args: list[Any] = Field(default_factory=list)
    cwd: str | None = None
    timeout: float | None = None
    check: bool = True


class PythonScriptInputs(_SubprocessInputs):
    """Inputs of ``python_script``."""

    script_path: str


class PythonModuleInputs(_SubprocessInputs):
    """Inputs of ``python_module``."""

    module: str


@lru_cache(maxsize=1024)
def _compile(source: str, filename: str) -> CodeType:
    # Keyed by (source, step): a workflow of many identical snippets compiles each once,
    # and tracebacks still name the step the code belongs to.
    return compile(source, filename, "exec")


@builtin_task("python_code", inputs=PythonCodeInputs)
def python_code(inputs: PythonCodeInputs, ctx: TaskContext) -> Any:
    """Run inline code; result: the value of ``result`` (or of ``result_variable``)."""
    try:
        code = _compile(inputs.code, f"<step {ctx.step}>")
    except SyntaxError as err:
        raise TaskError(
            f"step '{ctx.step}': python_code does not compile: {err.msg} (line {err.lineno})"
        ) from None
    # One dict as globals and locals: functions defined in the code see its top-level
    # names, exactly as in a module.
    scope: dict[str, Any] = {"__name__": "__yaml_workflow_step__"}
    for name in _CODE_NAMESPACES:
        scope[name] = ctx.namespaces.get(name)
    scope["workspace"] = str(ctx.workspace)
    scope.update(inputs.model_extra or {})
    exec(code, scope)  # running the user's code is this task's whole purpose
    if inputs.result_variable:
        if inputs.result_variable not in scope:
            raise TaskError(
                f"step '{ctx.step}': the code did not set result_variable "
                f"'{inputs.result_variable}'"
            )
        return scope[inputs.result_variable]
    return scope.get("result")


def _import_function(ctx: TaskContext, module_name: str, function: str) -> Any:
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise TaskError(
            f"step '{ctx.step}': cannot import module '{module_name}': {err}",
            hint="check the module name and PYTHONPATH",
        ) from None
    # `function` may be dotted (`Class.method`) to reach an attribute of an attribute.
    for part in function.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise TaskError(
                f"step '{ctx.step}': module '{module_name}' has no '{function}'"
            ) from None
    if not callable(target):
        raise TaskError(f"step '{ctx.step}': '{module_name}.{function}' is not callable")
    return target


@builtin_task("python_function", inputs=PythonFunctionInputs)
def python_function(inputs: PythonFunctionInputs, ctx: TaskContext) -> Any:
    """Import ``module.function`` and call it; coroutines are awaited."""
    func = _import_function(ctx, inputs.module, inputs.function)
    result = func(*inputs.args, **inputs.kwargs)
    if inspect.isawaitable(result):
        # Steps run in worker threads without an event loop, so a fresh loop is right.
        import asyncio  # imported here: it costs ~15 ms and most runs never need it

        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _run_python(
    ctx: TaskContext, inputs: _SubprocessInputs, argv: list[str], what: str
) -> dict[str, Any]:
    cwd = ctx.resolve_path(inputs.cwd) if inputs.cwd else ctx.workspace
    code, stdout, stderr = run_command(
        ctx,
        [sys.executable, *argv, *(str(a) for a in inputs.args)],
        cwd=cwd,
        env=ctx.env,
        timeout=inputs.timeout,
        check=inputs.check,
        what=what,
    )
    return {"returncode": code, "stdout": stdout, "stderr": stderr}


@builtin_task("python_script", inputs=PythonScriptInputs)
def python_script(inputs: PythonScriptInputs, ctx: TaskContext) -> dict[str, Any]:
    """Run a script with this interpreter; result ``{returncode, stdout, stderr}``."""
    # Running a script writes nothing by itself, so an absolute path may point anywhere
    # (a shared tools directory); a relative one is taken from the workspace.
    script = ctx.workspace / inputs.script_path
    if not script.is_file():
        raise TaskError(f"step '{ctx.step}': script '{inputs.script_path}' not found ({script})")
    return _run_python(ctx, inputs, [str(script)], f"script {inputs.script_path}")


@builtin_task("python_module", inputs=PythonModuleInputs)
def python_module(inputs: PythonModuleInputs, ctx: TaskContext) -> dict[str, Any]:
    """Run ``python -m module``; result ``{returncode, stdout, stderr}``."""
    return _run_python(ctx, inputs, ["-m", inputs.module], f"module {inputs.module}")
