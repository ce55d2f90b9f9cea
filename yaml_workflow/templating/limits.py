"""Bounds on what one template may build and how much work one rendering may do.

A template is a few characters that can ask for a lot: ``'a' * 10**9`` and
``'x' | center(10**9)`` allocate a gigabyte, ``10 ** 1000000000`` is folded by Jinja at
*compile* time (so ``validate`` would hang), and nested loops never end.  The sandbox
(``sandbox.py``) routes every operator, call, filter, loop and concatenation that can
grow a value through the checks below, *before* the value is built:

- a string (or the text of a value turned into a string) holds at most
  :data:`MAX_TEXT` characters, and so does the output of one rendering;
- a list built by repetition or concatenation holds at most :data:`MAX_ITEMS` items;
- an integer built by ``*`` or ``**`` has at most :data:`MAX_INT_BITS` bits;
- one rendering performs at most :data:`WORK_BUDGET` loop iterations, calls and
  intercepted operators together.

Crossing a bound raises :class:`TemplateLimitError` (a Jinja ``SecurityError``), which
fails the step like any other template error.  Checks that Jinja runs while folding
constants at compile time raise too, and Jinja then leaves the expression to run time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2.exceptions import SecurityError

MAX_TEXT = 10_000_000
MAX_ITEMS = 1_000_000
MAX_INT_BITS = 10_000  # about 3,000 decimal digits: still printable (Python stops at 4,300)
WORK_BUDGET = 5_000_000


class TemplateLimitError(SecurityError):
    """A template asked for more than a rendering may build or do."""


def refuse(what: str, limit: int) -> TemplateLimitError:
    """The error for a value or an amount of work past a limit."""
    return TemplateLimitError(f"{what} (the limit is {limit:,})")


# --- the work budget of one rendering ---------------------------------------------------


class _Budget:
    __slots__ = ("left",)

    def __init__(self, units: int) -> None:
        self.left = units


_BUDGET: ContextVar[_Budget | None] = ContextVar("ywf_template_budget", default=None)


class work_budget:  # noqa: N801 - used as a context manager, named like one
    """Gives the rendering inside the ``with`` block its own budget of work units."""

    def __enter__(self) -> None:
        self._token = _BUDGET.set(_Budget(WORK_BUDGET))

    def __exit__(self, *exc: object) -> None:
        _BUDGET.reset(self._token)


def spend(units: int = 1) -> None:
    """Count work against the current rendering's budget (none outside a rendering)."""
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.left -= units
    if budget.left < 0:
        raise refuse("the template does too much work: loop iterations, calls and operators", WORK_BUDGET)


def counted(iterable: Any) -> Iterator[Any]:
    """``iterable``, counting each item a ``{% for %}`` loop takes against the budget."""
    for item in iterable:
        spend()
        yield item


# --- sizes --------------------------------------------------------------------------


def text_size(value: Any, limit: int = MAX_TEXT) -> int:
    """An upper estimate of ``len(str(value))``; stops counting once past ``limit``.

    A container's text repeats a shared element each time it appears (``[s] * 1000``),
    so shared references count every time; the walk itself is charged to the budget.
    """
    total, stack, visited = 0, [value], 0
    while stack and total <= limit:
        item = stack.pop()
        visited += 1
        if isinstance(item, str):
            # Inside a container a string is shown by its repr: quotes and escapes.
            total += len(item) if item is value else 4 * len(item) + 2
        elif isinstance(item, (bytes, bytearray)):
            total += 4 * len(item) + 3
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 32  # a float, an Undefined, a namespace object: short texts
    spend(visited)
    return total


def check_text(value: Any, what: str = "the template builds a text") -> None:
    """Refuse ``value`` when its text would pass :data:`MAX_TEXT` characters."""
    size = text_size(value)
    if size > MAX_TEXT:
        raise refuse(f"{what} of more than {MAX_TEXT:,} characters", MAX_TEXT)


def as_text(value: Any) -> str:
    """``str(value)``, refused before it is built when it would be too long."""
    if isinstance(value, str):
        return value
    check_text(value)
    return str(value)


def check_length(length: Any, what: str) -> None:
    """Refuse a text of ``length`` characters past :data:`MAX_TEXT` (``what`` builds it)."""
    if isinstance(length, int) and length > MAX_TEXT:
        raise refuse(f"{what} of {length:,} characters", MAX_TEXT)


# --- operators ----------------------------------------------------------------------

# `%s`, `%-10d`, `%*d`, `%.3f`: the widths and precisions a %-format asks for.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC_NUMBER = re.compile(r"\d+")


def check_percent_format(template: str, args: Any) -> None:
    """Refuse ``template % args`` when its widths or its arguments would make it too long."""
    padding = 0
    for match in _PERCENT_SPEC.finditer(template):
        for part in match.groups():
            if part == "*":
                raise TemplateLimitError("a %-format with '*' widths is not allowed in a template")
            if part:
                padding += int(part) if len(part) < 12 else MAX_TEXT + 1
    if len(template) + padding + text_size(args) > MAX_TEXT:
        raise refuse("a %-format that builds a text of more characters than allowed", MAX_TEXT)


