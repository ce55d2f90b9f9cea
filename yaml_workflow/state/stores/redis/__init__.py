"""Redis: the store of runs (:class:`RedisStore`) and the fleet's own keys (:class:`FleetState`).

They belong together: a step's records and its done marker are written by one script.
:mod:`.keys` names every key, :mod:`.scripts` loads every Lua script (``lua/``), and no
module outside this package builds a key or calls the raw client.
"""

from __future__ import annotations

from .fleet import Begun, Committed, FleetState, Holder
from .idempotency import Binding, IdempotencyKeys
from .schedules import Schedules
from .store import RedisStore

__all__ = ["Begun", "Binding", "Committed", "FleetState", "Holder", "IdempotencyKeys", "RedisStore",
           "Schedules"]
