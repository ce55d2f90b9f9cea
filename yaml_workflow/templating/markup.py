"""What templates are made of, without Jinja2: markup detection, named namespaces, and
the names a plain substitution template reads.

Kept apart from the renderer so that both the cheap path (:mod:`.engine`, no Jinja2
import) and the Jinja2 side (:mod:`.sandbox`) can use it.
"""

from __future__ import annotations

import re
from functools import lru_cache
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


@lru_cache(maxsize=32768)  # load and lint both ask, template by template
def simple_paths(source: str) -> tuple[tuple[str | int, ...], ...] | None:
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
    return tuple(paths)
