"""Secrets: checked before anything runs, masked wherever a value could leave the process.

:class:`Masker` replaces a declared secret's value with ``***`` in *data* — step
results and errors, messages, logs, params, variables — and never in what is ours: run
ids, step names, statuses, paths, times, counts (:meth:`Masker.event` knows which fields
of a transition are which).  In data it catches:

- the value itself, anywhere inside a text, a dictionary key or a list;
- the escaped forms our own serialisers write: JSON (``tojson``, the state file, Redis),
  JSON inside JSON, Python's ``repr`` (a worker's log of an object), and ``shquote``;
- a number equal to a numeric secret (``31337420`` read back from JSON).

It cannot catch a value that was transformed: base64 or hex, URL-encoding, upper case, a
secret split into pieces or printed a few characters at a time (docs/security.md).
A secret shorter than :data:`MIN_SECRET_LENGTH` is refused: it could not be masked
without masking ordinary words.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import math
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import SecretError
from ..settings import process_environment

MASK = "***"
MIN_SECRET_LENGTH = 6
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
    if _secret_name(name.upper()):
        return True
    return bool(value and _URL_WITH_PASSWORD.match(value))


@functools.lru_cache(maxsize=4096)
def _secret_name(upper: str) -> bool:
    # The same environment is checked at every submit of a process: match each name once.
    return any(fnmatch.fnmatchcase(upper, pattern) for pattern in SECRET_NAME_PATTERNS)


def check_secrets(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of the declared secrets; a missing, empty or too short one stops the run
    before any step (the message names the secret, never its value)."""
    environ = process_environment() if environ is None else environ
    names = list(names)
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise SecretError(
            f"secret {', '.join(missing)} is not set",
            hint="export it in the environment before running (its value is never stored)",
        )
    short = [name for name in names if len(environ[name]) < MIN_SECRET_LENGTH]
    if short:
        raise SecretError(
            f"secret {', '.join(short)} is shorter than {MIN_SECRET_LENGTH} characters",
            hint="a value that short cannot be masked without masking ordinary text; use a longer secret",
        )
    return {name: environ[name] for name in names}


def escaped_forms(secret: str) -> list[str]:
    """The secret as our serialisers may write it: raw, JSON (ASCII or not, once or twice),
    repr, shell-quoted, and as an error line (one line, whitespace collapsed).  Longest first."""
    forms = {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        shlex.quote(secret),
    }
    # An error message is made one line ("a\nb" -> "a b") and its whitespace collapsed
    # before it is masked and stored.
    for joined in (" ".join(secret.splitlines()), " ".join(secret.split())):
        if len(joined) >= MIN_SECRET_LENGTH:
            forms.add(joined)
    # JSON inside JSON (a tojson output kept in a JSON document), with unicode escaped or not.
    forms |= {json.dumps(form, ensure_ascii=ascii)[1:-1] for form in list(forms) for ascii in (True, False)}
    return sorted(forms, key=len, reverse=True)


def _numeric(secret: str) -> int | float | None:
    """The number a secret is the canonical text of (``"31337420"``), else None."""
    try:
        number = int(secret)
        if str(number) == secret:
            return number
    except ValueError:
        pass
    try:
        real = float(secret)
    except ValueError:
        return None
    return real if math.isfinite(real) and repr(real) == secret else None


# Fields of each kind of transition that carry data; every other field is ours (ids,
# names, statuses, paths, times, counts) and is never masked.  An unknown kind of
# transition is masked whole (but for `t` and `at`): data until proven otherwise.
DATA_FIELDS: dict[str, tuple[str, ...]] = {
    "run": ("params", "variables", "env", "workflow"),
    "step": ("result", "error", "error_message", "reason", "progress"),
    "status": (),
    "var": ("value",),
    "history": (),
    "progress": ("progress",),
    "items": (),
    "flag": ("value",),
    "reset": (),
    "params": ("params",),
}
_ITEM_CONTROL = ("status", "attempt", "attempts", "index", "duration", "started_at", "finished_at")


