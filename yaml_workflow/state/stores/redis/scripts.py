"""The Lua scripts of the Redis store and the fleet, side by side in ``lua/``.

Each script is read once per process and loaded into Redis once by its SHA: calls are
``EVALSHA``, and a server that does not have the script (restarted, flushed) makes
redis-py load it and call again — safe because a script that did not run changed
nothing.  Scripts whose name starts with ``_`` are preludes: shared Lua put in front of
the scripts that use them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

# Which preludes each script starts with.
_PRELUDES = {
    "apply": ("_ops",),
    "begin": ("_status",),
    "commit": ("_status", "_ops"),
}
NAMES = ("apply", "begin", "commit", "renew", "retake", "release", "chunk_done", "run_counts",
         "lease_swap", "lease_renew", "lease_release", "bind", "compare_delete",
         "beat_lock", "beat_advance")


@cache
def source(name: str) -> str:
    """The text of a script, its preludes first."""
    folder = resources.files(__package__).joinpath("lua")
    parts = [folder.joinpath(f"{part}.lua").read_text() for part in (*_PRELUDES.get(name, ()), name)]
    return "\n".join(parts)


class Scripts:
    """The scripts registered on one client (``register_script`` keeps the SHA)."""

    def __init__(self, client: Any) -> None:
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_scripts"][name]
        except KeyError:
            raise AttributeError(name) from None
