"""Secrets: checked before anything runs, masked wherever a value could leave the process."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import SecretError
from ..settings import process_environment

MASK = "***"
# Environment names that look secret; never exported to Redis by `submit`.
SECRET_NAME_PATTERNS = (
    "*TOKEN*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*_KEY", "*CREDENTIAL*", "*AUTH*",
)
# A URL with a password in it (redis://:pw@host, amqp://user:pw@host) is a secret
# whatever its variable is called (YAML_WORKFLOW_BROKER_URL carries Redis's password).
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)


def looks_secret(name: str, value: str | None = None) -> bool:
    """True for names such as API_TOKEN, DB_PASSWORD, AWS_SECRET_ACCESS_KEY, FLOWER_BASIC_AUTH,
    and for any value that is a URL carrying a password."""
    upper = name.upper()
    if any(fnmatch.fnmatchcase(upper, pattern) for pattern in SECRET_NAME_PATTERNS):
        return True
    return bool(value and _URL_WITH_PASSWORD.match(value))


def check_secrets(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of the declared secrets; a missing or empty one stops the run before any step."""
    environ = process_environment() if environ is None else environ
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise SecretError(
            f"secret {', '.join(missing)} is not set",
            hint="export it in the environment before running (its value is never stored)",
        )
    return {name: environ[name] for name in names}


class Masker:
    """Replaces known secret values with *** in text and in nested values."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.values = sorted({v for v in values if v and len(v) >= 3}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        """``text`` with every secret value masked."""
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A copy of ``value`` with secret values masked in every string inside it."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value
