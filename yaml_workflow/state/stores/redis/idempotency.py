"""Idempotency keys: which run a key (``submit --idempotency-key K``, a schedule's tick) made.

A key is bound once, atomically (the ``bind`` script: set if absent, else return what is
there), so of any number of submits racing with one key exactly one binds it and creates
the run; the others read the binding and return its run.  A binding is ``pending`` while
its run is being created and ``created`` after; a pending binding whose creator died is
taken over by compare-and-set (the value read must still be there), never blindly.
Every binding expires after ``YAML_WORKFLOW_IDEMPOTENCY_TTL``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from ....settings import get_settings
from .connection import client_for, decode_text
from .keys import Keyspace
from .scripts import Scripts

PENDING, CREATED = "pending", "created"


@dataclass(frozen=True)
class Binding:
    """What an idempotency key is bound to: a run, and what it was submitted with."""

    run_id: str
    workflow: str  # the workflow's name
    workflow_digest: str  # of the workflow's definition (file location aside)
    params_digest: str  # of the resolved params and the run options
    state: str = PENDING  # pending (being created) | created
    pending_until: float = 0.0  # epoch seconds: a pending binding older than this may be taken over
    workspace: str = ""

    def encode(self) -> str:
        """The stored JSON."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: Any) -> Binding | None:
        """From the stored JSON (None when it is not a binding)."""
        try:
            data = json.loads(decode_text(raw))
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError):
            return None

    def created(self, workspace: str) -> Binding:
        """This binding once its run exists."""
        return replace(self, state=CREATED, workspace=workspace)


class IdempotencyKeys:
    """The idempotency bindings of one Redis database and key prefix."""

    def __init__(self, url: str, prefix: str | None = None) -> None:
        self.keys = Keyspace(prefix or get_settings().key_prefix)
        self._r = client_for(url)
        self._scripts = Scripts(self._r)

    @staticmethod
    def ttl_ms() -> int:
        """How long a binding lives (YAML_WORKFLOW_IDEMPOTENCY_TTL)."""
        return max(1, int(get_settings().idempotency_ttl * 1000))

    def bind(self, key: str, binding: Binding) -> tuple[bool, Binding | None]:
        """Bind ``key`` to ``binding`` unless it is bound: (True, None) when bound now,
        else (False, the binding found; None when what is stored is not one)."""
        found = self._scripts.bind(keys=[self.keys.idempotency(key)], args=[binding.encode(), self.ttl_ms()])
        if found is None:
            return True, None
        return False, Binding.decode(found)

    def get(self, key: str) -> Binding | None:
        """The binding of ``key``, or None."""
        raw = self._r.get(self.keys.idempotency(key))
        return Binding.decode(raw) if raw is not None else None

    def replace(self, key: str, old: Binding, new: Binding) -> bool:
        """Swap ``old`` for ``new`` if ``old`` is still what is stored (the lease's
        compare-and-set script serves any value); False when it changed meanwhile."""
        return bool(self._scripts.lease_swap(keys=[self.keys.idempotency(key)],
                                             args=[old.encode(), new.encode(), self.ttl_ms()]))

    def release(self, key: str, binding: Binding) -> None:
        """Unbind ``key`` if it still holds ``binding`` (its run could not be created)."""
        self._scripts.compare_delete(keys=[self.keys.idempotency(key)], args=[binding.encode()])

    def forget(self, key: str) -> None:
        """Drop a binding whatever it holds (tests, and `schedule remove`)."""
        self._r.delete(self.keys.idempotency(key))