class Masker:
    """Replaces known secret values with *** in data (see the module docstring)."""

    def __init__(self, secrets: Mapping[str, str] | Iterable[str] = ()) -> None:
        if isinstance(secrets, Mapping):
            self.by_name: dict[str, str] = {k: v for k, v in secrets.items() if v}
            values: Iterable[str] = self.by_name.values()
        else:
            self.by_name = {}
            values = secrets
        self.values = sorted({v for v in values if v}, key=len, reverse=True)
        # Longest first, so a secret that contains another is masked whole.
        self.needles = sorted({form for v in self.values for form in escaped_forms(v)},
                              key=len, reverse=True)
        self.numbers = {n for n in map(_numeric, self.values) if n is not None}

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        """``text`` with every secret value (and its escaped forms) masked."""
        for needle in self.needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return text

    def _number(self, value: int | float) -> bool:
        if isinstance(value, int) and value.bit_length() > 256:
            return False  # no secret is that long; comparing would cost a conversion
        return value in self.numbers

    def value(self, value: Any) -> Any:
        """A copy of ``value`` (data) with secrets masked in every string, key and number."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (int, float)):
            return MASK if self.numbers and self._number(value) else value
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def _name_of(self, value: Any) -> str | None:
        """The name of the secret whose value ``value`` is (a text, or a number equal to a
        numeric secret), else None."""
        for name, secret in self.by_name.items():
            if value == secret or (not isinstance(value, (str, bool)) and value == _numeric(secret)):
                return name
        return None

    def params(self, params: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Params as they may be stored or printed, and the references that restore them.

        A value (at any depth) equal to a secret becomes ``***`` and a reference
        ``{"path": [...], "secret": NAME}``: whoever runs the step later (a resume, a
        worker) takes the value from its own environment.  A value that holds a secret
        inside other text is masked and referenced with ``"secret": None``: it cannot be
        restored, and a resume asks for it again.
        """
        refs: list[dict[str, Any]] = []

        def walk(value: Any, path: list[Any]) -> Any:
            if isinstance(value, bool) or value is None:
                return value
            if isinstance(value, (str, int, float)):
                masked = self.value(value)
                if masked != value:
                    name = self._name_of(value)
                    ref: dict[str, Any] = {"path": path, "secret": name}
                    if name is not None and not isinstance(value, str):
                        ref["number"] = True
                    refs.append(ref)
                return masked
            if isinstance(value, dict):
                out = {}
                for key, item in value.items():
                    safe_key = self.value(key)
                    if safe_key != key:  # a key cannot be referenced: its place is lost
                        refs.append({"path": [*path, safe_key], "secret": None})
                    out[safe_key] = walk(item, [*path, safe_key])
                return out
            if isinstance(value, (list, tuple)):
                return [walk(item, [*path, index]) for index, item in enumerate(value)]
            return value

        if not self.values:
            return params, []
        return walk(params, []), refs

    def params_for_workers(self, params: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """:meth:`params`, for params that other processes will run with (the fleet's spec):
        one that holds a secret inside a longer text is refused, since it could only
        reach a worker by being stored."""
        masked, refs = self.params(params)
        lost = lost_params(refs)
        if lost:
            raise SecretError(
                f"parameter '{lost[0]}' holds a secret's value inside a longer text",
                hint="workers could only get it if Redis stored the secret: pass the secret as a "
                     "param of its own, or build the text in the step (e.g. '{{ env.NAME }}')",
            )
        return masked, refs

    def _item(self, record: Any) -> Any:
        if not isinstance(record, dict):
            return self.value(record)
        return {k: v if k in _ITEM_CONTROL else self.value(v) for k, v in record.items()}

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A transition with its data fields masked and every other field left as it is."""
        if not self.values:
            return event
        kind = event.get("t")
        if kind not in DATA_FIELDS:
            return {k: v if k in ("t", "at") else self.value(v) for k, v in event.items()}
        masked = dict(event)
        for key in DATA_FIELDS[str(kind)]:
            if key == "params" and "param_secrets" in masked:
                continue  # already as stored (masked, referenced, maybe signed): left as it is
            if key == "params" and isinstance(masked.get(key), dict):
                # A param equal to a secret is stored as a reference to it, by name.
                masked["params"], masked["param_secrets"] = self.params(masked["params"])
            elif key in masked:
                masked[key] = self.value(masked[key])
        failed = masked.get("failed_step")
        if isinstance(failed, dict) and "error" in failed:
            masked["failed_step"] = {**failed, "error": self.value(failed["error"])}
        items = masked.get("items")
        if isinstance(items, dict):  # item indexes are ours; their records hold data
            masked["items"] = {index: self._item(record) for index, record in items.items()}
        return masked


def lost_params(refs: Iterable[dict[str, Any]] | None) -> list[str]:
    """Params stored masked with no way back (a secret inside a longer text)."""
    return sorted({str(ref["path"][0]) for ref in refs or () if ref.get("secret") is None and ref.get("path")})


def restore_params(params: dict[str, Any], refs: Iterable[dict[str, Any]] | None,
                   secrets: Mapping[str, str]) -> dict[str, Any]:
    """``params`` with each reference to a secret replaced by its value in ``secrets`` (the
    environment of the process that runs the steps); masked params without one stay masked."""
    restored = copy.deepcopy(params)
    for ref in refs or ():
        name, path = ref.get("secret"), ref.get("path") or []
        if name is None or not path:
            continue
        if name not in secrets:
            raise SecretError(
                f"parameter '{path[0]}' is the value of secret {name}, which is not set here",
                hint=f"export {name} in this environment (its value is never stored)",
            )
        value: Any = secrets[name]
        if ref.get("number"):
            value = _numeric(value) if _numeric(value) is not None else value
        target: Any = restored
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # the params changed shape since (overridden): nothing to restore there
    return restored
