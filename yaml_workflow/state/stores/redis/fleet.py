"""The fleet's own Redis state: claims, join counters, dispatch markers, fan-outs, events.

The run's *state* (step records, outputs, run status) is the Store's (:mod:`.store`);
this class holds what only the fleet needs to run steps exactly once on at-least-once
Celery.  Every decision that must happen once (a step counted done, a join firing) is
made inside one Lua script, so two deliveries of one message cannot both win; the
step's held records are written by the same script (``commit``), so recording a step and
counting it done are one atomic write.

Claims are tokens with a TTL that their holder renews.  They are not ``redis.lock.Lock``:
taking one is part of the ``begin`` script (status, done marker, attempt and the records
the step reads, in one round trip), a claim records its holder for ``status`` (which shows
a step whose holder stopped renewing as stalled), and giving it back is part of ``commit``.
The resume lock, a plain lock, is a ``redis.lock.Lock``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis

from ....settings import get_settings
from .connection import client_for, decode_text
from .keys import Keyspace, RunKeys
from .layout import event_ops
from .scripts import Scripts

EVENTS_MAXLEN = 100_000
_INSTANCES: weakref.WeakSet[FleetState] = weakref.WeakSet()
FINISHED_TTL = 7 * 86400  # fleet keys of a finished run: --wait and status need them a while


@dataclass(frozen=True)
class Begun:
    """What the start of a delivery found (see :meth:`FleetState.begin`)."""

    status: str  # the run's status: running, cancelled, failed, completed, or 'gone'
    done: bool = False  # the step's end is recorded already
    claimed: bool = False  # this delivery holds the step's claim now
    claim_wait: float = 0.0  # when not claimed: seconds left on the other holder's claim
    attempt: int = 1
    not_before: float = 0.0  # epoch seconds before which the attempt may not start
    started: str = ""  # the attempt that began before ('' for none): a redelivery
    fanout: str = ""  # the fan-out a batch step stored before ('' for none)
    ns: dict[str, Any] = field(default_factory=dict)  # the `steps.X` records it reads
    gen: str = ""  # which resume of the run: a cached spec of another is stale
    claim_key: str = ""


@dataclass(frozen=True)
class Committed:
    """What a commit did (see :meth:`FleetState.commit`)."""

    new: bool  # this commit recorded the step (False: an earlier delivery had)
    ready: list[tuple[str, str]]  # successors made ready: (step, skip reason or '')
    remaining: int  # steps of the run not yet done
    status: str  # the run's status


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a step's claim, and when it last renewed it."""

    worker: str
    pid: int
    renewed: float  # epoch seconds

    @classmethod
    def parse(cls, raw: Any) -> Holder | None:
        """From the fleet hash's ``claim:<step>`` field."""
        try:
            data = json.loads(decode_text(raw))
            return cls(str(data["worker"]), int(data["pid"]), float(data["renewed"]))
        except (ValueError, KeyError, TypeError):
            return None


def claim_ttl() -> float:
    """Seconds a holder may go without renewing its claim before it stops its step."""
    return get_settings().claim_ttl


def claim_lifetime_ms() -> int:
    """How long a claim key lives without renewal: a third of the TTL past the moment its
    holder stops the step, so nobody else starts it while the first copy may still run."""
    return int(claim_ttl() * 4 / 3 * 1000)


@dataclass(frozen=True)
class HeldClaim:
    """A claim this process took, as its keeper needs it."""

    key: str
    token: str
    run_id: str
    step: str  # the step, or ``step#fanout#chunk``
    attempt: int


class ClaimKeeper:
    """Keeps this process's claims alive: a thread that renews them (see also the worker's
    guard, :mod:`yaml_workflow.executors.celery.guard`, which takes this job over in a
    worker and stops steps whose claims it cannot keep)."""

    def __init__(self) -> None:
        self._claims: dict[str, tuple[FleetState, HeldClaim]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, fs: FleetState, claim: HeldClaim) -> None:
        """Start keeping ``claim``."""
        with self._lock:
            self._claims[claim.key] = (fs, claim)
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="ywf-claims", daemon=True)
                self._thread.start()

    def drop(self, key: str) -> None:
        """Stop keeping a claim (it was given back)."""
        with self._lock:
            self._claims.pop(key, None)

    def _loop(self) -> None:
        while True:
            time.sleep(claim_ttl() / 3)
            with self._lock:
                claims = list(self._claims.values())
            for fs, claim in claims:
                try:
                    fs.renew_many([claim])
                except redis.RedisError:
                    continue  # a missed renewal is retried; the TTL is three beats long


