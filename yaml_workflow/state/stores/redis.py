"""``redis://`` / ``rediss://``: runs as Redis hashes, the fleet's source of truth.

The key layout and the translation of transitions into commands are in
:mod:`.redis_layout`.  Here: the connection (password, ACL user and TLS options come in
the URL, as ``redis.Redis.from_url`` reads them; an unreachable server is
:class:`StoreUnavailable`, exit code 3, within about five seconds), one MULTI/EXEC round
trip per transition, and leases (``SET NX PX`` to take a free one, Lua compare-and-set
to take a stale one, renew or release).  ``$YAML_WORKFLOW_FINISHED_TTL`` (seconds or 7d-style ages; unset:
keep) lets the keys of a finished run expire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlparse, urlunparse

from ...exceptions import RunNotFound, StateError, StoreUnavailable, UsageError
from ...settings import get_settings
from ..document import CANCELLED, COMPLETED, FINISHED, SKIPPED, new_document
from ..lease import Lease, lease_is_live
from ..store import Store
from .redis_layout import STEPS_DONE, RunKeys, decode, dumps, queue_document, queue_event

try:
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - the fleet extra is not installed
    redis = None  # type: ignore[assignment]

T = TypeVar("T")
LEASE_GRACE = 86400.0  # seconds an expired lease stays readable (lease_holder shows it)

_LEASE_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_LEASE_RENEW = """
local held = redis.call('GET', KEYS[1])
if (not held) or cjson.decode(held)['token'] == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_LEASE_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def finished_ttl() -> float | None:
    """``$YAML_WORKFLOW_FINISHED_TTL`` in seconds (unset or empty: keep finished runs)."""
    return get_settings().finished_ttl


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlparse(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunparse(parts._replace(netloc=f"{user}{host}"))


class RedisStore(Store):
    """Runs in Redis hashes; every transition is one MULTI/EXEC round trip."""

    def __init__(self, url: str, *, prefix: str | None = None) -> None:
        if redis is None:
            raise UsageError("a redis:// state URL needs the redis package",
                             hint="pip install 'yaml-workflow[fleet]'")
        self.url = url
        self.prefix = prefix or get_settings().key_prefix
        try:
            # Give up within ~5 s: three connection attempts of 1.5 s at most.
            self._r = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=1.5, socket_timeout=30,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            )
        except ValueError as err:
            raise UsageError(f"bad state URL '{safe_url(url)}': {err}") from None
        self._renew = self._r.register_script(_LEASE_RENEW)
        self._release = self._r.register_script(_LEASE_RELEASE)
        self._swap = self._r.register_script(_LEASE_SWAP)

    def keys(self, run_id: str) -> RunKeys:
        """The key names of a run."""
        return RunKeys(self.prefix, run_id)

    @property
    def index_key(self) -> str:
        """The sorted set of run ids by start time."""
        return f"{self.prefix}:runs"

    def _call(self, action: Callable[[], T]) -> T:
        """Run a Redis call, turning connection trouble into StoreUnavailable."""
        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError) as err:  # AuthenticationError too
            raise StoreUnavailable(
                f"cannot reach the state store at {safe_url(self.url)}: {err}",
                hint="check that Redis is running and YAML_WORKFLOW_STATE_URL points at it",
            ) from None
        except redis.ResponseError as err:
            raise StateError(f"the state store at {safe_url(self.url)} answered: {err}") from None

    def _transaction(self, queue: Callable[[Any], None]) -> list[Any]:
        def run() -> list[Any]:
            pipe = self._r.pipeline(transaction=True)
            queue(pipe)
            return list(pipe.execute())

        return self._call(run)

    # --- runs ------------------------------------------------------------------------

    def create_run(self, header: dict[str, Any]) -> None:
        doc = new_document(header)
        self._transaction(lambda p: queue_document(p, self.keys(doc["workflow_id"]), self.prefix,
                                                    doc, keep_history=False))

    def restore_run(self, doc: dict[str, Any]) -> None:
        """Recreate a whole run from its document in one transaction."""
        self._transaction(lambda p: queue_document(p, self.keys(doc["workflow_id"]), self.prefix,
                                                    doc, keep_history=False))

    def record(self, run_id: str, event: dict[str, Any]) -> None:
        self.record_many(run_id, [event])

    def record_many(self, run_id: str, events: list[dict[str, Any]]) -> None:
        """Record transitions in one MULTI/EXEC round trip."""
        keys = self.keys(run_id)

        def queue(pipe: Any) -> None:
            # Checked inside the transaction: no extra round trip for the common case.
            pipe.exists(keys.run)
            for event in events:
                queue_event(pipe, keys, self.prefix, event)
                if event.get("t") == "status" and event.get("status") not in FINISHED:
                    # A finished run that runs again (resume) must not expire under it.
                    for key in keys.data:
                        pipe.persist(key)

        replies = self._transaction(queue)
        if not replies[0] and not any(e.get("t") == "run" for e in events):
            # The writes just created stray keys of an unknown (or expired) run.
            self._call(lambda: self._r.delete(*keys.data))
            raise RunNotFound(f"run '{run_id}' is not in {safe_url(self.url)} (prefix {self.prefix})")

    def load(self, run_id: str) -> dict[str, Any]:
        keys = self.keys(run_id)

        def queue(pipe: Any) -> None:
            pipe.hgetall(keys.run)
            pipe.hgetall(keys.steps)
            pipe.hgetall(keys.outputs)
            pipe.hgetall(keys.vars)
            pipe.lrange(keys.history, 0, -1)

        run, steps, outputs, variables, history = self._transaction(queue)
        if not run:
            raise RunNotFound(
                f"run '{run_id}' is not in {safe_url(self.url)} (prefix {self.prefix})",
                hint="it may have expired; its workspace's .workflow_metadata.json still holds it",
            )
        return decode(run, steps, outputs, variables, history)

    def exists(self, run_id: str) -> bool:
        return bool(self._call(lambda: self._r.exists(self.keys(run_id).run)))

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        ids = [str(i) for i in self._call(lambda: self._r.zrevrange(self.index_key, 0, -1))]
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), 500):
            rows.extend(self._summaries(ids[start:start + 500]))
            if limit and len(rows) >= limit:
                break
        return rows[:limit] if limit else rows

    def _summaries(self, ids: list[str]) -> Iterable[dict[str, Any]]:
        fields = ("workflow_id", "name", "status", "start_time", "last_updated", "workspace", "current_step")

        def queue(pipe: Any) -> None:
            for run_id in ids:
                keys = self.keys(run_id)
                pipe.hmget(keys.run, fields)
                pipe.eval(STEPS_DONE, 1, keys.steps, dumps(COMPLETED), dumps(SKIPPED))

        replies = self._transaction(queue) if ids else []
        gone = []
        for i, run_id in enumerate(ids):
            values, done = replies[2 * i], replies[2 * i + 1]
            if values[0] is None:
                gone.append(run_id)  # expired by its TTL: drop it from the index too
                continue
            row = dict(zip(fields, values, strict=True))
            row["steps_done"] = int(done)
            yield row
        if gone:
            self._call(lambda: self._r.zrem(self.index_key, *gone))

    def delete_run(self, run_id: str) -> None:
        keys = self.keys(run_id)

        def queue(pipe: Any) -> None:
            pipe.delete(*keys.data, keys.lease)
            pipe.zrem(self.index_key, run_id)

        self._transaction(queue)

    def flush(self, run_id: str) -> None:
        """Nothing is buffered; a completed or cancelled run gets the retention TTL if set.

        Failed runs are kept until cleaned: they are the ones a user resumes.
        """
        ttl = finished_ttl()
        if ttl is None:
            return
        status = self._call(lambda: self._r.hget(self.keys(run_id).run, "status"))
        if status in (COMPLETED, CANCELLED):
            self.expire_finished(run_id, ttl)

    def expire_finished(self, run_id: str, seconds: float | None) -> None:
        """Let every key of the run expire after ``seconds`` (None: keep them for good)."""
        keys = self.keys(run_id)

        def queue(pipe: Any) -> None:
            for key in keys.data:
                if seconds is None:
                    pipe.persist(key)
                else:
                    pipe.pexpire(key, max(1, int(seconds * 1000)))

        self._transaction(queue)

    # --- leases ----------------------------------------------------------------------

    def _lease_args(self, lease: Lease) -> tuple[str, int]:
        # The key outlives the lease so that lease_holder() can still name an expired holder.
        ttl_ms = int((lease.expires_at - time.time() + LEASE_GRACE) * 1000)
        return json.dumps(lease.to_dict()), max(1, ttl_ms)

    def acquire_lease(self, run_id: str, lease: Lease) -> Lease | None:
        key = self.keys(run_id).lease
        value, ttl_ms = self._lease_args(lease)
        for _ in range(10):  # each pass loses only to a concurrent change; a few suffice
            if self._call(lambda: self._r.set(key, value, nx=True, px=ttl_ms)):
                return None
            raw = self._call(lambda: self._r.get(key))
            if raw is None:
                continue  # it expired between our two calls
            holder = Lease.from_dict(json.loads(raw))
            if holder.token != lease.token and lease_is_live(holder):
                return holder
            # Expired, ours, or a dead process on this host: take it if nobody changed it.
            if self._call(lambda: self._swap(keys=[key], args=[raw, value, ttl_ms])):  # noqa: B023
                return None
        raise StateError(f"could not take the lease of run '{run_id}': it keeps changing hands")

    def renew_lease(self, run_id: str, lease: Lease) -> bool:
        value, ttl_ms = self._lease_args(lease)
        key = self.keys(run_id).lease
        return bool(self._call(lambda: self._renew(keys=[key], args=[lease.token, value, ttl_ms])))

    def release_lease(self, run_id: str, token: str) -> None:
        key = self.keys(run_id).lease
        self._call(lambda: self._release(keys=[key], args=[token]))

    def lease_holder(self, run_id: str) -> Lease | None:
        raw = self._call(lambda: self._r.get(self.keys(run_id).lease))
        return Lease.from_dict(json.loads(raw)) if raw else None

    def close(self) -> None:
        self._r.close()
