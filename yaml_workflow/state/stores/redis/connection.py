"""Connections to Redis: one pool per URL per process, and the checks before a run starts."""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ....settings import mask_url

_CLIENTS: dict[tuple[str, int], redis.Redis] = {}  # type: ignore[type-arg]
_STORE_CLIENTS: dict[tuple[str, int], redis.Redis] = {}  # type: ignore[type-arg]
# Every connection redis-py makes would otherwise ask importlib.metadata for its own
# version (a scan of site-packages, milliseconds each): tell it once.
try:
    from redis.driver_info import DriverInfo

    _LIB: dict[str, Any] = {"driver_info": DriverInfo(name="redis-py", lib_version=redis.__version__)}
except ImportError:  # redis-py before 7: the same through lib_name/lib_version
    _LIB = {"lib_name": "redis-py", "lib_version": redis.__version__}
# URLs that answered a ping lately, by process: a process that submits many runs (the
# dashboard, an agent, a benchmark) checks reachability once per this many seconds.
_PINGED: dict[tuple[str, int], float] = {}
PING_FRESH = 5.0


def client_for(url: str) -> redis.Redis:  # type: ignore[type-arg]
    """The fleet's client of ``url`` in this process (forked children make their own)."""
    key = (url, os.getpid())
    client = _CLIENTS.get(key)
    if client is None:
        client = _CLIENTS[key] = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30,
                                                      **_LIB)
    return client


def store_client_for(url: str) -> redis.Redis:  # type: ignore[type-arg]
    """The state store's client of ``url`` in this process: text replies, and a command
    gives up within ~5 s (three connection attempts of 1.5 s at most)."""
    key = (url, os.getpid())
    client = _STORE_CLIENTS.get(key)
    if client is None:
        client = _STORE_CLIENTS[key] = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=1.5, socket_timeout=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), **_LIB)
    return client


def decode_text(value: Any) -> str:
    """A Redis reply as text ('' for None)."""
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))


def ping(url: str, timeout: float = 2.0) -> None:
    """Reach ``url`` within ``timeout`` seconds, or raise (redis.RedisError, OSError, ValueError).

    A URL this process reached less than :data:`PING_FRESH` seconds ago counts as reached."""
    key = (url, os.getpid())
    if time.monotonic() - _PINGED.get(key, -PING_FRESH) < PING_FRESH:
        return
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, **_LIB)
    try:
        client.ping()
    finally:
        client.close()
    _PINGED[key] = time.monotonic()


def describe(url: str) -> str:
    """``url`` for a message: its password masked."""
    return mask_url(url)
