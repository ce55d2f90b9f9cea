"""Every setting of yaml-workflow, declared once and read from the environment once per process.

Configuration is twelve-factor: environment variables named ``YAML_WORKFLOW_<FIELD>``.
:class:`Settings` (in :mod:`.settings_env`) declares each with its type, default and a
one-line description (the table in docs/settings.md is generated from it);
:func:`get_settings` reads them the first time and keeps them; the CLI reads them afresh
at the start of each command, so a bad value is one line naming the variable (exit 2)
before anything runs.  When no ``YAML_WORKFLOW_*`` variable is set, the settings are
:data:`DEFAULTS` as a plain object (:class:`Defaults`) and no model is built or
validated at all.

This is the only module that reads the process environment for configuration.  Steps
get their environment through :func:`process_environment`, which is data, not settings.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

from .exceptions import UsageError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .settings_env import Settings

# The settings' public names, re-exported from where they are declared.
from .settings_defaults import DEFAULT_BROKER_URL as DEFAULT_BROKER_URL
from .settings_defaults import DEFAULT_KEY_PREFIX as DEFAULT_KEY_PREFIX
from .settings_defaults import DEFAULTS as DEFAULTS
from .settings_defaults import ENV_PREFIX as ENV_PREFIX
from .settings_defaults import Defaults as Defaults
from .settings_defaults import parse_duration as parse_duration


def _configured() -> bool:
    # Names match in any case (Settings.from_environ): so does this.
    return any(key.upper().startswith(ENV_PREFIX) for key in os.environ)


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
    if not _configured():
        _current = cast("Settings", Defaults())
        return _current
    from pydantic import ValidationError

    from .settings_env import Settings

    try:
        _current = Settings.from_environ(os.environ)
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
    from pydantic import SecretStr

    from .settings_env import Settings

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
    from .settings_env import Settings

    lines = ["| variable | default | what it is |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None else f"`{default:g}`" if isinstance(default, float) else f"`{default}`"
        if field.default_factory is not None:
            shown = "per user"
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"


def __getattr__(name: str) -> Any:
    # `from yaml_workflow.settings import Settings` keeps working, at the price of pydantic.
    if name == "Settings":
        from .settings_env import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
