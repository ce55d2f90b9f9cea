"""The fleet's own Redis primitives: claims, join counters, dispatch markers, events.

The run's *state* (step records, outputs, run status) lives in the Store; this module
holds what only the fleet needs to run steps exactly once on at-least-once Celery:

``<p>:run:<id>:fleet`` (hash)   ``status``, ``remaining``, and per step ``done:S``,
                                ``join:S``, ``next:S``, ``skip:S``, ``sent:S``,
                                ``attempt:S``, ``not_before:S``, ``started:S``, ``fanout:S``
``<p>:run:<id>:spec``  (string) the compiled run (workflow, plan, args, env...)
``<p>:run:<id>:ns``    (hash)   step -> its ``steps.X`` namespace entry (JSON)
``<p>:run:<id>:claim:S``        the live claim of a running step (token, TTL)
``<p>:run:<id>:events`` (stream) one entry per finished step and one at the end
``<p>:fleet:vt``       (hash)   worker hostname -> its visibility timeout

Every decision that must happen once (a step counted done, a join firing) is made
inside one Lua script, so two deliveries of one message cannot both win.
"""

from __future__ import annotations

import json
import os
import threading
import time
from functools import lru_cache
from typing import Any

import redis

from ...settings import get_settings

EVENTS_MAXLEN = 100_000
FINISHED_TTL = 7 * 86400  # fleet keys of a finished run: --wait and status need them a while

# Run status as a step sees it: the store's (cancel is recorded there) wins over ours;
# 'gone' when Redis has neither (flushed, restarted empty): the step does nothing and
# `submit --resume` rebuilds the run from its JSON mirror.
_STATUS = """
local st = redis.call('HGET', KEYS[2], 'status')
if st ~= 'cancelled' then st = redis.call('HGET', KEYS[1], 'status') or st or 'gone' end
"""

# KEYS: fleet, run hash, claim, ns | ARGV: step, token, ttl_ms, ns fields...
_BEGIN = _STATUS + """
local step = ARGV[1]
if st ~= 'running' then return {st} end
local done = redis.call('HGET', KEYS[1], 'done:' .. step) or ''
local got = redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3])
if not got then return {st, done, 0, redis.call('PTTL', KEYS[3])} end
local f = redis.call('HMGET', KEYS[1], 'attempt:' .. step, 'not_before:' .. step,
                     'started:' .. step, 'fanout:' .. step, 'gen')
local attempt = f[1] or '1'
-- The message arrived: a replay of its sender's dispatch need not send it again.
redis.call('HSET', KEYS[1], 'sent:' .. step, '1')
if done == '' then redis.call('HSET', KEYS[1], 'started:' .. step, attempt) end
local ns = {}
if ARGV[4] == '*' then ns = redis.call('HGETALL', KEYS[4])
elseif #ARGV > 3 then ns = redis.call('HMGET', KEYS[4], unpack(ARGV, 4)) end
return {st, done, 1, attempt, f[2] or '', f[3] or '', f[4] or '', ns, f[5] or ''}
"""

# KEYS: fleet, run hash, ns, events, claim | ARGV: step, ns entry, successors [[s, need]],
# event, forced skips {s: reason}, '1' to count the step out of `remaining` (a failure
# that stops the run is not: the run must not look finished to others), claim token.
# The claim goes back here: once the step is done a second delivery only replays the
# dispatch, and a successor sent twice finds itself claimed or done.
_COMMIT = _STATUS + """
local step = ARGV[1]
if ARGV[7] ~= '' and redis.call('GET', KEYS[5]) == ARGV[7] then redis.call('DEL', KEYS[5]) end
if redis.call('HSETNX', KEYS[1], 'done:' .. step, '1') == 0 then
  return {0, redis.call('HGET', KEYS[1], 'next:' .. step) or '[]',
          tonumber(redis.call('HGET', KEYS[1], 'remaining') or '0'), st}
end
redis.call('HSET', KEYS[3], step, ARGV[2])
for name, reason in pairs(cjson.decode(ARGV[5])) do
  redis.call('HSETNX', KEYS[1], 'skip:' .. name, reason)
end
local ready = {}
for _, pair in ipairs(cjson.decode(ARGV[3])) do
  if redis.call('HINCRBY', KEYS[1], 'join:' .. pair[1], 1) == tonumber(pair[2]) then
    local reason = redis.call('HGET', KEYS[1], 'skip:' .. pair[1]) or ''
    table.insert(ready, cjson.encode({pair[1], reason}))
  end
end
local nxt = '[' .. table.concat(ready, ',') .. ']'
redis.call('HSET', KEYS[1], 'next:' .. step, nxt)
local remaining = tonumber(redis.call('HGET', KEYS[1], 'remaining') or '0')
if ARGV[6] == '1' then remaining = redis.call('HINCRBY', KEYS[1], 'remaining', -1) end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'e', ARGV[4])
end
return {1, nxt, remaining, st}
"""

