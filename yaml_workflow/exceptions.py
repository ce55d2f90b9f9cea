"""One exception tree for the whole project.

Every error a user can cause is a :class:`WorkflowError` carrying the exit code the CLI
uses and enough data (file, line, step) to print one clear line.  Layers raise their own
base class so callers can catch by layer.
"""

from __future__ import annotations

import unicodedata
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # the workflow ran and a step failed that nothing handled
EXIT_REFUSED = 2  # refused before any step ran: usage, load, params, state, resume
EXIT_UNREACHABLE = 3  # broker or store cannot be reached
EXIT_WAIT_TIMEOUT = 4  # submit --wait --timeout ran out


# Characters that reorder the text around them on a terminal (a name could read backwards).
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x1b``), so that a value a
    user or a step supplied cannot move the cursor, retitle or clear the terminal, or turn
    the line around when an error line prints it."""
    if text.isprintable():
        return text
    return "".join(
        _escape(char)
        if char != "\t" and (unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS)
        else char
        for char in text
    )


class WorkflowError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message as the CLI prints it: what, where, and what to do."""
        text = self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        # Every kind of line break (\r, \u2028... from user text too) keeps it one line.
        # (Control characters stay: this text is also data, masked and stored; whoever
        # prints it on a terminal passes it through printable().)
        return " ".join(text.splitlines())


class UsageError(WorkflowError):
    """A command line that cannot be carried out as given."""


# --- spec ---------------------------------------------------------------------------


class SpecError(WorkflowError):
    """The workflow file is malformed or inconsistent; found before any step runs."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        elif line:
            where = f"line {line}: "
        super().__init__(f"{where}{message}", hint=hint)
        self.file = file
        self.line = line
        self.detail = message


class ParamError(WorkflowError):
    """A parameter value that is missing, does not convert, or is not allowed."""


class SecretError(WorkflowError):
    """A declared secret is not set in the environment."""


# --- templating ---------------------------------------------------------------------


class TemplateError(WorkflowError):
    """A template failed to render at run time (fails its step; retry/on_error apply)."""

    exit_code = EXIT_FAILED


class TemplateSyntaxProblem(SpecError):
    """A template in the workflow file does not parse; a load-time error."""


# --- tasks --------------------------------------------------------------------------


class TaskError(WorkflowError):
    """Base of errors raised by tasks while a step runs."""

    exit_code = EXIT_FAILED


class TaskNotFoundError(SpecError):
    """A step names a task type nobody registered."""


class TaskRegistrationError(WorkflowError):
    """Two tasks registered under one name, or a plugin that does not load."""


class ShellCommandError(TaskError):
    """A shell command exited non-zero while `check` was on."""

    def __init__(self, message: str, *, return_code: int, stdout: str, stderr: str) -> None:
        super().__init__(message)
        self.return_code = return_code
        self.stdout = stdout
        self.stderr = stderr


class WorkspacePathError(TaskError):
    """A file task was given a path that resolves outside the run workspace."""


class FailTaskError(TaskError):
    """Raised on purpose by the `fail` task."""


class BatchItemsFailed(TaskError):
    """A batch step failed because its items failed (fail_on_item_error / max_failed_items)."""

    def __init__(self, message: str, *, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class StepTimeoutError(TaskError, TimeoutError):
    """A step ran past its `timeout`."""


class OutputNotSerializable(TaskError):
    """A step returned a value that cannot be stored as JSON."""


# --- state --------------------------------------------------------------------------


class StateError(WorkflowError):
    """The run's state cannot be read or written as asked."""


class StateFileError(StateError):
    """A state file that is corrupt, truncated, or of an unknown schema version."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}",
            hint="the file was left as it is; restore it or start a new run",
        )
        self.path = path


class RunNotFound(StateError):
    """No run with that id (or workspace) exists in the store."""


class StoreUnavailable(StateError):
    """The store (Redis) cannot be reached."""

    exit_code = EXIT_UNREACHABLE


class LeaseHeld(StateError):
    """Another live process holds the run's lease."""


# --- engine / resume ----------------------------------------------------------------


class ResumeRefused(WorkflowError):
    """A resume that cannot go ahead (completed run, changed steps, live lease...)."""


class RunCancelled(WorkflowError):
    """The run was cancelled while it ran."""

    exit_code = EXIT_FAILED


# --- fleet --------------------------------------------------------------------------


class BrokerUnavailable(WorkflowError):
    """The Celery broker cannot be reached."""

    exit_code = EXIT_UNREACHABLE


class WaitTimeout(WorkflowError):
    """`submit --wait --timeout` ran out; the run goes on."""

    exit_code = EXIT_WAIT_TIMEOUT
