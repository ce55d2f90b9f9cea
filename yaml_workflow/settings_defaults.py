"""The settings' names, defaults and derived values, without pydantic.

Shared by :mod:`.settings` (which serves :class:`Defaults` when no ``YAML_WORKFLOW_*``
variable is set) and :mod:`.settings_env` (the typed model that reads them).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

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


def default_key_file() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "yaml-workflow", "key")


def check_url(value: str | None, schemes: tuple[str, ...], what: str) -> str | None:
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


# Every setting's default (the environment's Settings declares the same fields with these).
DEFAULTS: dict[str, Any] = {
    "broker_url": DEFAULT_BROKER_URL,
    "state_url": None,
    "key_prefix": DEFAULT_KEY_PREFIX,
    "workspace_root": "runs",
    "visibility_timeout": 30.0,
    "restore_interval": 5.0,
    "step_timeout": 1800.0,
    "claim_ttl": 15.0,
    "reconnect_timeout": 60.0,
    "stall_after": None,
    "running_delay": 0.2,
    "soft_shutdown_timeout": 0.0,
    "worker_name": None,
    "worker_pool": "prefork",
    "idempotency_ttl": 7 * 86400.0,
    "beat_lock_ttl": 10.0,
    "finished_ttl": None,
    "fsync": False,
    "lease_ttl": 15.0,
    "fleet_key": None,
    "debug": False,
    "ui_token": None,
    "test_fault": None,
    "test_pause": None,
}

class Derived:
    """What both forms of the settings compute from their fields."""

    if TYPE_CHECKING:
        broker_url: str
        state_url: str | None
        stall_after: float | None
        claim_ttl: float
        model_fields_set: set[str]

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




class Defaults(Derived):
    """The settings when no ``YAML_WORKFLOW_*`` variable is set: :data:`DEFAULTS`, immutable.

    Duck-types :class:`Settings` for every reader (attributes, ``model_fields_set``,
    ``model_copy``); a unit test holds the two equal field by field.
    """

    def __init__(self, **changes: Any) -> None:
        values = dict(DEFAULTS, key_file=default_key_file())
        values.update(changes)
        self.__dict__.update(values, model_fields_set=set(changes))

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("settings are frozen: use model_copy(update=...)")

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the plain form lacks: say so like a missing attribute would.
        raise AttributeError(name)

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Defaults:
        """A copy with ``update`` applied (as pydantic's model_copy)."""
        changes = {k: self.__dict__[k] for k in self.model_fields_set}
        return Defaults(**changes, **(update or {}))