# KEYS: claim | ARGV: token, ttl_ms
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: batch hash | ARGV: chunk index, nchunks, items {index: json}
_CHUNK_DONE = """
if redis.call('HSETNX', KEYS[1], 'chunkdone:' .. ARGV[1], '1') == 0 then return -1 end
for i, v in pairs(cjson.decode(ARGV[3])) do redis.call('HSET', KEYS[1], 'item:' .. i, v) end
return redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
"""


def key_prefix() -> str:
    """The key prefix of every Redis key of this project."""
    return get_settings().key_prefix


def claim_ttl() -> float:
    """Seconds a running step's claim lives without renewal."""
    return get_settings().claim_ttl


@lru_cache(maxsize=8)
def client_for(url: str) -> redis.Redis:
    """One connection pool per URL per process (forked children make their own)."""
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def decode_text(value: Any) -> str:
    """A Redis reply as text ('' for None)."""
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))


class FleetState:
    """The fleet keys of one Redis database (one per URL and prefix)."""

    def __init__(self, url: str, prefix: str | None = None) -> None:
        self.url = url
        self.prefix = prefix or key_prefix()
        self.r = client_for(url)
        self._begin = self.r.register_script(_BEGIN)
        self._commit = self.r.register_script(_COMMIT)
        self._renew = self.r.register_script(_RENEW)
        self._release = self.r.register_script(_RELEASE)
        self._chunk = self.r.register_script(_CHUNK_DONE)
        self._held: dict[str, str] = {}  # claims this process holds: key -> token

    # --- keys --------------------------------------------------------------------------

    def k(self, run_id: str, suffix: str = "") -> str:
        """``<prefix>:run:<id>[:suffix]``"""
        return f"{self.prefix}:run:{run_id}" + (f":{suffix}" if suffix else "")

    def claim_key(self, run_id: str, step: str) -> str:
        """The claim of one step (or ``step#chunk``)."""
        return self.k(run_id, f"claim:{step}")

    # --- run ---------------------------------------------------------------------------

    def create(self, run_id: str, spec: dict[str, Any], steps: int) -> None:
        """Store the compiled run and its counters (one round trip)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.k(run_id, "spec"), json.dumps(spec, separators=(",", ":")))
        pipe.hset(self.k(run_id, "fleet"), mapping={"status": "running", "remaining": steps})
        pipe.execute()

    def spec(self, run_id: str) -> dict[str, Any] | None:
        """The compiled run, or None when Redis does not have it."""
        raw = self.r.get(self.k(run_id, "spec"))
        return json.loads(raw) if raw else None

    def status(self, run_id: str) -> str:
        """The run's status as steps see it ('' when unknown)."""
        pipe = self.r.pipeline()
        pipe.hget(self.k(run_id), "status")
        pipe.hget(self.k(run_id, "fleet"), "status")
        run, fleet = pipe.execute()
        if decode_text(run) == "cancelled":
            return "cancelled"
        return decode_text(fleet) or decode_text(run)

    def set_status(self, run_id: str, status: str, event: dict[str, Any] | None = None) -> None:
        """Set the fleet status; with ``event``, tell followers (stream) and let keys expire."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.k(run_id, "fleet"), "status", status)
        if event is not None:
            pipe.xadd(self.k(run_id, "events"), {"e": json.dumps(event)}, maxlen=EVENTS_MAXLEN)
            for suffix in ("fleet", "spec", "ns", "events"):
                pipe.expire(self.k(run_id, suffix), FINISHED_TTL)
        pipe.execute()

    def field(self, run_id: str, name: str) -> str:
        """One field of the fleet hash ('' when unset)."""
        return decode_text(self.r.hget(self.k(run_id, "fleet"), name))

    def set_fields(self, run_id: str, **fields: Any) -> None:
        """Set fields of the fleet hash."""
        self.r.hset(self.k(run_id, "fleet"), mapping={k: str(v) for k, v in fields.items()})

    def event(self, run_id: str, event: dict[str, Any]) -> None:
        """Append one entry to the run's event stream."""
        self.r.xadd(self.k(run_id, "events"), {"e": json.dumps(event)}, maxlen=EVENTS_MAXLEN)

    # --- one step ----------------------------------------------------------------------

    def begin(self, run_id: str, step: str, token: str, ns_fields: list[str]) -> dict[str, Any]:
        """Status, done marker and claim of a step, with its attempt and inputs, at once."""
        keys = [self.k(run_id, "fleet"), self.k(run_id), self.claim_key(run_id, step), self.k(run_id, "ns")]
        out = self._begin(keys=keys, args=[step, token, int(claim_ttl() * 1000), *ns_fields])
        info: dict[str, Any] = {"status": decode_text(out[0])}
        if len(out) == 1:
            return info
        info["done"] = decode_text(out[1]) == "1"
        info["claimed"] = int(out[2]) == 1
        if not info["claimed"]:
            info["claim_ttl"] = max(0.0, int(out[3]) / 1000.0)
            return info
        info["attempt"] = int(decode_text(out[3]) or 1)
        info["not_before"] = float(decode_text(out[4]) or 0)
        info["started"] = decode_text(out[5])
        info["fanout"] = decode_text(out[6])
        if ns_fields[:1] == ["*"]:
            flat = out[7]
            info["ns"] = {decode_text(flat[i]): json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}
        else:
            info["ns"] = {n: json.loads(v) for n, v in zip(ns_fields, out[7], strict=False) if v}
        info["gen"] = decode_text(out[8])  # which resume of the run: a cached spec of another is stale
        info["claim_key"] = self.claim_key(run_id, step)
        self._held[info["claim_key"]] = token
        _RENEWER.add(self, info["claim_key"], token)
        return info

    def commit(self, run_id: str, step: str, ns_entry: dict[str, Any],
               successors: list[tuple[str, int]], event: dict[str, Any] | None,
               forced_skips: dict[str, str] | None = None, *,
               records: list[dict[str, Any]] = (), count: bool = True) -> dict[str, Any]:  # type: ignore[assignment]
        """Mark a step done and count it into its successors' joins, exactly once, in one
        transaction with ``records`` (the step's transitions held for the store); the
        step's claim, if this process holds it, goes back in the same script."""
        claim = self.claim_key(run_id, step)
        token = self._release_local(claim)
        keys = [self.k(run_id, "fleet"), self.k(run_id), self.k(run_id, "ns"), self.k(run_id, "events"), claim]
        args = [step, json.dumps(ns_entry), json.dumps([list(p) for p in successors]),
                json.dumps(event) if event else "", json.dumps(forced_skips or {}),
                "1" if count else "0", token or ""]
        if records:
            from ...state.stores.redis_layout import RunKeys, queue_event

            pipe = self.r.pipeline(transaction=True)
            run_keys = RunKeys(self.prefix, run_id)
            for record in records:
                queue_event(pipe, run_keys, self.prefix, record)
            # By body, not SHA: redis-py would ask SCRIPT EXISTS first (one more round trip),
            # and a flushed script cache cannot fail half a transaction.
            pipe.eval(_COMMIT, len(keys), *keys, *args)
            new, nxt, remaining, status = pipe.execute()[-1]
        else:
            new, nxt, remaining, status = self._commit(keys=keys, args=args)
        if decode_text(status) == "gone":  # Redis lost the run: take back what this commit created
            self.r.delete(*(self.k(run_id, x) for x in ("", "steps", "outputs", "vars", "history",
                                                         "fleet", "ns", "events")))
            return {"new": False, "ready": [], "remaining": 0, "status": "gone"}
        ready = [(name, reason) for name, reason in json.loads(decode_text(nxt))]
        return {"new": int(new) == 1, "ready": ready, "remaining": int(remaining), "status": decode_text(status)}

    def sent(self, run_id: str, names: list[str]) -> list[bool]:
        """Which successors already have their dispatch marker."""
        if not names:
            return []
        values = self.r.hmget(self.k(run_id, "fleet"), [f"sent:{n}" for n in names])
        return [bool(v) for v in values]

    def _release_local(self, claim_key: str) -> str | None:
        """Stop renewing a claim; its token if this process held it."""
        _RENEWER.remove(claim_key)
        return self._held.pop(claim_key, None)

    def release(self, claim_key: str) -> None:
        """Give a claim back, if this process still holds it (one round trip)."""
        token = self._release_local(claim_key)
        if token is not None:
            self._release(keys=[claim_key], args=[token])

    def renew(self, claim_key: str, token: str) -> bool:
        """Extend a claim we hold."""
        return bool(self._renew(keys=[claim_key], args=[token, int(claim_ttl() * 1000)]))

    def break_claim(self, claim_key: str) -> None:
        """Drop a claim whose holder is known dead (hard time limit killed it)."""
        self._release_local(claim_key)
        self.r.delete(claim_key)

    # --- batch -------------------------------------------------------------------------

    def batch_key(self, run_id: str, step: str, attempt: int) -> str:
        """The hash of one fan-out of a batch step."""
        return self.k(run_id, f"batch:{step}:{attempt}")

    def chunk_done(self, key: str, chunk: int, nchunks: int, items: dict[int, Any]) -> int:
        """Store a chunk's items; the count of chunks done, or -1 if this chunk was counted."""
        encoded = {str(i): json.dumps(v) for i, v in items.items()}
        return int(self._chunk(keys=[key], args=[chunk, nchunks, json.dumps(encoded)]))

    # --- workers -----------------------------------------------------------------------

    def publish_visibility(self, hostname: str, seconds: float) -> None:
        """A worker says how long an unacked message stays invisible on its broker."""
        self.r.hset(f"{self.prefix}:fleet:vt", hostname, str(seconds))

    def forget_worker(self, hostname: str) -> None:
        """A worker stopping cleanly takes its entry back."""
        self.r.hdel(f"{self.prefix}:fleet:vt", hostname)

    def visibility_timeout(self) -> float | None:
        """The smallest visibility timeout workers published, or None."""
        values = [float(decode_text(v)) for v in self.r.hvals(f"{self.prefix}:fleet:vt")]
        return min(values) if values else None

    def delete_run(self, run_id: str) -> None:
        """Forget the fleet keys of a run (``clean`` calls this with the store's delete)."""
        keys = list(self.r.scan_iter(match=self.k(run_id, "*"), count=500))
        keys = [k for k in keys if not decode_text(k).endswith((":steps", ":outputs", ":vars"))]
        if keys:
            self.r.delete(*keys)


class _Renewer:
    """One thread per process that keeps this process's claims alive."""

    def __init__(self) -> None:
        self._claims: dict[str, tuple[FleetState, str]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, fs: FleetState, key: str, token: str) -> None:
        with self._lock:
            self._claims[key] = (fs, token)
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="ywf-claims", daemon=True)
                self._thread.start()

    def remove(self, key: str) -> None:
        with self._lock:
            self._claims.pop(key, None)

    def _loop(self) -> None:
        while True:
            time.sleep(claim_ttl() / 3)
            with self._lock:
                claims = list(self._claims.items())
            for key, (fs, token) in claims:
                try:
                    fs.renew(key, token)
                except redis.RedisError:
                    continue  # a missed renewal is retried; the TTL is three beats long


_RENEWER = _Renewer()
