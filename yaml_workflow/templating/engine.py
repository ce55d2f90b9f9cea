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

from collections.abc import Mapping
from typing import Any

from .markup import Namespace, is_template, simple_paths

__all__ = ["Namespace", "is_template", "simple_paths"]


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
