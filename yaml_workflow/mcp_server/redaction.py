"""What the server sends back, made safe to send: secrets masked, sizes bounded.

Every tool result, resource and error text passes through a :class:`Redactor` built
from the secrets the workflow (or run) declares.  Masking comes first, so a cut never
leaves half a secret behind; then long strings are cut and oversized free-form values
(step outputs, state documents) are replaced by a preview, each with a note saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

from ..engine.secrets import Masker
from ..settings import process_environment

# One string value shown at most (characters); a 10 MB step output is cut to this.
STRING_LIMIT = 16_000
# One free-form value (a step's output, a state document) as JSON, at most.
VALUE_LIMIT = 64_000
# The free-form part of one result as JSON, at most (the rest is left out with a note).
RESULT_LIMIT = 256_000

Model = TypeVar("Model", bound=BaseModel)


def cut_note(total: int, shown: int, where: str) -> str:
    """The note that ends a value cut short."""
    return f"[truncated: {total:,} characters, the first {shown:,} shown; {where}]"


def cut(text: str, limit: int, where: str) -> str:
    """``text`` cut so that, with its note, it is at most ``limit`` characters (so cutting
    it again changes nothing)."""
    if len(text) <= limit:
        return text
    shown = max(limit - len(cut_note(len(text), limit, where)) - 1, 0)
    return text[:shown] + "\n" + cut_note(len(text), shown, where)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str))


class Redactor:
    """Masks the given secret values and bounds sizes in what goes back to the client."""

    def __init__(self, secret_values: Iterable[str] = (), *, where: str = "the whole value is in the run's workspace"):
        self.masker = Masker(secret_values)
        self.where = where

    @classmethod
    def for_secrets(cls, names: Iterable[str], *, where: str | None = None) -> Redactor:
        """A redactor masking the values the named secrets have in this process's environment."""
        environ = process_environment()
        values = [environ[name] for name in names if environ.get(name)]
        return cls(values) if where is None else cls(values, where=where)

    # --- text -------------------------------------------------------------------------

    def text(self, text: str, limit: int = STRING_LIMIT) -> str:
        """``text`` masked, and cut to ``limit`` characters with a note."""
        text = self.masker.text(text) if self.masker else text
        return cut(text, limit, self.where)

    # --- values -----------------------------------------------------------------------

    def _strings(self, value: Any, limit: int) -> Any:
        """Every string inside ``value`` cut to ``limit`` (types kept: only strings change)."""
        if isinstance(value, str):
            return self.text(value, limit) if len(value) > limit else value
        if isinstance(value, dict):
            return {k: self._strings(v, limit) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._strings(v, limit) for v in value]
        return value

    def value(self, value: Any, limit: int = VALUE_LIMIT) -> Any:
        """A free-form value masked and bounded: long strings cut; if it is still over
        ``limit`` characters of JSON, a preview of its JSON (a string) with a note."""
        value = self.masker.value(value) if self.masker else value
        value = self._strings(value, STRING_LIMIT)
        if _json_size(value) <= limit:
            return value
        return cut(json.dumps(value, ensure_ascii=False, default=str), limit, self.where)

    def mapping(self, values: dict[str, Any], limit: int = RESULT_LIMIT,
                value_limit: int = VALUE_LIMIT) -> dict[str, Any]:
        """Each entry bounded as :meth:`value`; entries past ``limit`` in all become notes."""
        shown: dict[str, Any] = {}
        spent = 0
        for key, item in values.items():
            bounded = self.value(item, value_limit)
            if spent + _json_size(bounded) > limit:
                bounded = f"[left out: the result is over {limit:,} characters; {self.where}]"
            spent += _json_size(bounded)
            shown[key] = bounded
        return shown

    def model(self, model: Model, *, free: Iterable[str] = ()) -> Model:
        """A copy of ``model`` masked, every string cut, and each ``free`` (free-form) field
        bounded as :meth:`mapping` or :meth:`value`; a dotted name reaches into a nested
        model (``result.outputs``)."""
        data = model.model_dump(mode="json")
        data = self.masker.value(data) if self.masker else data
        for name in free:
            *parents, leaf = name.split(".")
            holder: Any = data
            for part in parents:
                holder = holder.get(part) if isinstance(holder, dict) else None
            if not isinstance(holder, dict) or holder.get(leaf) is None:
                continue
            item = holder[leaf]
            holder[leaf] = self.mapping(item) if isinstance(item, dict) else self.value(item)
        data = self._strings(data, STRING_LIMIT)
        return type(model).model_validate(data)
