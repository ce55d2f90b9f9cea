"""Turn command-line ``k=v`` strings into typed ``args`` for a workflow.

Values from the command line are strings; a declared ``type`` converts them.  A value
that does not convert, a missing required param or a value outside ``allowed_values``
stops the run before any step, naming the param.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from ..exceptions import ParamError, SpecError
from .models import Param, Workflow
from .yaml_lines import load_data

_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}
# Errors quote a value up to this many characters; a longer one is described instead.
SHOWN_UP_TO = 40


def shown(value: Any, hidden: Collection[str] = ()) -> str:
    """A value as an error message may quote it: never one holding a secret's value
    (``hidden``), never more than :data:`SHOWN_UP_TO` characters, control characters escaped."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a number of about {value.bit_length() * 3 // 10:,} digits"
    try:
        text = repr(value)
    except ValueError:  # a container holding a number too long to print
        return f"a {type(value).__name__}"
    if any(secret and (secret in text or secret in str(value)) for secret in hidden):
        return "a secret's value (not shown)"
    if len(text) > SHOWN_UP_TO:
        return f"{text[:SHOWN_UP_TO - 8]}... ({len(text):,} characters)"
    return text


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["a=1", "--b=2"]`` -> ``{"a": "1", "b": "2"}``; anything else is a ParamError."""
    values: dict[str, str] = {}
    for item in items:
        text = item[2:] if item.startswith("--") else item
        if "=" not in text or text.startswith("="):
            raise ParamError(
                f"cannot read parameter '{item}'",
                hint="pass parameters as name=value or --name=value",
            )
        key, value = text.split("=", 1)
        values[key.strip()] = value
    return values


def _structured(name: str, value: str, kind: str, hidden: Collection[str]) -> Any:
    try:
        parsed = json.loads(value)
    except RecursionError:
        raise ParamError(f"parameter '{name}' nests too deeply", hint="pass a flatter value") from None
    except ValueError:
        try:
            parsed = load_data(value)
        except SpecError as err:
            if "invalid YAML" not in err.detail:  # too large, an alias bomb, a huge number
                raise ParamError(f"parameter '{name}': {err.detail}", hint=err.hint) from None
            parsed = None
        if kind == "list" and isinstance(value, str) and not isinstance(parsed, list):
            parsed = [part.strip() for part in value.split(",") if part.strip()]
    expected = list if kind == "list" else dict
    if not isinstance(parsed, expected):
        raise ParamError(
            f"parameter '{name}' must be {'an' if kind == 'object' else 'a'} {kind}, got {shown(value, hidden)}",
            hint=f"pass JSON, e.g. {name}='[1, 2]'" if kind == "list" else f"pass JSON, e.g. {name}='{{\"k\": 1}}'",
        )
    return parsed


def convert(name: str, value: Any, kind: str | None, hidden: Collection[str] = ()) -> Any:
    """Convert one value to the declared type (values that are not strings are checked).

    ``hidden`` are secrets' values: an error never quotes a value that holds one.
    """
    if kind is None:
        return value
    if kind == "string":
        return value if isinstance(value, str) else (value if value is None else str(value))
    if not isinstance(value, str):
        ok = {
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "list": isinstance(value, list),
            "object": isinstance(value, dict),
        }[kind]
        if not ok and value is not None:
            raise ParamError(f"parameter '{name}' must be {kind}, got {shown(value, hidden)}")
        return value
    text = value.strip()
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
        if kind == "boolean":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
    except ValueError:
        raise ParamError(
            f"parameter '{name}' must be {'an' if kind == 'integer' else 'a'} {kind}, got {shown(value, hidden)}",
            hint=f"pass e.g. {name}={'true' if kind == 'boolean' else '42'}",
        ) from None
    return _structured(name, text, kind, hidden)


def _check_constraints(name: str, spec: Param, value: Any, hidden: Collection[str]) -> Any:
    if spec.allowed_values is not None and value not in spec.allowed_values and isinstance(value, str):
        # An untyped param from the command line is a string: match `p=1` to `1` in the list.
        for allowed in spec.allowed_values:
            if str(allowed) == value or (isinstance(allowed, bool) and str(allowed).lower() == value.lower()):
                return allowed
    if spec.allowed_values is not None and value not in spec.allowed_values:
        allowed = ", ".join(str(v) for v in spec.allowed_values)
        raise ParamError(
            f"parameter '{name}' is {shown(value, hidden)}, which is not allowed", hint=f"one of: {allowed}"
        )
    if spec.min_length is not None and hasattr(value, "__len__") and len(value) < spec.min_length:
        raise ParamError(
            f"parameter '{name}' is shorter than {spec.min_length}",
            hint=f"give at least {spec.min_length} characters/items",
        )
    return value


def resolve_params(
    workflow: Workflow, given: dict[str, Any], hidden: Collection[str] = ()
) -> dict[str, Any]:
    """Declared defaults overlaid with given values, typed and checked; extras kept.

    ``hidden`` are the secrets' values: no error quotes a value that holds one.
    """
    args: dict[str, Any] = {}
    for name, spec in workflow.params.items():
        if name in given:
            value = convert(name, given[name], spec.type, hidden)
        elif spec.default is not None:
            value = convert(name, spec.default, spec.type, hidden)
        elif spec.required:
            hint = f"pass {name}=VALUE"
            if spec.description:
                hint += f" ({spec.description})"
            raise ParamError(f"required parameter '{name}' is missing", hint=hint)
        else:
            value = None
        if value is not None or spec.required:
            value = _check_constraints(name, spec, value, hidden)
        args[name] = value
    for name, value in given.items():
        if name not in workflow.params:
            args[name] = value
    return args
