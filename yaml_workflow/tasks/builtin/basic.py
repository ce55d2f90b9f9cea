"""Small tasks: ``echo``, ``noop``, ``fail`` and ``notify``."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...exceptions import FailTaskError, TaskError
from ..context import TaskContext
from ..registry import builtin_task
from .http import send


class EchoInputs(BaseModel):
    """Inputs of ``echo``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    message: Any = ""


class NoopInputs(BaseModel):
    """Inputs of ``noop``: anything at all."""

    model_config = ConfigDict(defer_build=True, extra="allow")


class FailInputs(BaseModel):
    """Inputs of ``fail``."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    message: str = "task failed as requested"


class NotifyInputs(BaseModel):
    """Inputs of ``notify``; ``file`` and ``url`` belong to the file and webhook channels."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    channel: Literal["log", "file", "webhook"] = "log"
    message: str = ""
    level: Literal["debug", "info", "warning", "error"] = "info"
    file: str = "logs/notifications.log"
    url: str | None = None
    method: str = "POST"
    headers: dict[str, Any] = Field(default_factory=dict)
    payload: Any = None  # webhook body; {"text": message} when not given
    timeout: float = 30.0


@builtin_task("echo", inputs=EchoInputs)
def echo(inputs: EchoInputs, ctx: TaskContext) -> Any:
    """Return the message (and log it)."""
    ctx.logger.info("%s: %s", ctx.step, ctx.mask(str(inputs.message)))
    return inputs.message


@builtin_task("noop", inputs=NoopInputs)
def noop(inputs: NoopInputs, ctx: TaskContext) -> dict[str, Any]:
    """Do nothing; return the inputs."""
    return dict(inputs.model_extra or {})


@builtin_task("fail", inputs=FailInputs)
def fail(inputs: FailInputs, ctx: TaskContext) -> Any:
    """Fail the step on purpose with the message."""
    raise FailTaskError(inputs.message)


@builtin_task("notify", inputs=NotifyInputs)
def notify(inputs: NotifyInputs, ctx: TaskContext) -> dict[str, Any]:
    """Send a message to the log, a workspace file or a webhook; result ``{channel, status}``."""
    if inputs.channel == "log":
        ctx.logger.log(logging.getLevelName(inputs.level.upper()), "%s", ctx.mask(inputs.message))
    elif inputs.channel == "file":
        path = ctx.resolve_path(inputs.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with path.open("a", encoding="utf-8") as handle:
            handle.write(
                f"{stamp} [{inputs.level.upper()}] {ctx.step}: {ctx.mask(inputs.message)}\n"
            )
    else:
        if not inputs.url:
            raise TaskError(f"step '{ctx.step}': the webhook channel needs a 'url' input")
        body = inputs.payload if inputs.payload is not None else {"text": inputs.message}
        status, _, _ = send(
            ctx.step,
            inputs.url,
            method=inputs.method,
            headers={str(k): str(v) for k, v in inputs.headers.items()},
            body=body,
            timeout=inputs.timeout,
        )
        if status >= 400:
            raise TaskError(f"step '{ctx.step}': webhook {inputs.url} answered {status}")
    return {"channel": inputs.channel, "status": "sent"}
