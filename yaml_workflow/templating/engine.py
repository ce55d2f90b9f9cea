"""The one sandboxed Jinja2 environment every template of a workflow goes through.

- Sandboxed: templates cannot reach Python internals (``__class__``, ``__globals__``,
  unsafe ``str.format``); such attempts raise :class:`TemplateError`.
- Strict: an undefined name fails with a message naming it and listing what the
  namespace holds.
- Native single expressions: a string that is exactly ``{{ expr }}`` yields the value
  itself (list, number, dict), anything else yields text.
- Each value is rendered once: a rendered result is never fed back into Jinja.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


class Namespace(dict):  # type: ignore[type-arg]
    """A dict that knows its name (``args``, ``steps``...) for undefined-name messages."""

    __slots__ = ("ns_name",)

    def __init__(self, ns_name: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ns_name = ns_name


# `{{ expr }}` alone (no other text, no second expression) renders to the value itself.
SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)


def is_template(value: str) -> bool:
    """True when the string contains Jinja markup worth rendering."""
    return "{{" in value or "{%" in value or "{#" in value


# Most templates only substitute names: `{{ args.who }}`, `{{ steps.fetch.result['k'] }}`.
# Those are recognised without Jinja, so that checking a 20,000-step workflow does not
# parse 20,000 templates.  Anything else (filters, operators, blocks, a `{` in the
# text around) goes to Jinja's parser.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INDEX = r"\[\s*(?:'[^'\\{}]*'|\"[^\"\\{}]*\"|\d+)\s*\]"
_SIMPLE_EXPR = re.compile(rf"\{{\{{\s*({_NAME}(?:\s*\.\s*{_NAME}|\s*{_INDEX})*)\s*\}}\}}")
_SEGMENT = re.compile(rf"({_NAME})|\[\s*(?:'([^']*)'|\"([^\"]*)\"|(\d+))\s*\]")
# Names Jinja reads as operators or constants, not as a variable.
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "true", "false", "none",
                       "True", "False", "None"})


def _segment(name: str, single: str, double: str, digits: str) -> str | int:
    if name:
        return name
    return int(digits) if digits else single or double


def simple_paths(source: str) -> list[tuple[str | int, ...]] | None:
    """The names a template reads, as paths (``("steps", "a", "result")``), when the
    template is text and plain ``{{ name.attr['key'] }}`` substitutions only; else None."""
    paths: list[tuple[str | int, ...]] = []
    last = 0
    for match in _SIMPLE_EXPR.finditer(source):
        if "{" in source[last:match.start()]:
            return None
        path = tuple(_segment(*seg) for seg in _SEGMENT.findall(match.group(1)))
        if path[0] in _KEYWORDS:
            return None
        paths.append(path)
        last = match.end()
    if "{" in source[last:]:
        return None
    return paths


def check_syntax(source: str) -> str | None:
    """None when ``source`` parses as a template, else the problem in one line."""
    if simple_paths(source) is not None:
        return None
    from . import sandbox  # Jinja2 is imported on first use

    return sandbox.check_syntax(source)


def render_text(source: str, namespaces: Mapping[str, Any]) -> str:
    """Render ``source`` to text (the template task and `message` use this)."""
    from . import sandbox

    return sandbox.render_text(source, namespaces)


def render_string(source: str, namespaces: Mapping[str, Any]) -> Any:
    """Render one string: a native value for a single expression, else text."""
    if not is_template(source):
        return source
    from . import sandbox

    return sandbox.render_string(source, namespaces)


def render_value(value: Any, namespaces: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists walked), each exactly once."""
    if isinstance(value, str):
        return render_string(value, namespaces)
    if isinstance(value, dict):
        return {k: render_value(v, namespaces) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, namespaces) for v in value]
    return value


def iter_template_strings(value: Any) -> Any:
    """Every string with Jinja markup inside ``value`` (for load-time syntax checks)."""
    if isinstance(value, str):
        if is_template(value):
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_template_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_template_strings(v)


def truthy(value: Any) -> bool:
    """How a rendered `condition` decides: 'false', 'no', '0', '', None are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "off", "n")
    if value is None:
        return False
    return bool(value)
