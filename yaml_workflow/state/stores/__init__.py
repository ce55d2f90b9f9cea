"""The Store implementations, and :func:`open_store`, which picks one by URL."""

from __future__ import annotations

from urllib.parse import urlparse

from ...exceptions import UsageError
from ..store import Store


def open_store(url: str | None = None, *, root: str | None = None) -> Store:
    """The store named by ``url`` (default: YAML_WORKFLOW_STATE_URL, else the JSON files under ``root``)."""
    from ...settings import get_settings

    url = url or get_settings().state_url or "file://"
    scheme = urlparse(url).scheme
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore(url)
    if scheme == "file":
        from .json_file import JsonFileStore

        return JsonFileStore(url, root=root)
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisStore

        return RedisStore(url)
    raise UsageError(
        f"unknown state URL '{url}'",
        hint="use memory://, file://[DIR], redis://HOST:PORT/DB or rediss://...",
    )
