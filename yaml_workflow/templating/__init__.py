"""Templating: one sandboxed Jinja2 environment and the rules for rendering values."""

from .engine import (
    Namespace,
    check_syntax,
    is_template,
    iter_template_strings,
    render_string,
    render_text,
    render_value,
    truthy,
)

__all__ = [
    "Namespace",
    "check_syntax",
    "is_template",
    "iter_template_strings",
    "render_string",
    "render_text",
    "render_value",
    "truthy",
]
