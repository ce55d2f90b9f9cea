"""Every setting of yaml-workflow, declared once and read from the environment once per process.

Configuration is twelve-factor: environment variables named ``YAML_WORKFLOW_<FIELD>``.
:class:`Settings` declares each with its type, default and a one-line description (the
table in docs/settings.md is generated from it); :func:`get_settings` reads them the first
time and keeps them; the CLI reads them afresh at the start of each command, so a bad
value is one line naming the variable (exit 2) before anything runs.

This is the only module that reads the process environment for configuration.  Steps
get their environment through :func:`process_environment`, which is data, not settings.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .exceptions import UsageError

ENV_PREFIX = "YAML_WORKFLOW_"
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
DEFAULT_KEY_PREFIX = "ywf"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def parse_duration(value: Any) -> Any:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` -> seconds (a bare number is seconds)."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    if not text.strip():
        return None
    match = _DURATION.match(text)
    if not match:
        raise ValueError("write seconds, or a number with a unit: 90s, 30m, 12h, 7d, 2w")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def _empty_is_unset(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Duration = Annotated[float, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[float | None, BeforeValidator(parse_duration)]
OptionalText = Annotated[str | None, BeforeValidator(_empty_is_unset)]


def _default_key_file() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "yaml-workflow", "key")


def _check_url(value: str | None, schemes: tuple[str, ...], what: str) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ValueError(f"{what} must start with {', '.join(s + '://' for s in schemes)}")
    if parsed.scheme in ("redis", "rediss", "amqp", "amqps") and not parsed.hostname:
        raise ValueError(f"{what} names no host")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(f"{what} has a port that is not a number") from None
    return value


class Settings(BaseSettings):
    """The settings of one process; each field is the environment variable YAML_WORKFLOW_<NAME>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True,
                                      validate_default=True)

    # --- where things live -----------------------------------------------------------
    broker_url: str = Field(
        DEFAULT_BROKER_URL,
        description="Celery's broker (redis://, rediss://; a password in the URL is masked everywhere)")
    state_url: OptionalText = Field(
        None, description="where runs live: redis://, rediss://, file://DIR or memory://; "
                          "default: the workspace JSON for `run`, the broker's Redis for the fleet")
    key_prefix: str = Field(DEFAULT_KEY_PREFIX, min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                            description="prefix of every Redis key; fleets sharing a Redis use different ones")
    workspace_root: str = Field("runs", min_length=1,
                                description="where `submit` creates workspaces and where runs are looked up")
    # --- the fleet -------------------------------------------------------------------
    visibility_timeout: Duration = Field(
        30, gt=0, description="seconds a delivered, unacked broker message waits before Redis hands it out "
                              "again (a dead worker's messages come back after this; claims keep live steps single)")
    restore_interval: Duration = Field(
        5, gt=0, description="seconds between a worker's checks for unacked messages past the visibility timeout")
    step_timeout: Duration = Field(1800, gt=0, description="the limit of a fleet step without its own `timeout`")
    claim_ttl: Duration = Field(
        15, gt=0, description="seconds a running step's claim lives without renewal: a worker that cannot renew "
                              "for this long stops the step; others take it a third of this later")
    reconnect_timeout: Duration = Field(
        60, gt=0, description="seconds `submit --wait`, `status --watch` and workers' bookkeeping keep "
                              "reconnecting to a Redis that went away")
    stall_after: OptionalDuration = Field(
        None, gt=0, description="a running fleet run with no claim and no change for this long counts as "
                                "stalled (default: 3 x claim_ttl)")
    running_delay: Duration = Field(0.2, ge=0, description="a fleet step running longer than this shows `running` in the store")
    soft_shutdown_timeout: Duration = Field(
        0, ge=0, description="seconds a worker told to stop lets running steps finish before handing them back "
                             "(0: Celery's warm shutdown)")
    worker_name: OptionalText = Field(None, description="the host name a worker records on its steps (default: its node name)")
    worker_pool: Literal["prefork", "solo", "threads"] = Field(
        "prefork", description="the worker's pool (set by `yaml-workflow worker --pool`)")
    idempotency_ttl: Duration = Field(
        7 * 86400, gt=0, description="seconds a `submit --idempotency-key` stays bound to its run "
                                     "(a second submit with the key within this time returns that run)")
    beat_lock_ttl: Duration = Field(
        10, gt=0, description="seconds the lock of the active `yaml-workflow beat` lives without renewal; "
                              "a standby beat takes over within about 1.3 x this after the holder dies")
    # --- state -----------------------------------------------------------------------
    finished_ttl: OptionalDuration = Field(
        None, gt=0, description="completed and cancelled runs expire from Redis after this (unset: kept)")
    fsync: bool = Field(False, description="fsync the JSON mirror's journal and snapshots (power-loss safety)")
    lease_ttl: Duration = Field(15, gt=0, description="seconds a local run's lease lives without its heartbeat")
    fleet_key: Annotated[SecretStr | None, BeforeValidator(_empty_is_unset)] = Field(
        None, description="the key of the digests that make a run's stored workflow and params data, not "
                          "code (give every submitter of a fleet the same); unset: a per-user key file")
    key_file: str = Field(default_factory=lambda: _default_key_file(),
                          description="the per-user key file used when YAML_WORKFLOW_FLEET_KEY is unset "
                                      "(default: $XDG_CONFIG_HOME/yaml-workflow/key, else ~/.config/...)")
    # --- clients ---------------------------------------------------------------------
    debug: bool = Field(False, description="print tracebacks of internal errors")
    ui_token: Annotated[SecretStr | None, BeforeValidator(_empty_is_unset)] = Field(
        None, description="the dashboard's (`serve`) action token: with it, retry, skip, cancel and resume "
                          "are offered to those who sign in with it; unset: the dashboard is read-only")
    # --- testing ---------------------------------------------------------------------
    test_fault: OptionalText = Field(
        None, description="test hook: POINT:STEP makes a worker die at that point of a step's commit")
    test_pause: OptionalText = Field(
        None, description="test hook: POINT:DIR holds a process at POINT until DIR/release exists")

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str) -> str:
        return _check_url(value, ("redis", "rediss", "unix", "amqp", "amqps", "memory"),
                          "the broker URL") or value

    @field_validator("state_url")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        return _check_url(value, ("redis", "rediss", "unix", "file", "memory"), "the state URL")

    # --- derived ---------------------------------------------------------------------

    @property
    def effective_state_url(self) -> str:
        """The fleet's state store: the state URL, else the broker's Redis."""
        return self.state_url or self.broker_url

    @property
    def redis_state_url(self) -> str | None:
        """The Redis that commands addressing runs consult, or None.

        The state URL when it is Redis; else a broker URL that is Redis and was set on
        purpose (the built-in default broker alone does not count, so commands on a
        laptop without Redis still work from the workspaces).
        """
        if self.state_url:
            return self.state_url if urlparse(self.state_url).scheme in _REDIS_SCHEMES else None
        if "broker_url" in self.model_fields_set and urlparse(self.broker_url).scheme in _REDIS_SCHEMES:
            return self.broker_url
        return None

    @property
    def effective_stall_after(self) -> float:
        """Seconds without change after which a claimless running fleet run is stalled."""
        return self.stall_after if self.stall_after is not None else 3 * self.claim_ttl


