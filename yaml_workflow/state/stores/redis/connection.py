"""Connections to Redis: one pool per URL per process, and the checks before a run starts."""

from __future__ import annotations

import os
from typing import Any

import redis

from ....settings import mask_url

_CLIENTS: dict[tuple[str, int], redis.Redis] = {}  # type: ignore[type-arg]


def client_for(url: str) -> redis.Redis:  # type: ignore[type-arg]
    """The fleet's client of ``url`` in this process (forked children make their own)."""
    key = (url, os.getpid())
    client = _CLIENTS.get(key)
    if client is None:
        client = _CLIENTS[key] = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    return client


def decode_text(value: Any) -> str:
    """A Redis reply as text ('' for None)."""
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))


def ping(url: str, timeout: float = 2.0) -> None:
    """Reach ``url`` within ``timeout`` seconds, or raise (redis.RedisError, OSError, ValueError)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def describe(url: str) -> str:
    """``url`` for a message: its password masked."""
    return mask_url(url)
