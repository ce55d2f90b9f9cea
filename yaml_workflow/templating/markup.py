"""What templates are made of, without Jinja2: markup detection and named namespaces.

Kept apart from the renderer so that both the cheap path (:mod:`.engine`, no Jinja2
import) and the Jinja2 side (:mod:`.sandbox`) can use it.
"""

from __future__ import annotations

import re
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