def check_brace_format(template: str) -> None:
    """Refuse a ``str.format`` template with a width that would make it too long."""
    import string

    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format itself reports the malformed template
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        if "{" in spec:
            raise TemplateLimitError("a format width taken from an argument is not allowed in a template")
        for number in _BRACE_SPEC_NUMBER.findall(spec):
            check_length(int(number) if len(number) < 12 else MAX_TEXT + 1, "a format width")


def is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_power(base: Any, exponent: Any) -> None:
    """Refuse an integer power with more than :data:`MAX_INT_BITS` bits."""
    if is_int(base) and is_int(exponent) and exponent > 0 and abs(base) > 1:
        bits = exponent * math.log2(abs(base))
        if bits > MAX_INT_BITS:
            raise refuse(f"the template computes a number of about {int(bits):,} bits", MAX_INT_BITS)


def check_product(left: Any, right: Any) -> None:
    """Refuse ``left * right`` that repeats a text or list too often, or grows a huge number."""
    for seq, times in ((left, right), (right, left)):
        if not is_int(times) or times <= 0:
            continue
        if isinstance(seq, (str, bytes)) and len(seq) * times > MAX_TEXT:
            raise refuse(f"the template repeats a text to {len(seq) * times:,} characters", MAX_TEXT)
        if isinstance(seq, (list, tuple)) and len(seq) * times > MAX_ITEMS:
            raise refuse(f"the template repeats a list to {len(seq) * times:,} items", MAX_ITEMS)
    if is_int(left) and is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise refuse("the template multiplies numbers into one of too many bits", MAX_INT_BITS)


def check_sum(left: Any, right: Any) -> None:
    """Refuse ``left + right`` of two texts or lists past the limits."""
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        if len(left) + len(right) > MAX_TEXT:
            raise refuse("the template joins texts past the length allowed", MAX_TEXT)
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        if len(left) + len(right) > MAX_ITEMS:
            raise refuse("the template joins lists past the size allowed", MAX_ITEMS)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """The check of one intercepted operator (``**``, ``*``, ``+``, ``%``)."""
    spend()
    if operator == "**":
        check_power(left, right)
    elif operator == "*":
        check_product(left, right)
    elif operator == "+":
        check_sum(left, right)
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right)


def bounded_concat(parts: Iterable[Any]) -> str:
    """The ``~`` operator: the texts of ``parts`` joined, refused past :data:`MAX_TEXT`."""
    parts = tuple(parts)
    size = 0
    for part in parts:
        size += len(part) if isinstance(part, str) else text_size(part)
        if size > MAX_TEXT:
            raise refuse("the template joins texts past the length allowed", MAX_TEXT)
    return "".join(map(str, parts))


def bounded_output(chunks: Iterable[str]) -> str:
    """The output of a template (or of a macro or block in it), refused past :data:`MAX_TEXT`."""
    kept: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_TEXT:
            raise refuse("the template writes more characters than allowed", MAX_TEXT)
        kept.append(chunk)
    return "".join(kept)


# --- calls of methods ---------------------------------------------------------------

_PADDING_METHODS = ("center", "ljust", "rjust", "zfill")


def check_method_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call of a str/bytes/int method that would build too much; the args to use."""
    owner = getattr(func, "__self__", None)
    name = getattr(func, "__name__", "")
    if isinstance(owner, (str, bytes)):
        if name in _PADDING_METHODS and args:
            check_length(args[0], f"'{name}' pads to a text")
        elif name == "expandtabs":
            size = kwargs.get("tabsize", args[0] if args else 8)
            if is_int(size):
                check_length(len(owner) * max(size, 1), "'expandtabs' makes a text")
        elif name == "join" and args:
            items = list(args[0])  # an iterator is read once, here, and handed on as a list
            check_text(items, "'join' builds a text")
            check_length(len(owner) * len(items), "'join' builds a text")
            return (items, *args[1:])
        elif name == "replace" and len(args) >= 2:
            check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif is_int(owner) and name == "to_bytes":
        length = kwargs.get("length", args[0] if args else 1)
        check_length(length, "'to_bytes' builds bytes")
    return args


def check_replace(text: Any, old: Any, new: Any, count: Any) -> None:
    """Refuse ``text.replace(old, new, count)`` that would build a text past :data:`MAX_TEXT`."""
    if not isinstance(text, (str, bytes)) or not isinstance(new, type(text)) or not isinstance(old, type(text)):
        return
    hits = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if is_int(count) and count >= 0:
        hits = min(hits, count)
    check_length(len(text) + hits * max(len(new) - len(old), 0), "'replace' builds a text")
