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

from redis.exceptions import NoScriptError

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


# How many times a call loads its script again when the server says it lacks it.
_RELOADS = 5


class _Script:
    """A registered script whose call survives servers that keep losing it.

    redis-py loads a script once when the server answers NOSCRIPT, then calls again; but
    a Redis restarted between that load and the call (the client reconnects and retries
    on its own) answers NOSCRIPT a second time, which redis-py lets through.  A script
    that answered NOSCRIPT did not run, so loading it again and calling again is safe.
    """

    def __init__(self, client: Any, text: str) -> None:
        self._script = client.register_script(text)

    @property
    def sha(self) -> str:
        """The SHA1 the script is called by."""
        return str(self._script.sha)

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        for _ in range(_RELOADS - 1):
            try:
                return self._script(keys=keys, args=args, client=client)
            except NoScriptError:
                continue
        return self._script(keys=keys, args=args, client=client)


class Scripts:
    """The scripts registered on one client (``register_script`` keeps the SHA)."""

    def __init__(self, client: Any) -> None:
        self._scripts = {name: _Script(client, source(name)) for name in NAMES}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_scripts"][name]
        except KeyError:
            raise AttributeError(name) from None
