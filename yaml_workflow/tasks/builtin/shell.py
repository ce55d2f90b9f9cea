"""The ``shell`` task, and the subprocess runner the Python subprocess tasks share."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ...exceptions import ShellCommandError, StepTimeoutError, TaskError
from ..context import TaskContext
from ..registry import builtin_task


class ShellInputs(BaseModel):
    """Inputs of ``shell``: a string runs under /bin/sh, a list runs as argv (no shell)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    command: str | list[Any]
    working_dir: str | None = None
    env: dict[str, Any] | None = None
    timeout: float | None = None
    check: bool = True


def merged_env(ctx: TaskContext, extra: Mapping[str, Any] | None) -> dict[str, str]:
    """``ctx.env`` with ``extra`` laid over it; a ``None`` value removes the variable."""
    env = dict(ctx.env)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(str(key), None)
        else:
            env[str(key)] = str(value)
    return env


def _effective_timeout(ctx: TaskContext, timeout: float | None) -> tuple[float | None, str]:
    """The smaller of the input timeout and the step's remaining time, and which one it is."""
    remaining = ctx.remaining()
    if remaining is not None and (timeout is None or remaining <= timeout):
        return remaining, "the step timeout"
    return timeout, f"its timeout of {timeout:g}s" if timeout is not None else ""


def _kill_group(proc: subprocess.Popen[str]) -> None:
    # The child leads its own session, so its pid is the group id; killing the group
    # also takes down grandchildren (`sh -c "sleep 30"` forks sleep).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# Subprocesses of the steps running in this process, so that a cancelled run can stop
# them at once instead of after they finish (see terminate_running).
_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


def terminate_running() -> int:
    """Kill the process groups of every step subprocess running now; how many there were."""
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    for proc in procs:
        _kill_group(proc)
    return len(procs)


def run_command(
    ctx: TaskContext,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None,
    check: bool,
    what: str = "command",
) -> tuple[int, str, str]:
    """Run ``argv``; return (exit code, stdout, stderr) or raise on timeout / failed check."""
    limit, limit_name = _effective_timeout(ctx, timeout)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,  # a step never waits on the terminal
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",  # binary output must not fail the step after it ran
            start_new_session=True,
        )
    except OSError as err:
        raise TaskError(f"step '{ctx.step}': cannot start {what}: {err}") from None
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        ctx.on_process(proc.pid)
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # a descendant that left the group keeps the pipes open; give up on them
        raise StepTimeoutError(
            f"step '{ctx.step}': {what} killed after {limit:g}s ({limit_name})"
        ) from None
    except BaseException:
        _kill_group(proc)  # e.g. KeyboardInterrupt: leave no orphan behind
        raise
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    code = proc.returncode
    if check and code != 0:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        last = f": {lines[-1].strip()}" if lines else ""
        raise ShellCommandError(
            ctx.mask(f"step '{ctx.step}': {what} exited with code {code}{last}"),
            return_code=code,
            stdout=stdout,
            stderr=stderr,
        )
    return code, stdout, stderr


@builtin_task("shell", inputs=ShellInputs)
def shell(inputs: ShellInputs, ctx: TaskContext) -> dict[str, Any]:
    """Run a command; result ``{return_code, stdout, stderr}``."""
    if isinstance(inputs.command, str):
        argv = ["/bin/sh", "-c", inputs.command]
    else:
        # The argv form never meets a shell, so item values cannot inject commands.
        argv = [str(part) for part in inputs.command]
        if not argv:
            raise TaskError(f"step '{ctx.step}': shell command list is empty")
    cwd = ctx.resolve_path(inputs.working_dir) if inputs.working_dir else ctx.workspace
    if not cwd.is_dir():
        raise TaskError(f"step '{ctx.step}': working_dir '{inputs.working_dir}' is not a directory")
    code, stdout, stderr = run_command(
        ctx,
        argv,
        cwd=cwd,
        env=merged_env(ctx, inputs.env),
        timeout=inputs.timeout,
        check=inputs.check,
    )
    return {"return_code": code, "stdout": stdout, "stderr": stderr}
