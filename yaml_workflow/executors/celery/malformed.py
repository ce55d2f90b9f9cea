"""Malformed messages on the broker: each is logged as one line and dropped; the worker stays up.

Anyone who can write to the broker can put any bytes in a queue.  Celery logs a message
it cannot use with a traceback and a dump of its body, and one whose body is JSON of
the wrong shape (``{"a": 1}`` where ``[args, kwargs, embed]`` belongs) stops the worker
altogether — and the message, never acknowledged, stops the next worker too.  Here:

- :class:`GuardedConsumer` logs undecodable bodies, unknown task names and messages of
  an unknown format in one line each, then drops them as Celery does;
- :func:`guarded_strategy` checks the body of a message for one of our tasks (its
  shape, the number and the types of its arguments) before Celery builds a request
  from it, and drops a message that does not fit.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, get_type_hints

from celery.worker.consumer import Consumer
from celery.worker.strategy import default as default_strategy

from ...exceptions import printable

log = logging.getLogger("yaml_workflow.fleet")



def _describe(message: Any) -> str:
    headers = getattr(message, "headers", None)
    headers = headers if isinstance(headers, dict) else {}
    task, task_id = headers.get("task"), headers.get("id")
    text = f"task {task!r} id {task_id!r}" if task or task_id else "a message without task headers"
    return printable(text[:200])


def _drop(what: str, message: Any, problem: object) -> None:
    reason = printable(" ".join(str(problem).split()))[:200]
    log.error("dropped a malformed message (%s): %s: %s", _describe(message), what, reason)


class GuardedConsumer(Consumer):
    """Celery's consumer, with a one-line log for each message it cannot use."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """A body that does not decode (not JSON, or a refused serializer such as pickle)."""
        _drop("its body cannot be decoded", message, f"{type(exc).__name__}: {exc}")
        message.ack()

    def on_unknown_message(self, body: Any, message: Any) -> None:
        """A message that is no Celery task message."""
        _drop("it is not a task message", message, "no task name in it")
        message.reject_log_error(log, self.connection_errors)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        """A message for a task this worker does not have."""
        _drop("no such task", message, exc)
        message.reject_log_error(log, self.connection_errors)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        """A message Celery refuses (a disallowed content type, an invalid field)."""
        _drop("refused", message, exc)
        message.reject_log_error(log, self.connection_errors)


def _shape(task: Any) -> tuple[inspect.Signature, dict[str, Any]]:
    """The signature and type hints of a task's function, worked out once per task (the
    worker's main process checks every message with them)."""
    shape = _SHAPES.get(task.name)
    if shape is None:
        shape = _SHAPES[task.name] = (inspect.signature(task.run), get_type_hints(task.run))
    return shape


_SHAPES: dict[str, tuple[inspect.Signature, dict[str, Any]]] = {}


def _problem(task: Any, payload: Any) -> str | None:
    """What is wrong with a task message body ``[args, kwargs, embed]``, or None."""
    if not isinstance(payload, (list, tuple)) or len(payload) != 3:
        return "the body is not [args, kwargs, options]"
    args, kwargs, embed = payload
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict) or not isinstance(embed, (dict, type(None))):
        return "the body is not [args, kwargs, options]"
    signature, hints = _shape(task)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as err:
        return f"wrong arguments: {err}"
    for name, value in bound.arguments.items():
        expected = hints.get(name)
        if expected in (str, int) and (not isinstance(value, expected) or isinstance(value, bool)):
            return f"argument '{name}' must be {expected.__name__}, got {type(value).__name__}"
    return None


def guarded_strategy(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Any:
    """Celery's default strategy for ``task``, behind a check of each message's body."""
    handler = default_strategy(task, app, consumer, **kwargs)

    def on_message(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **rest: Any) -> Any:
        problem = _problem(task, message.payload if body is None else body)
        if problem is not None:
            _drop("it does not fit the task", message, problem)
            message.reject_log_error(log, consumer.connection_errors)
            return None
        return handler(message, body, ack, reject, callbacks, **rest)

    return on_message

