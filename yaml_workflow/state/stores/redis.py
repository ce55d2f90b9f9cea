"""``redis://`` / ``rediss://``: runs as Redis hashes, the fleet's source of truth.

Layout (``P`` = key prefix, ``$YAML_WORKFLOW_KEY_PREFIX``, default ``ywf``)::

    P:runs                  sorted set   run id, scored by start time (``runs``, ``clean``)
    P:run:<id>              hash  run fields: name, status, current_step, failed_step,
                                  start_time, last_updated, params, workflow, plan, ...
                                  plus ``fingerprint:<step>``, ``retry:<step>``, ``flag:<name>``
    P:run:<id>:steps        hash  ``<step>.<field>`` -> JSON (the step's status record)
    P:run:<id>:outputs      hash  step -> result JSON
    P:run:<id>:vars         hash  variable -> JSON
    P:run:<id>:history      list  history entries (JSON)
    P:run:<id>:lease        string  the lease (JSON), kept past expiry so holders show

Plain-text run fields (ids, names, statuses, times, paths) are stored as they are so
``redis-cli`` shows them; every other value is JSON.

One transition is one round trip: :meth:`RedisStore.record` translates the event into
HSET/HDEL/RPUSH commands (mirroring :func:`..document.apply` field by field) and sends
them in one MULTI/EXEC pipeline.  The one thing ``apply`` decides from what is already
stored is whether a ``running`` step starts a fresh record (its last record is done) or
adds to it.  Step records are therefore stored field by field: merging is a plain HSET,
and the fresh-record case is a five-line Lua script sent with ``EVAL`` inside the same
transaction that clears the step's fields when its stored status is done.  The script
never decodes JSON (Redis's cjson would round floats to 14 digits and turn ``[]`` into
``{}``), and it is sent by body rather than by SHA so that a restarted or flushed script
cache can never make half a transaction fail with NOSCRIPT.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlparse, urlunparse

from ...exceptions import RunNotFound, StateError, StoreUnavailable, UsageError
from ..document import (
    _STEP_FIELDS,
    COMPLETED,
    FINISHED,
    RETRYING,
    RUNNING,
    SKIPPED,
    new_document,
    now_iso,
)
from ..store import Lease, Store, lease_is_live

try:
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - the fleet extra is not installed
    redis = None  # type: ignore[assignment]

T = TypeVar("T")

# Run-hash fields stored as plain text; every other field is JSON.
_TEXT_FIELDS = frozenset(
    ("workflow_id", "name", "start_time", "last_updated", "status", "workflow_file",
     "workspace", "current_step")
)
# Top-level document keys every document has (None when unset, so stored as absent).
_BASE_FIELDS = (
    "schema_version", "workflow_id", "name", "start_time", "last_updated", "status",
    "workflow_file", "workspace", "run_number", "params", "workflow", "plan",
)
# Document keys that live in their own hash or under prefixed run fields.
_STRUCTURED = frozenset(("execution_state", "variables", "fingerprints", "history", "flags"))
_MAPS = {"fingerprint": "fingerprints", "flag": "flags", "retry": "retry_state"}
_RECORD_FIELDS = tuple(f for f in _STEP_FIELDS if f != "result")  # results go to :outputs
_STALE_ON_SUCCESS = ("error", "error_type", "error_message")
_DONE_JSON = tuple(json.dumps(s) for s in (COMPLETED, SKIPPED, "failed"))
LEASE_GRACE = 86400.0  # seconds an expired lease stays readable (lease_holder shows it)

# A ``running`` step after a done one starts a fresh record (document._apply_step).
_FRESH_RECORD = """
local status = redis.call('HGET', KEYS[1], ARGV[1] .. '.status')
if status == ARGV[2] or status == ARGV[3] or status == ARGV[4] then
  local fields = {}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[1] .. '.' .. ARGV[i] end
  redis.call('HDEL', KEYS[1], unpack(fields))
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 0
"""
# steps_done of a run for list views, counted server-side.
_STEPS_DONE = """
local flat = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #flat, 2 do
  if string.sub(flat[i], -7) == '.status' and (flat[i + 1] == ARGV[1] or flat[i + 1] == ARGV[2]) then
    n = n + 1
  end
