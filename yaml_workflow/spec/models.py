"""The workflow dialect as pydantic models.

These models are the single description of what a workflow file may say: the loader
validates into them, the engine runs them, the Celery executor stores them (as JSON) in
the run, and ``yaml-workflow schema`` prints their JSON Schema for editors.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

ParamType = Literal["string", "integer", "number", "boolean", "list", "object"]


class _Model(BaseModel):
    # defer_build: a model's validator is built when it is first used, not at import;
    # validating a Workflow builds the nested models' schemas inline, so a command that
    # loads a workflow builds one validator instead of eight.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class Param(_Model):
    """A declared workflow parameter (``params:`` entry)."""

    type: ParamType | None = None
    default: Any = None
    required: bool = False
    description: str | None = None
    allowed_values: list[Any] | None = Field(default=None, alias="allowedValues")
    min_length: int | None = Field(default=None, alias="minLength")


class RetryPolicy(_Model):
    """The ``retry:`` block of a step: how many executions and how long between them."""

    max_attempts: int = Field(default=3, ge=1)
    delay: float = Field(default=1.0, ge=0)
    backoff: float = Field(default=1.0, ge=1)
    max_delay: float | None = Field(default=None, ge=0)
    jitter: bool | float = False
    # Exception class names (matched against the error's class and its bases).
    on_error: list[str] | None = None

    @field_validator("on_error", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


OnErrorAction = Literal["fail", "continue", "next", "retry"]


class OnError(_Model):
    """The ``on_error:`` block of a step: what happens once its attempts are spent."""

    action: OnErrorAction = "fail"
    retry: int = Field(default=0, ge=0)
    delay: float = Field(default=0.0, ge=0)
    message: str | None = None
    next: str | None = None

    @model_validator(mode="after")
    def _next_needs_target(self) -> OnError:
        if self.action == "next" and not self.next:
            raise ValueError("on_error action 'next' needs a 'next:' step name")
        if self.next and self.action not in ("next", "retry"):
            # `next:` given with another action: the documented short form means "next".
            self.action = "next"
        return self


class Step(_Model):
    """One step of a workflow."""

    name: str
    task: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None
    condition: Any = None
    depends_on: list[str] = Field(default_factory=list)
    retry: RetryPolicy | None = None
    on_error: OnError | None = None
    timeout: float | None = Field(default=None, gt=0)
    progress_update: bool = False
    progress_interval: float = Field(default=5.0, gt=0)
    queue: str | None = None

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_dependency_is_a_list(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("on_error", mode="before")
    @classmethod
    def _short_on_error(cls, value: Any) -> Any:
        return {"action": value} if isinstance(value, str) else value

    @field_validator("retry", mode="before")
    @classmethod
    def _short_retry(cls, value: Any) -> Any:
        # `retry: 3` is read as `retry: {max_attempts: 3}`.
        return {"max_attempts": value} if isinstance(value, int) and not isinstance(value, bool) else value


class Flows(_Model):
    """Named step sequences; ``default`` names the one that runs without ``--flow``."""

    default: str | None = None
    definitions: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("definitions", mode="before")
    @classmethod
    def _list_of_single_maps(cls, value: Any) -> Any:
        # The documented form is a list of one-key mappings: [{main: [a, b]}, ...].
        if isinstance(value, list):
            merged: dict[str, Any] = {}
            for entry in value:
                if not isinstance(entry, dict):
                    raise ValueError("each flow definition is a mapping NAME: [step, ...]")
                merged.update(entry)
            return merged
        return value


CatchupPolicy = Literal["none", "latest", "all"]
_EVERY = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_EVERY_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Schedule(_Model):
    """The ``schedule:`` block: when the fleet's beat starts runs of the workflow.

    A cron string alone is short for ``{cron: ...}``.  ``every`` is whole seconds (``30s``,
    ``5m``, ``1h``, ``1d`` or a number); its ticks are aligned to the Unix epoch in UTC,
    so it takes no ``timezone``.
    """

    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    params: dict[str, Any] = Field(default_factory=dict)
    catchup: CatchupPolicy = "latest"
    max_active_runs: int = Field(default=1, ge=1)
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _cron_string(cls, value: Any) -> Any:
        return {"cron": value} if isinstance(value, str) else value

    @field_validator("every", mode="before")
    @classmethod
    def _every_seconds(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        match = _EVERY.match(str(value))
        if not match:
            raise ValueError(f"'{value}' is not an interval: write 30s, 5m, 1h, 1d or whole seconds")
        seconds = int(match.group(1)) * _EVERY_UNITS[match.group(2).lower()]
        if seconds < 1:
            raise ValueError(f"'{value}' never repeats: an interval is at least 1s")
        return seconds

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None:
            from .cron import parse_cron

            parse_cron(value)  # CronError is a ValueError: pydantic reports it on this key
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}': use an IANA name such as "
                             "Europe/Berlin or America/New_York") from None
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> Schedule:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give either `cron` or `every`" if self.cron is None
                             else "give `cron` or `every`, not both")
        if self.every is not None and self.timezone != "UTC":
            raise ValueError("`every` ticks are aligned to the Unix epoch in UTC; `timezone` is for `cron`")
        return self

    @property
    def timing(self) -> str:
        """How the schedule repeats, in words (``cron 0 3 * * * Europe/Berlin``, ``every 300s``)."""
        return f"cron {self.cron} {self.timezone}" if self.cron is not None else f"every {self.every}s"


class Workflow(_Model):
    """A whole workflow, imports already merged in."""

    name: str
    description: str | None = None
    version: str | int | float | None = None
    params: dict[str, Param] = Field(default_factory=dict)
    env: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)
    imports: list[str] = Field(default_factory=list)
    flows: Flows | None = None
    schedule: Schedule | None = None
    steps: list[Step] = Field(default_factory=list)
    # Where the workflow came from; not a YAML key.
    source: str | None = None
    # Line of each step in its file, for errors found after loading.
    _lines: dict[str, int | None] = PrivateAttr(default_factory=dict)
    # Steps by name: the executors look steps up once per step, which must not cost O(n).
    _index: dict[str, Step] = PrivateAttr(default_factory=dict)

    def line_of(self, step: str) -> int | None:
        """The line where a step starts in the workflow file, when known."""
        return self._lines.get(step)

    @property
    def step_lines(self) -> dict[str, int | None]:
        """Every step's line in the workflow file, when known (one lookup for many steps)."""
        return self._lines

    def step(self, name: str) -> Step:
        """The step called ``name`` (KeyError if there is none)."""
        found = self._index.get(name)
        if found is None or len(self._index) != len(self.steps):
            self._index = {s.name: s for s in self.steps}
            found = self._index[name]
        return found

    @property
    def step_names(self) -> list[str]:
        """Step names in file order."""
        return [s.name for s in self.steps]

    @property
    def is_dag(self) -> bool:
        """True when any step uses depends_on: the steps then form a DAG."""
        return any(s.depends_on for s in self.steps)


TOP_LEVEL_KEYS = (
    "name",
    "description",
    "version",
    "params",
    "env",
    "settings",
    "secrets",
    "imports",
    "flows",
    "schedule",
    "steps",
)

STEP_KEYS = (
    "name",
    "task",
    "inputs",
    "params",
    "description",
    "condition",
    "depends_on",
    "retry",
    "on_error",
    "timeout",
    "progress_update",
    "progress_interval",
    "queue",
)