class FleetState:
    """The fleet keys of one Redis database (one per URL and prefix)."""

    def __init__(self, url: str, prefix: str | None = None, *, client: Any = None) -> None:
        # ``client``: a connection to use instead of the pool of ``url`` (a test's fakeredis).
        self.url = url
        self.keys = Keyspace(prefix or get_settings().key_prefix)
        self.prefix = self.keys.prefix
        self._r = client if client is not None else client_for(url)
        self._scripts = Scripts(self._r)
        self._held: dict[str, HeldClaim] = {}
        self.worker = ""  # the Celery node name claims are recorded under (a worker sets it)
        self.keeper: ClaimKeeper = _KEEPER["default"]
        _INSTANCES.add(self)

    def run_keys(self, run_id: str) -> RunKeys:
        """The keys of a run."""
        return self.keys.run(run_id)

    # --- run ---------------------------------------------------------------------------

    def create(self, run_id: str, spec: dict[str, Any], steps: int) -> None:
        """Store the compiled run and its counters (one round trip)."""
        keys = self.run_keys(run_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.set(keys.spec, json.dumps(spec, separators=(",", ":")))
        pipe.hset(keys.fleet, mapping={"status": "running", "remaining": steps})
        pipe.sadd(self.keys.active_runs, run_id)
        pipe.execute()

    def spec(self, run_id: str) -> dict[str, Any] | None:
        """The compiled run, or None when Redis does not have it."""
        raw = self._r.get(self.run_keys(run_id).spec)
        return json.loads(raw) if raw else None

    def status(self, run_id: str) -> str:
        """The run's status as steps see it ('' when unknown)."""
        keys = self.run_keys(run_id)
        pipe = self._r.pipeline()
        pipe.hget(keys.run, "status")
        pipe.hget(keys.fleet, "status")
        run, fleet = pipe.execute()
        if decode_text(run) == "cancelled":
            return "cancelled"
        return decode_text(fleet) or decode_text(run)

    def set_status(self, run_id: str, status: str, event: dict[str, Any] | None = None) -> None:
        """Set the fleet status; with ``event``, tell followers (stream) and let keys expire."""
        keys = self.run_keys(run_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(keys.fleet, "status", status)
        if event is not None:
            pipe.xadd(keys.events, {"e": json.dumps(event)}, maxlen=EVENTS_MAXLEN)
            for key in keys.fleet_data:
                pipe.expire(key, FINISHED_TTL)
            pipe.srem(self.keys.active_runs, run_id)
        pipe.execute()

    def field(self, run_id: str, name: str) -> str:
        """One field of the fleet hash ('' when unset)."""
        return decode_text(self._r.hget(self.run_keys(run_id).fleet, name))

    def set_fields(self, run_id: str, **fields: Any) -> None:
        """Set fields of the fleet hash."""
        self._r.hset(self.run_keys(run_id).fleet, mapping={k: str(v) for k, v in fields.items()})

    def is_done(self, run_id: str, step: str) -> bool:
        """True once the step's end is recorded (its done marker)."""
        return bool(self.field(run_id, f"done:{step}"))

    # --- events ------------------------------------------------------------------------

    def event(self, run_id: str, event: dict[str, Any]) -> None:
        """Append one entry to the run's event stream."""
        self._r.xadd(self.run_keys(run_id).events, {"e": json.dumps(event)}, maxlen=EVENTS_MAXLEN)

    def read_events(self, run_id: str, after: str, block_ms: int) -> list[tuple[str, dict[str, Any]]]:
        """Stream entries after id ``after`` (waiting up to ``block_ms`` for the first; 0:
        not at all, where Redis's own BLOCK 0 would wait for ever)."""
        replies = self._r.xread({self.run_keys(run_id).events: after}, count=500,
                                block=block_ms if block_ms > 0 else None)
        return [(decode_text(entry_id), json.loads(fields[b"e"]))
                for _, entries in replies or [] for entry_id, fields in entries]

    def last_event_id(self, run_id: str) -> str:
        """The id of the stream's last entry ('0-0' when empty): a follower starts after it."""
        last = self._r.xrevrange(self.run_keys(run_id).events, count=1)
        return decode_text(last[0][0]) if last else "0-0"

    # --- one step ----------------------------------------------------------------------

    def _holder(self, worker: str | None = None) -> str:
        from ....state.document import HOST

        return json.dumps({"worker": worker or self.worker or get_settings().worker_name or HOST,
                           "pid": os.getpid(), "renewed": time.time()})

    def begin(self, run_id: str, step: str, token: str, ns_fields: list[str]) -> Begun:
        """Status, done marker and claim of a step, with its attempt and inputs, at once."""
        keys = self.run_keys(run_id)
        claim = keys.claim(step)
        out = self._scripts.begin(keys=[keys.fleet, keys.run, claim, keys.ns],
                                  args=[step, token, claim_lifetime_ms(), self._holder(),
                                        int(claim_ttl() + 0.999), *ns_fields])
        status = decode_text(out[0])
        if len(out) == 1:
            return Begun(status)
        done = decode_text(out[1]) == "1"
        if int(out[2]) != 1:
            return Begun(status, done=done, claim_wait=max(0.0, int(out[3]) / 1000.0))
        if ns_fields[:1] == ["*"]:
            flat = out[7]
            ns = {decode_text(flat[i]): json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}
        else:
            ns = {n: json.loads(v) for n, v in zip(ns_fields, out[7], strict=False) if v}
        attempt = int(decode_text(out[3]) or 1)
        held = self._held[claim] = HeldClaim(claim, token, run_id, step, attempt)
        self.keeper.hold(self, held)
        return Begun(status, done=done, claimed=True, attempt=attempt,
                     not_before=float(decode_text(out[4]) or 0), started=decode_text(out[5]),
                     fanout=decode_text(out[6]), ns=ns, gen=decode_text(out[8]), claim_key=claim)

    def commit(self, run_id: str, step: str, ns_entry: dict[str, Any],
               successors: list[tuple[str, int]], event: dict[str, Any] | None,
               forced_skips: dict[str, str] | None = None, *,
               records: list[dict[str, Any]] | None = None, count: bool = True) -> Committed:
        """Record a step's held transitions, mark it done and count it into its successors'
        joins, exactly once, in one script; the step's claim, if held here, goes back too."""
        keys = self.run_keys(run_id)
        claim = keys.claim(step)
        token = self._release_local(claim)
        ops = [op for record in records or [] for op in event_ops(keys, self.keys.runs_index, record)]
        args = [step, json.dumps(ns_entry), json.dumps([list(p) for p in successors]),
                json.dumps(event) if event else "", json.dumps(forced_skips or {}),
                "1" if count else "0", token or "", json.dumps(ops)]
        new, nxt, remaining, status = self._scripts.commit(
            keys=[keys.fleet, keys.run, keys.ns, keys.events, claim], args=args)
        ready = [(name, reason) for name, reason in json.loads(decode_text(nxt))]
        return Committed(int(new) == 1, ready, int(remaining), decode_text(status))

    def sent(self, run_id: str, names: list[str]) -> list[bool]:
        """Which successors already have their dispatch marker."""
        if not names:
            return []
        values = self._r.hmget(self.run_keys(run_id).fleet, [f"sent:{n}" for n in names])
        return [bool(v) for v in values]

    def claim_key(self, run_id: str, step: str) -> str:
        """The claim of one step (or ``step#fanout#chunk``)."""
        return self.run_keys(run_id).claim(step)

    def held(self) -> list[HeldClaim]:
        """The claims this process holds now."""
        return list(self._held.values())

    def _release_local(self, claim_key: str) -> str | None:
        """Stop keeping a claim; its token if this process held it."""
        self.keeper.drop(claim_key)
        held = self._held.pop(claim_key, None)
        return held.token if held else None

    def release(self, claim_key: str) -> None:
        """Give a claim back, if this process still holds it (one round trip)."""
        held = self._held.get(claim_key)
        if self._release_local(claim_key) is not None and held is not None:
            self.release_claim(held)

    def release_claim(self, claim: HeldClaim) -> bool:
        """Give ``claim`` back if its token still holds it (whoever took it)."""
        return bool(self._scripts.release(keys=[claim.key, self.run_keys(claim.run_id).fleet],
                                          args=[claim.token, claim.step]))

    def release_all_now(self) -> None:
        """Give back every claim this process holds, on a connection of its own (the
        pool's may be in the middle of a command: this runs in a signal handler)."""
        if not self._held:
            return
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            release = Scripts(client).release
            for held in list(self._held.values()):
                self.keeper.drop(held.key)
                release(keys=[held.key, self.run_keys(held.run_id).fleet], args=[held.token, held.step])
        finally:
            client.close()

    def renew_many(self, claims: list[HeldClaim], worker: str | None = None) -> list[bool]:
        """Extend claims (one pipelined round trip); for each, False when it was lost."""
        holder = self._holder(worker)
        pipe = self._r.pipeline(transaction=False)
        for claim in claims:
            self._scripts.renew(keys=[claim.key, self.run_keys(claim.run_id).fleet],
                                args=[claim.token, claim_lifetime_ms(), claim.step, holder], client=pipe)
        return [bool(ok) for ok in pipe.execute()] if claims else []

    def retake(self, claim: HeldClaim, worker: str | None = None) -> bool:
        """Take a claim back after Redis was away, unless the step went on without us."""
        return bool(self._scripts.retake(keys=[claim.key, self.run_keys(claim.run_id).fleet],
                                         args=[claim.token, claim_lifetime_ms(), claim.step,
                                               self._holder(worker), str(claim.attempt)]))

    def break_claim(self, run_id: str, step: str) -> None:
        """Drop a claim whose holder is known dead (the hard time limit killed it)."""
        claim = self.claim_key(run_id, step)
        self._release_local(claim)
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(claim)
        pipe.hdel(self.run_keys(run_id).fleet, f"claim:{step}")
        pipe.execute()

    def live_claims(self, run_id: str) -> list[str]:
        """The steps (and chunks) whose claim is held now."""
        keys = self.run_keys(run_id)
        started = [decode_text(k)[8:] for k in self._r.hkeys(keys.fleet) if decode_text(k).startswith("started:")]
        if not started:
            return []
        pipe = self._r.pipeline()
        for name in started:
            pipe.exists(keys.claim(name))
        return [name for name, live in zip(started, pipe.execute(), strict=True) if live]

    def holders(self, run_id: str) -> dict[str, tuple[Holder, bool]]:
        """Each step's claim holder as last recorded, and whether its claim is live now."""
        keys = self.run_keys(run_id)
        recorded = {decode_text(k)[6:]: Holder.parse(v) for k, v in self._r.hgetall(keys.fleet).items()
                    if decode_text(k).startswith("claim:")}
        found = {name: holder for name, holder in recorded.items() if holder is not None}
        if not found:
            return {}
        pipe = self._r.pipeline()
        for name in found:
            pipe.exists(keys.claim(name))
        return {name: (holder, bool(live)) for (name, holder), live in zip(found.items(), pipe.execute(), strict=True)}

    def waiting_retries(self, run_id: str) -> list[str]:
        """Steps waiting for a retry countdown now."""
        now = time.time()
        return [decode_text(k)[11:] for k, v in self._r.hgetall(self.run_keys(run_id).fleet).items()
                if decode_text(k).startswith("not_before:") and float(decode_text(v) or 0) > now]

    # --- batch -------------------------------------------------------------------------

    def batch_key(self, run_id: str, step: str, fanout: int) -> str:
        """The hash of one fan-out of a batch step."""
        return self.run_keys(run_id).batch(step, fanout)

    def store_fanout(self, run_id: str, step: str, fanout: int, plan: dict[str, Any]) -> None:
        """Remember a fan-out (its inputs, start, number of chunks) and that it happened."""
        keys = self.run_keys(run_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(keys.batch(step, fanout), "plan", json.dumps(plan))
        pipe.hset(keys.fleet, f"fanout:{step}", str(fanout))
        pipe.execute()

    def fanout_plan(self, run_id: str, step: str, fanout: int) -> dict[str, Any] | None:
        """What :meth:`store_fanout` stored, or None once it is gone."""
        raw = self._r.hget(self.batch_key(run_id, step, fanout), "plan")
        return json.loads(raw) if raw else None

    def batch_stopped(self, run_id: str, step: str, fanout: int) -> bool:
        """True once the fan-out is bound to fail (later chunks skip their items)."""
        return bool(self._r.hget(self.batch_key(run_id, step, fanout), "stop"))

    def stop_batch(self, run_id: str, step: str, fanout: int) -> None:
        """Mark the fan-out as bound to fail."""
        self._r.hset(self.batch_key(run_id, step, fanout), "stop", "1")

    def chunk_done(self, run_id: str, step: str, fanout: int, chunk: int,
                   items: dict[int, Any]) -> int | None:
        """Store a chunk's item records; the count of chunks done, None if this chunk was counted."""
        encoded = {str(i): json.dumps(v) for i, v in items.items()}
        counted = int(self._scripts.chunk_done(keys=[self.batch_key(run_id, step, fanout)],
                                               args=[chunk, json.dumps(encoded)]))
        return None if counted == -1 else counted

    def chunks_done(self, run_id: str, step: str, fanout: int) -> int:
        """How many chunks of the fan-out were counted."""
        return int(self._r.hget(self.batch_key(run_id, step, fanout), "chunks_done") or 0)

    def batch_items(self, run_id: str, step: str, fanout: int) -> dict[int, dict[str, Any]]:
        """The item records the fan-out's chunks stored, by index."""
        values = self._r.hgetall(self.batch_key(run_id, step, fanout))
        return {int(decode_text(k)[5:]): json.loads(v) for k, v in values.items()
                if decode_text(k).startswith("item:")}

    def count_progress(self, run_id: str, step: str, fanout: int, done: int, failed: int,
                       retries: int, interval: float) -> tuple[int, int, int, bool]:
        """Add a chunk's finished items to the fan-out's counters; the totals, and whether
        this chunk may record progress now (one chunk per interval, whichever worker)."""
        keys = self.run_keys(run_id)
        key = keys.batch(step, fanout)
        pipe = self._r.pipeline(transaction=False)
        pipe.hincrby(key, "p_done", done)
        pipe.hincrby(key, "p_failed", failed)
        pipe.hincrby(key, "p_retries", retries)
        pipe.set(keys.progress_gate(step, fanout), "1", nx=True, px=max(1, int(interval * 1000)))
        total_done, total_failed, total_retries, due = pipe.execute()
        return int(total_done), int(total_failed), int(total_retries), bool(due)

    # --- resume ------------------------------------------------------------------------

    def resume_lock(self, run_id: str, seconds: float) -> Any:
        """The lock one `submit --resume` of a run holds while it rebuilds the run."""
        return self._r.lock(self.run_keys(run_id).resume, timeout=seconds, blocking=False)

    def reset_for_resume(self, run_id: str, spec: dict[str, Any], fields: dict[str, Any],
                         ns: dict[str, str], rerun: list[str]) -> None:
        """Replace the run's fleet bookkeeping with what a resume starts from, in one
        transaction: the spec, the fleet hash, the namespace; fan-outs of steps that run
        again are dropped."""
        keys = self.run_keys(run_id)
        old = {decode_text(k): decode_text(v) for k, v in self._r.hgetall(keys.fleet).items()}
        fanouts = [keys.batch(step, n) for step in rerun
                   for n in range(1, int(old.get(f"fanout:{step}") or 0) + 1)]
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(keys.fleet, keys.ns, *fanouts)
        pipe.set(keys.spec, json.dumps(spec, separators=(",", ":")))
        pipe.hset(keys.fleet, mapping={k: str(v) for k, v in fields.items()})
        if ns:
            pipe.hset(keys.ns, mapping=ns)  # type: ignore[arg-type]
        pipe.persist(keys.events)
        pipe.sadd(self.keys.active_runs, run_id)
        pipe.execute()

    # --- clean -------------------------------------------------------------------------

    def delete_run(self, run_id: str) -> None:
        """Forget the fleet keys of a run (``clean`` calls this with the store's delete)."""
        keys = self.run_keys(run_id)
        found = [k for k in self._r.scan_iter(match=keys.pattern, count=500)
                 if decode_text(k) not in (keys.steps, keys.outputs, keys.vars, keys.history)]
        if found:
            self._r.delete(*found)
        self._r.srem(self.keys.active_runs, run_id)


_KEEPER: dict[str, ClaimKeeper] = {"default": ClaimKeeper()}


def use_keeper(keeper: ClaimKeeper) -> None:
    """Make ``keeper`` keep the claims of this process's FleetStates (a worker's pool
    processes hand them to the worker's guard)."""
    _KEEPER["default"] = keeper
    for fs in list(_INSTANCES):
        fs.keeper = keeper


def report_process(run_id: str, step: str, ref: Any) -> None:
    """A step of this process started a subprocess group (the keeper may stop it)."""
    process = getattr(_KEEPER["default"], "process", None)
    if process is not None:
        process(run_id, step, ref)