end
return n
"""
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


def _dumps(value: Any) -> str:
    # default=str as in the mirror, so both hold the same text for odd values.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def finished_ttl() -> float | None:
    """``$YAML_WORKFLOW_FINISHED_TTL`` in seconds (unset or empty: keep finished runs)."""
    raw = os.environ.get("YAML_WORKFLOW_FINISHED_TTL", "").strip()
    return float(raw) if raw else None


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


def _start_score(start_time: Any) -> float:
    if isinstance(start_time, str):
        for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
            try:
                return datetime.strptime(start_time, fmt).replace(tzinfo=timezone.utc).timestamp()
            except ValueError:
                continue
    return time.time()


class _Keys:
    """The key names of one run."""

    def __init__(self, prefix: str, run_id: str) -> None:
        self.run = f"{prefix}:run:{run_id}"
        self.steps = f"{self.run}:steps"
        self.outputs = f"{self.run}:outputs"
        self.vars = f"{self.run}:vars"
        self.history = f"{self.run}:history"
        self.lease = f"{self.run}:lease"

    @property
    def data(self) -> tuple[str, ...]:
        """Every key holding the run's state (not its lease)."""
        return (self.run, self.steps, self.outputs, self.vars, self.history)


# --- document <-> hashes -------------------------------------------------------------


def _run_field(key: str, value: Any) -> str:
    return value if key in _TEXT_FIELDS and isinstance(value, str) else _dumps(value)


def _encode(doc: dict[str, Any]) -> dict[str, Any]:
    """The hash contents (and history list) holding ``doc``."""
    state = doc.get("execution_state") or {}
    run: dict[str, str] = {}
    for key, value in doc.items():
        if key in _STRUCTURED or (value is None and key in _BASE_FIELDS):
            continue
        run[key] = _run_field(key, value)
    for key in ("current_step", "failed_step"):
        if state.get(key) is not None:
            run[key] = _run_field(key, state[key])
    for prefix, name in _MAPS.items():
        source = state.get(name) if name == "retry_state" else doc.get(name)
        for item, value in (source or {}).items():
            run[f"{prefix}:{item}"] = _dumps(value)
    steps: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for step, record in (state.get("step_outputs") or {}).items():
        for field, value in record.items():
            if field == "result":
                outputs[step] = _dumps(value)
            else:
                steps[f"{step}.{field}"] = _dumps(value)
    return {
        "run": run, "steps": steps, "outputs": outputs,
        "vars": {str(k): _dumps(v) for k, v in (doc.get("variables") or {}).items()},
        "history": [_dumps(entry) for entry in doc.get("history") or []],
    }


def _decode(run: dict[str, str], steps: dict[str, str], outputs: dict[str, str],
            variables: dict[str, str], history: list[str]) -> dict[str, Any]:
    """The document held by a run's hashes (the inverse of :func:`_encode`)."""
    doc: dict[str, Any] = {key: None for key in _BASE_FIELDS}
    state: dict[str, Any] = {"current_step": None, "failed_step": None, "step_outputs": {}, "retry_state": {}}
    maps: dict[str, dict[str, Any]] = {"fingerprints": {}, "flags": {}, "retry_state": state["retry_state"]}
    for field, raw in run.items():
        prefix, colon, item = field.partition(":")
        if colon and prefix in _MAPS:
            maps[_MAPS[prefix]][item] = json.loads(raw)
            continue
        value = raw if field in _TEXT_FIELDS else json.loads(raw)
        if field in ("current_step", "failed_step"):
            state[field] = value
        else:
            doc[field] = value
    records = state["step_outputs"]
    for field, raw in steps.items():
        step, _, name = field.rpartition(".")
        records.setdefault(step, {})[name] = json.loads(raw)
    for step, raw in outputs.items():
        records.setdefault(step, {})["result"] = json.loads(raw)
    state["status"] = doc["status"]
    doc["execution_state"] = state
    doc["variables"] = {k: json.loads(v) for k, v in variables.items()}
    doc["fingerprints"] = maps["fingerprints"]
    doc["flags"] = maps["flags"]
    doc["history"] = [json.loads(entry) for entry in history]
    return doc


# --- transitions -> commands ---------------------------------------------------------


def _queue_document(pipe: Any, keys: _Keys, prefix: str, doc: dict[str, Any], *, keep_history: bool) -> None:
    """Replace the run's hashes with ``doc`` (history kept when a ``run`` event restarts it)."""
    encoded = _encode(doc)
    drop = [k for k in keys.data if k != keys.history or not keep_history]
    pipe.delete(*drop)
    for key, name in ((keys.run, "run"), (keys.steps, "steps"), (keys.outputs, "outputs"), (keys.vars, "vars")):
        if encoded[name]:
            pipe.hset(key, mapping=encoded[name])
    if encoded["history"] and not keep_history:
        pipe.rpush(keys.history, *encoded["history"])
    pipe.zadd(f"{prefix}:runs", {doc["workflow_id"]: _start_score(doc.get("start_time"))})


