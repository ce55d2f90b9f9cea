"""Jinja's filters and ``lipsum``, each checked before it can build more than a rendering may.

Most filters build about what they are given; those that can build far more (padding,
repetition, joining with a long separator, formatting with a wide field) are checked
first with :mod:`.limits`, and every filter's text result is checked after.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .limits import (
    MAX_ITEMS,
    MAX_TEXT,
    TemplateLimitError,
    as_text,
    check_length,
    check_percent_format,
    check_replace,
    check_text,
    is_int,
    refuse,
)

# `lipsum(n)` writes n paragraphs of up to `max` words each.
MAX_LIPSUM_PARAGRAPHS = 100
MAX_LIPSUM_WORDS = 1_000


def _guard(original: Callable[..., Any], check: Callable[..., Any] | None) -> Callable[..., Any]:
    """``original`` with ``check(*args, **kwargs)`` before it and a text-length check after.

    A check returns None, or every argument (positional) to call ``original`` with instead.
    """

    @functools.wraps(original)  # keeps jinja_pass_arg: Jinja passes the same first argument
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if check is not None:
            replaced = check(*args, **kwargs)
            if replaced is not None:  # the check read an iterator: hand on what it read
                args, kwargs = replaced, {}
        result = original(*args, **kwargs)
        if isinstance(result, str) and len(result) > MAX_TEXT:
            raise refuse("a filter built a text longer than allowed", MAX_TEXT)
        return result

    return guarded


def _center(value: Any, width: Any = 80, *_: Any) -> None:
    check_length(width, "'center' pads to a text")


def _indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    text = as_text(s)
    step = width if is_int(width) else len(as_text(width))
    check_length(len(text) + (text.count("\n") + 1) * max(step, 0), "'indent' builds a text")


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    check_percent_format(as_text(value), kwargs or args)


def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> None:
    text = as_text(s)
    check_replace(text, str(old), str(new), -1 if count is None else count)


def _join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> tuple[Any, ...]:
    items = list(value) if not isinstance(value, dict) else list(value.keys())
    check_text(items, "'join' builds a text")
    check_length(len(as_text(d)) * len(items), "'join' builds a text")
    return (eval_ctx, items, d, attribute)


def _count(what: str) -> Callable[..., None]:
    def check(value: Any, count: Any = 1, *_: Any, **__: Any) -> None:
        if is_int(count) and count > MAX_ITEMS:
            raise refuse(f"'{what}' of {count:,} pieces", MAX_ITEMS)

    return check


def _wordwrap(environment: Any, s: Any, width: Any = 79, break_long_words: Any = True,
              wrapstring: Any = None, *_: Any, **kwargs: Any) -> None:
    text = as_text(s)
    wrap = as_text(kwargs.get("wrapstring", wrapstring) or "\n")
    check_length(len(text) * (1 + len(wrap)), "'wordwrap' builds a text")


def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, (int, float)):
        raise TemplateLimitError("'sum' adds numbers only in a template")


def _text_of_value(value: Any, *_: Any, **__: Any) -> None:
    check_text(value)


# Filters that can build far more than they are given, and the check run before each.
_FILTER_CHECKS: dict[str, Callable[..., Any] | None] = {
    "center": _center,
    "indent": _indent,
    "format": _format,
    "replace": _replace,
    "join": _join,
    "batch": _count("batch"),
    "slice": _count("slice"),
    "wordwrap": _wordwrap,
    "sum": _sum,
    "string": _text_of_value,
    "pprint": _text_of_value,
    "tojson": _text_of_value,
    "urlencode": _text_of_value,
    "xmlattr": None,
    "shquote": _text_of_value,
    "basename": _text_of_value,
    "dirname": _text_of_value,
    "escape": _text_of_value,
    "e": _text_of_value,
    "forceescape": _text_of_value,
}


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Every filter wrapped: a check before the ones that can grow, a length check after all."""
    return {name: _guard(func, _FILTER_CHECKS.get(name)) for name, func in filters.items()}


def bounded_lipsum(original: Callable[..., str]) -> Callable[..., str]:
    """Jinja's ``lipsum`` with a bound on paragraphs and words."""

    @functools.wraps(original)
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
        if n > MAX_LIPSUM_PARAGRAPHS or max > MAX_LIPSUM_WORDS or min > MAX_LIPSUM_WORDS:
            raise refuse("lipsum asks for too much text", MAX_LIPSUM_PARAGRAPHS)
        return original(n, html, min, max)

    return lipsum