_current: Settings | None = None


def _one_line(err: ValidationError) -> UsageError:
    first = err.errors()[0]
    field = str(first["loc"][0]) if first.get("loc") else "?"
    variable = ENV_PREFIX + field.upper()
    raw = os.environ.get(variable, "")
    shown = raw if len(raw) <= 40 else raw[:37] + "..."
    if "url" in field:
        shown = mask_url(raw)  # a password in the URL is never printed
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return UsageError(f"{variable}={shown!r}: {message}",
                      hint=f"fix or unset {variable}; `yaml-workflow config` lists every setting")


def load_settings() -> Settings:
    """Read the settings from the environment now (a bad value: UsageError naming it)."""
    global _current
    try:
        _current = Settings()
    except ValidationError as err:
        raise _one_line(err) from None
    return _current


def get_settings() -> Settings:
    """This process's settings, read the first time they are needed."""
    return _current if _current is not None else load_settings()


def use_settings(settings: Settings) -> None:
    """Make ``settings`` this process's settings (a command that overrides some, e.g. `worker --pool`)."""
    global _current
    _current = settings


def reset_settings() -> None:
    """Forget the settings read so far (tests that change the environment call this)."""
    global _current
    _current = None


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages and `config`)."""
    try:
        parts = urlparse(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def process_environment() -> dict[str, str]:
    """A copy of this process's environment: what steps see as `env` (data, not settings)."""
    return dict(os.environ)


def describe(settings: Settings) -> list[dict[str, Any]]:
    """Each setting as `config` shows it: variable, value (secrets masked), source, doc."""
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "***" if value.get_secret_value() else ""
        elif isinstance(value, str) and "url" in name:
            value = mask_url(value)
        rows.append({
            "variable": ENV_PREFIX + name.upper(),
            "value": value,
            "source": "environment" if name in settings.model_fields_set else "default",
            "description": field.description or "",
        })
    return rows


def settings_table() -> str:
    """The Markdown table of every setting (docs/settings.md is generated from it)."""
    lines = ["| variable | default | what it is |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        if field.default_factory is not None:
            shown = "per user"
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"