def _queue_step(pipe: Any, keys: _Keys, event: dict[str, Any]) -> None:
    name, status = event["step"], event["status"]
    if status == RUNNING:
        pipe.eval(_FRESH_RECORD, 2, keys.steps, keys.outputs, name, *_DONE_JSON, *_RECORD_FIELDS)
    fields = {f"{name}.{k}": _dumps(event[k]) for k in _RECORD_FIELDS if k in event}
    if fields:
        pipe.hset(keys.steps, mapping=fields)
    if "result" in event:
        pipe.hset(keys.outputs, name, _dumps(event["result"]))
    if status in (COMPLETED, SKIPPED):
        pipe.hdel(keys.steps, *(f"{name}.{k}" for k in _STALE_ON_SUCCESS))
        pipe.hdel(keys.run, f"retry:{name}")
    if status == RUNNING:
        pipe.hset(keys.run, "current_step", name)
    if status == RETRYING:
        pipe.hset(keys.run, f"retry:{name}", _dumps({
            "attempt": event.get("attempt", 1), "max_attempts": event.get("max_attempts"),
            "next_delay": event.get("next_delay"), "last_error": event.get("error"),
        }))
    if event.get("fingerprint") is not None:
        pipe.hset(keys.run, f"fingerprint:{name}", _dumps(event["fingerprint"]))


def _set_or_clear(pipe: Any, key: str, field: str, value: Any) -> None:
    if value is None:
        pipe.hdel(key, field)
    else:
        pipe.hset(key, field, _run_field(field, value))


def _queue_event(pipe: Any, keys: _Keys, prefix: str, event: dict[str, Any]) -> None:
    """Queue the commands that do to the hashes what ``apply`` does to the document."""
    kind = event.get("t")
    if kind == "run":
        _queue_document(pipe, keys, prefix, new_document(event), keep_history=True)
        return  # apply() leaves last_updated at the header's start time
    if kind == "step":
        _queue_step(pipe, keys, event)
    elif kind == "status":
        pipe.hset(keys.run, "status", event["status"])
        for field in ("failed_step", "current_step"):
            if field in event:
                _set_or_clear(pipe, keys.run, field, event[field])
    elif kind == "var":
        pipe.hset(keys.vars, str(event["key"]), _dumps(event["value"]))
    elif kind == "history":
        pipe.rpush(keys.history, _dumps(event["entry"]))
    elif kind == "progress":
        pipe.hsetnx(keys.steps, f"{event['step']}.status", _dumps(RUNNING))
        pipe.hset(keys.steps, f"{event['step']}.progress", _dumps(event["progress"]))
    elif kind == "flag":
        pipe.hset(keys.run, f"flag:{event['flag']}", _dumps(event.get("value", True)))
    elif kind == "reset":
        for name in event.get("steps", []):
            pipe.hdel(keys.steps, *(f"{name}.{k}" for k in _RECORD_FIELDS))
            pipe.hdel(keys.outputs, name)
            pipe.hdel(keys.run, f"retry:{name}")
        pipe.hdel(keys.run, "failed_step")
    elif kind == "params":
        pipe.hset(keys.run, "params", _dumps(event["params"]))
    if event.get("at") is not None:
        pipe.hset(keys.run, "last_updated", now_iso(event["at"]))


class RedisStore(Store):
    """Runs in Redis hashes; every transition is one MULTI/EXEC round trip."""

    def __init__(self, url: str, *, prefix: str | None = None) -> None:
        if redis is None:
            raise UsageError("a redis:// state URL needs the redis package",
                             hint="pip install 'yaml-workflow[fleet]'")
        self.url = url
        self.prefix = prefix or os.environ.get("YAML_WORKFLOW_KEY_PREFIX") or "ywf"
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

    def keys(self, run_id: str) -> _Keys:
        """The key names of a run."""
        return _Keys(self.prefix, run_id)

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
            return pipe.execute()  # type: ignore[no-any-return]

        return self._call(run)

    # --- runs ------------------------------------------------------------------------

    def create_run(self, header: dict[str, Any]) -> None:
        doc = new_document(header)
        self._transaction(lambda p: _queue_document(p, self.keys(doc["workflow_id"]), self.prefix,
                                                    doc, keep_history=False))

    def restore_run(self, doc: dict[str, Any]) -> None:
        """Recreate a whole run from its document in one transaction."""
        self._transaction(lambda p: _queue_document(p, self.keys(doc["workflow_id"]), self.prefix,
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
                _queue_event(pipe, keys, self.prefix, event)

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
        return _decode(run, steps, outputs, variables, history)

    def exists(self, run_id: str) -> bool:
        return bool(self._call(lambda: self._r.exists(self.keys(run_id).run)))

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        ids: list[str] = self._call(lambda: self._r.zrevrange(self.index_key, 0, -1))
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
                pipe.eval(_STEPS_DONE, 1, keys.steps, _dumps(COMPLETED), _dumps(SKIPPED))

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
        """Nothing is buffered; a finished run gets ``$YAML_WORKFLOW_FINISHED_TTL`` if set."""
        ttl = finished_ttl()
        if ttl is None:
            return
        status = self._call(lambda: self._r.hget(self.keys(run_id).run, "status"))
        if status in FINISHED:
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
