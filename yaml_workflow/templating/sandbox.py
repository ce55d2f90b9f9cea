"""The Jinja2 side of templating: the sandboxed environment and rendering with it.

Imported only when a template is actually rendered or checked, so that a workflow
without templates does not pay for importing Jinja2 (~20 ms of a command's start-up).
"""

from __future__ import annotations

import json
import os
import shlex
import types
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from ..exceptions import TemplateError, TemplateSyntaxProblem
from .markup import SINGLE_EXPR as _SINGLE_EXPR


def _describe_keys(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = sorted(str(k) for k in obj.keys())
        if not keys:
            return "it is empty"
        shown = ", ".join(keys[:20])
        return f"it holds: {shown}{', ...' if len(keys) > 20 else ''}"
    return f"it is a {type(obj).__name__}"


class _NamedUndefined(StrictUndefined):
    """StrictUndefined whose message says which name is missing and what exists instead."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        name = self._undefined_name
        obj = self._undefined_obj
        if self._undefined_hint:
            message = self._undefined_hint
        elif obj is None or obj is missing:
            message = f"'{name}' is undefined"
        else:
            owner = getattr(obj, "ns_name", None)
            full = f"{owner}.{name}" if owner else f"{type(obj).__name__}.{name}"
            message = f"'{full}' is undefined; {_describe_keys(obj)}"
        raise UndefinedError(message)

    __str__ = __iter__ = __len__ = __bool__ = __eq__ = __ne__ = __hash__ = (
        _fail_with_undefined_error
    )


def _shquote(value: Any) -> str:
    return shlex.quote(str(value))


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, default=str, ensure_ascii=False)


class _Environment(ImmutableSandboxedEnvironment):
    """Our sandbox; the top-level undefined names the namespaces that exist."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `args.items`, `steps.x.result.keys`: in a workflow a key of that name is meant,
        # not the dict method Jinja would otherwise find first.
        if isinstance(obj, dict):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


def _data_only(value: Any) -> Any:
    """Refuse a template whose value is Python code (a function, method, class or module).

    The sandbox stops attribute tricks, but a bare ``{{ ''.format_map }}`` or
    ``{{ cycler }}`` would otherwise hand a live callable to the task (or its repr to
    the output); templates yield data only.
    """
    if isinstance(value, Undefined):
        return value
    if callable(value) or isinstance(value, types.ModuleType):
        raise SecurityError(
            f"a template may yield data only, not a Python {type(value).__name__}"
        )
    return value


def _make_env() -> _Environment:
    env = _Environment(
        undefined=_NamedUndefined,
        finalize=_data_only,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.filters["shquote"] = _shquote
    env.filters["tojson"] = _tojson
    env.filters["basename"] = lambda p: os.path.basename(str(p))
    env.filters["dirname"] = lambda p: os.path.dirname(str(p))
    return env


ENV = _make_env()

@lru_cache(maxsize=4096)
def _compiled_text(source: str) -> Any:
    return ENV.from_string(source)


@lru_cache(maxsize=4096)
def _compiled_expr(source: str) -> Any:
    return ENV.compile_expression(source, undefined_to_none=False)


def check_syntax(source: str) -> str | None:
    """None when ``source`` parses as a template, else the problem in one line."""
    try:
        match = _SINGLE_EXPR.match(source)
        if match:
            _compiled_expr(match.group("expr"))
        else:
            _compiled_text(source)
    except TemplateSyntaxError as err:
        return f"template syntax error: {err.message}"
    return None


def _failure(source: str, err: Exception, namespaces: Mapping[str, Any]) -> TemplateError:
    snippet = source if len(source) <= 80 else source[:77] + "..."
    snippet = " ".join(snippet.split())
    if isinstance(err, UndefinedError) and "is unsafe" in (err.message or ""):
        # The sandbox refused an attribute (via |attr or str.format): not a missing name.
        return TemplateError(f"unsafe template refused by the sandbox: {err.message} (in {snippet!r})")
    if isinstance(err, UndefinedError):
        message = err.message or "undefined value"
        if "; it " not in message:
            message += f"; available names: {', '.join(sorted(namespaces))}"
        return TemplateError(f"{message} (in template {snippet!r})")
    if isinstance(err, SecurityError):
        return TemplateError(f"unsafe template refused by the sandbox: {err} (in {snippet!r})")
    return TemplateError(f"template failed: {type(err).__name__}: {err} (in {snippet!r})")


def render_text(source: str, namespaces: Mapping[str, Any]) -> str:
    """Render ``source`` to text (the template task and `message` use this)."""
    try:
        return str(_compiled_text(source).render(namespaces))
    except TemplateSyntaxError as err:
        raise TemplateSyntaxProblem(f"template syntax error: {err.message}") from None
    except Exception as err:  # noqa: BLE001 - every render failure fails the step, one line
        raise _failure(source, err, namespaces) from None


def render_string(source: str, namespaces: Mapping[str, Any]) -> Any:
    """Render one string: a native value for a single expression, else text."""
    match = _SINGLE_EXPR.match(source)
    if match is None:
        return render_text(source, namespaces)
    try:
        value = _data_only(_compiled_expr(match.group("expr"))(**namespaces))
    except TemplateSyntaxError as err:
        raise TemplateSyntaxProblem(f"template syntax error: {err.message}") from None
    except Exception as err:  # noqa: BLE001
        raise _failure(source, err, namespaces) from None
    if isinstance(value, StrictUndefined):
        raise _failure(source, _as_undefined_error(value), namespaces)
    if isinstance(value, str) and len(match.group("expr")) + 4 != len(source):
        # Text stays text: the whitespace around the expression (a block scalar's
        # final newline) is kept, as rendering never drops a trailing newline.
        return f"{source[: source.index('{{')]}{value}{source[source.rindex('}}') + 2:]}"
    return value


def _as_undefined_error(value: StrictUndefined) -> UndefinedError:
    try:
        str(value)
    except UndefinedError as err:
        return err
    return UndefinedError("undefined value")  # pragma: no cover


