"""The settings read from ``YAML_WORKFLOW_*`` variables: typed, checked, one line per bad value.

Imported only when such a variable is set (see :func:`yaml_workflow.settings.load_settings`).
A plain pydantic model fed by :meth:`Settings.from_environ` (names matched in any case,
as pydantic-settings would): importing pydantic-settings alone cost a fleet command
~45 ms of start-up.  The defaults live in :data:`yaml_workflow.settings_defaults.DEFAULTS`,
once for both paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

from .settings_defaults import (
    DEFAULTS,
    ENV_PREFIX,
    Derived,
    check_url,
    default_key_file,
    parse_duration,
)


def _empty_is_unset(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Duration = Annotated[float, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[float | None, BeforeValidator(parse_duration)]
OptionalText = Annotated[str | None, BeforeValidator(_empty_is_unset)]


class Settings(Derived, BaseModel):
    """The settings of one process; each field is the environment variable YAML_WORKFLOW_<NAME>."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """The settings that ``environ``'s YAML_WORKFLOW_<NAME> variables give (any case;
        the upper-case spelling wins); unknown names are ignored."""
        values: dict[str, str] = {}
        for key, value in environ.items():
            upper = key.upper()
            if not upper.startswith(ENV_PREFIX):
                continue
            name = upper[len(ENV_PREFIX):].lower()
            if name in cls.model_fields and (name not in values or key == upper):
                values[name] = value
        return cls.model_validate(values)

    # --- where things live -----------------------------------------------------------
    broker_url: str = Field(
        DEFAULTS["broker_url"],
        description="Celery's broker (redis://, rediss://; a password in the URL is masked everywhere)")
    state_url: OptionalText = Field(
        DEFAULTS["state_url"], description="where runs live: redis://, rediss://, file://DIR or memory://; "
                          "default: the workspace JSON for `run`, the broker's Redis for the fleet")
    key_prefix: str = Field(DEFAULTS["key_prefix"], min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                            description="prefix of every Redis key; fleets sharing a Redis use different ones")
    workspace_root: str = Field(DEFAULTS["workspace_root"], min_length=1,
                                description="where `submit` creates workspaces and where runs are looked up")
    # --- the fleet -------------------------------------------------------------------
    visibility_timeout: Duration = Field(
        DEFAULTS["visibility_timeout"], gt=0, description="seconds a delivered, unacked broker message waits before Redis hands it out "
                              "again (a dead worker's messages come back after this; claims keep live steps single)")
    restore_interval: Duration = Field(
        DEFAULTS["restore_interval"], gt=0, description="seconds between a worker's checks for unacked messages past the visibility timeout")
    step_timeout: Duration = Field(DEFAULTS["step_timeout"], gt=0, description="the limit of a fleet step without its own `timeout`")
    claim_ttl: Duration = Field(
        DEFAULTS["claim_ttl"], gt=0, description="seconds a running step's claim lives without renewal: a worker that cannot renew "
                              "for this long stops the step; others take it a third of this later")
    reconnect_timeout: Duration = Field(
        DEFAULTS["reconnect_timeout"], gt=0, description="seconds `submit --wait`, `status --watch` and workers' bookkeeping keep "
                              "reconnecting to a Redis that went away")
    stall_after: OptionalDuration = Field(
        DEFAULTS["stall_after"], gt=0, description="a running fleet run with no claim, no queued message and no change for "
                                "this long is stalled: the workers' sweep sends its owed steps again (default: 3 x claim_ttl)")
    running_delay: Duration = Field(DEFAULTS["running_delay"], ge=0, description="a fleet step running longer than this shows `running` in the store")
    soft_shutdown_timeout: Duration = Field(
        DEFAULTS["soft_shutdown_timeout"], ge=0, description="seconds a worker told to stop lets running steps finish before handing them back "
                             "(0: Celery's warm shutdown)")
    worker_name: OptionalText = Field(DEFAULTS["worker_name"], description="the host name a worker records on its steps (default: its node name)")
    worker_pool: Literal["prefork", "solo", "threads"] = Field(
        DEFAULTS["worker_pool"], description="the worker's pool (set by `yaml-workflow worker --pool`)")
    idempotency_ttl: Duration = Field(
        DEFAULTS["idempotency_ttl"], gt=0, description="seconds a `submit --idempotency-key` stays bound to its run "
                                     "(a second submit with the key within this time returns that run)")
    beat_lock_ttl: Duration = Field(
        DEFAULTS["beat_lock_ttl"], gt=0, description="seconds the lock of the active `yaml-workflow beat` lives without renewal; "
                              "a standby beat takes over within about 1.3 x this after the holder dies")
    # --- state -----------------------------------------------------------------------
    finished_ttl: OptionalDuration = Field(
        DEFAULTS["finished_ttl"], gt=0, description="completed and cancelled runs expire from Redis after this (unset: kept)")
    fsync: bool = Field(DEFAULTS["fsync"], description="fsync the JSON mirror's journal and snapshots (power-loss safety)")
    lease_ttl: Duration = Field(DEFAULTS["lease_ttl"], gt=0, description="seconds a local run's lease lives without its heartbeat")
    fleet_key: Annotated[SecretStr | None, BeforeValidator(_empty_is_unset)] = Field(
        DEFAULTS["fleet_key"], description="the key of the digests that make a run's stored workflow and params data, not "
                          "code (give every submitter of a fleet the same); unset: a per-user key file")
    key_file: str = Field(default_factory=default_key_file,
                          description="the per-user key file used when YAML_WORKFLOW_FLEET_KEY is unset "
                                      "(default: $XDG_CONFIG_HOME/yaml-workflow/key, else ~/.config/...)")
    # --- clients ---------------------------------------------------------------------
    debug: bool = Field(DEFAULTS["debug"], description="print tracebacks of internal errors")
    ui_token: Annotated[SecretStr | None, BeforeValidator(_empty_is_unset)] = Field(
        DEFAULTS["ui_token"], description="the dashboard's (`serve`) action token: with it, retry, skip, cancel and resume "
                          "are offered to those who sign in with it; unset: the dashboard is read-only")
    # --- testing ---------------------------------------------------------------------
    test_fault: OptionalText = Field(
        DEFAULTS["test_fault"], description="test hook: POINT:STEP makes a worker die at that point of a step's commit")
    test_pause: OptionalText = Field(
        DEFAULTS["test_pause"], description="test hook: POINT:DIR holds a process at POINT until DIR/release exists")

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str) -> str:
        return check_url(value, ("redis", "rediss", "unix", "amqp", "amqps", "memory"),
                          "the broker URL") or value

    @field_validator("state_url")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        return check_url(value, ("redis", "rediss", "unix", "file", "memory"), "the state URL")
