"""Redis keys as JSON and back: the compatibility fixture's Redis half.

:func:`dump_keys` writes every key matching a pattern with its type, value and time to
live, in a form that is plain JSON (text values are kept as text; anything that is not
UTF-8 is base64 with a marker); :func:`restore_keys` puts them into another server
(a fresh ``redis-server`` started by a test), stream entries with their original ids.
It speaks raw Redis on purpose: it must read keys written by any version of the code.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import redis

FORMAT = 1


def _text(value: bytes) -> Any:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode("ascii")}


def _bytes(value: Any) -> bytes:
    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    return str(value).encode("utf-8")


def dump_keys(client: redis.Redis, pattern: str) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    """Every key matching ``pattern``: ``{key, type, ttl_ms, value}``, sorted by key."""
    out: list[dict[str, Any]] = []
    for raw_key in sorted(client.scan_iter(match=pattern, count=1000)):
        kind = client.type(raw_key).decode()
        value: Any
        if kind == "string":
            value = _text(client.get(raw_key))
        elif kind == "hash":
            value = {_text(k): _text(v) for k, v in sorted(client.hgetall(raw_key).items())}
        elif kind == "list":
            value = [_text(v) for v in client.lrange(raw_key, 0, -1)]
        elif kind == "set":
            value = sorted(_text(v) for v in client.smembers(raw_key))
        elif kind == "zset":
            value = [[_text(m), s] for m, s in client.zrange(raw_key, 0, -1, withscores=True)]
        elif kind == "stream":
            value = [[_text(i), {_text(k): _text(v) for k, v in fields.items()}]
                     for i, fields in client.xrange(raw_key)]
        else:
            raise ValueError(f"key {raw_key!r} has type {kind}, which the dump does not know")
        ttl = client.pttl(raw_key)
        out.append({"key": _text(raw_key), "type": kind, "ttl_ms": ttl if ttl > 0 else None,
                    "value": value})
    return out


def restore_keys(client: redis.Redis, entries: list[dict[str, Any]]) -> None:  # type: ignore[type-arg]
    """Write dumped keys into ``client``'s database (each key replaced), with their TTLs."""
    pipe = client.pipeline(transaction=True)
    for entry in entries:
        key, kind, value = _bytes(entry["key"]), entry["type"], entry["value"]
        pipe.delete(key)
        if kind == "string":
            pipe.set(key, _bytes(value))
        elif kind == "hash":
            pipe.hset(key, mapping={_bytes(k): _bytes(v) for k, v in value.items()})
        elif kind == "list":
            pipe.rpush(key, *[_bytes(v) for v in value])
        elif kind == "set":
            pipe.sadd(key, *[_bytes(v) for v in value])
        elif kind == "zset":
            pipe.zadd(key, {_bytes(m): float(s) for m, s in value})
        elif kind == "stream":
            for entry_id, fields in value:
                pipe.xadd(key, {_bytes(k): _bytes(v) for k, v in fields.items()}, id=entry_id)
        else:
            raise ValueError(f"key {entry['key']!r}: unknown type {kind}")
        if entry.get("ttl_ms"):
            pipe.pexpire(key, int(entry["ttl_ms"]))
    pipe.execute()


def write_dump(path: Path, entries: list[dict[str, Any]], **about: Any) -> None:
    """Save a dump as JSON (``about``: where it came from)."""
    path.write_text(json.dumps({"format": FORMAT, **about, "keys": entries}, indent=1,
                               ensure_ascii=False) + "\n")


def read_dump(path: Path) -> dict[str, Any]:
    """A saved dump: ``{format, ..., keys}``."""
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: dump format {data.get('format')!r}, this loader reads {FORMAT}")
    return data
