"""Schedules in Redis: their definitions and state, the beat lock, and what each tick became.

``schedule add`` stores a schedule's definition (the compiled workflow included, so a
beat and the workers need no file) and its state; the active beat holds
:attr:`Keyspace.beat_lock` (a value naming it, with a TTL it renews) and moves each
schedule's *cursor* (the last tick decided) with a script that checks it still holds the
lock; a worker firing a tick records what it became (a run, a skip and why, a failure)
in the schedule's log, under the schedule's fire lock, so two fires of one schedule never
decide at once (``max_active_runs`` counts exactly).
"""

from __future__ import annotations

import json
from typing import Any

from redis.lock import Lock

from ....settings import get_settings
from .connection import client_for, decode_text
from .keys import Keyspace
from .scripts import Scripts

LOG_LENGTH = 1000  # entries kept per schedule log
FIRE_LOCK_TTL = 120.0  # seconds: a fire's submit takes well under this


class Schedules:
    """The schedules of one Redis database and key prefix."""

    def __init__(self, url: str, prefix: str | None = None) -> None:
        self.url = url
        self.keys = Keyspace(prefix or get_settings().key_prefix)
        self._r = client_for(url)
        self._scripts = Scripts(self._r)

    # --- definitions ---------------------------------------------------------------------

    def put(self, name: str, definition: dict[str, Any], *, paused: bool, cursor: tuple[str, float] | None) -> None:
        """Store (or replace) a schedule; ``cursor``: the last tick already decided (None:
        keep the stored one)."""
        keys = self.keys.schedule(name)
        state: dict[str | bytes, bytes | float | int | str] = {"paused": "1" if paused else "0"}
        if cursor is not None:
            state.update(cursor=cursor[0], cursor_at=repr(cursor[1]))
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self.keys.schedules, name, json.dumps(definition, separators=(",", ":")))
        pipe.hset(keys.state, mapping=state)
        pipe.execute()

    def definition(self, name: str) -> dict[str, Any] | None:
        """A schedule's definition, or None."""
        raw = self._r.hget(self.keys.schedules, name)
        return json.loads(raw) if raw else None

    def definitions(self) -> dict[str, dict[str, Any]]:
        """Every schedule's definition, by name."""
        return {decode_text(k): json.loads(v) for k, v in self._r.hgetall(self.keys.schedules).items()}

    def states(self, names: list[str]) -> dict[str, dict[str, str]]:
        """The state of each named schedule (one round trip)."""
        pipe = self._r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.schedule(name).state)
        return {name: {decode_text(k): decode_text(v) for k, v in found.items()}
                for name, found in zip(names, pipe.execute(), strict=True)}

    def set_paused(self, name: str, paused: bool, cursor: tuple[str, float] | None = None) -> bool:
        """Pause or resume a schedule (a resume moves the cursor: ticks while paused never
        run); False when there is no such schedule."""
        if not self._r.hexists(self.keys.schedules, name):
            return False
        self.put(name, self.definition(name) or {}, paused=paused, cursor=cursor)
        return True

    def remove(self, name: str) -> bool:
        """Forget a schedule, its state and its log; False when there was none."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hdel(self.keys.schedules, name)
        pipe.delete(*self.keys.schedule(name).all)
        return bool(pipe.execute()[0])

    # --- the beat ------------------------------------------------------------------------

    def hold_lock(self, value: str, ttl: float) -> bool:
        """Take the beat lock if free, renew it if ours (``value`` names us): True if ours now."""
        return bool(self._scripts.beat_lock(keys=[self.keys.beat_lock], args=[value, max(1, int(ttl * 1000))]))

    def release_lock(self, value: str) -> None:
        """Give the beat lock back if we hold it (a stopping beat: the other takes over at once)."""
        self._scripts.compare_delete(keys=[self.keys.beat_lock], args=[value])

    def lock_holder(self) -> dict[str, Any] | None:
        """Who holds the beat lock now (host, pid...), or None."""
        raw = self._r.get(self.keys.beat_lock)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def advance(self, name: str, lock_value: str, tick: str, at: float) -> bool:
        """Move the cursor to ``tick`` if we still hold the lock (never backwards)."""
        keys = self.keys.schedule(name)
        return bool(self._scripts.beat_advance(keys=[self.keys.beat_lock, keys.state],
                                               args=[lock_value, tick, repr(at)]))

    # --- firing --------------------------------------------------------------------------

    def fire_lock(self, name: str) -> Lock:
        """The lock one fire of the schedule holds while it decides and submits."""
        return self._r.lock(self.keys.schedule(name).fire_lock, timeout=FIRE_LOCK_TTL,
                            blocking_timeout=FIRE_LOCK_TTL)

    def record(self, name: str, entry: dict[str, Any], at: float) -> None:
        """Log what a tick became (and keep it as the schedule's last outcome)."""
        keys = self.keys.schedule(name)
        text = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        pipe = self._r.pipeline(transaction=True)
        pipe.zadd(keys.log, {text: at})
        pipe.zremrangebyrank(keys.log, 0, -LOG_LENGTH - 1)
        if entry.get("outcome") != "missed":
            pipe.hset(keys.state, mapping={"last": text})
        pipe.execute()

    def outcome(self, name: str, at: float) -> dict[str, Any] | None:
        """What the tick at epoch ``at`` became (a run or a skip), or None when undecided."""
        for raw in self._r.zrangebyscore(self.keys.schedule(name).log, at, at):
            entry = json.loads(raw)
            if entry.get("outcome") != "missed":
                return dict(entry)
        return None

    def recent(self, name: str, count: int = 20) -> list[dict[str, Any]]:
        """The latest log entries, newest first."""
        return [json.loads(raw) for raw in self._r.zrevrange(self.keys.schedule(name).log, 0, count - 1)]

    def log_between(self, name: str, low: float, high: float) -> list[dict[str, Any]]:
        """Log entries of ticks in [low, high], oldest first."""
        return [json.loads(raw) for raw in self._r.zrangebyscore(self.keys.schedule(name).log, low, high)]

    def add_active(self, name: str, run_id: str) -> None:
        """A run of the schedule started."""
        self._r.sadd(self.keys.schedule(name).active, run_id)

    def running(self, name: str) -> list[str]:
        """Runs of the schedule still running (finished or expired ones are dropped)."""
        active = sorted(decode_text(i) for i in self._r.smembers(self.keys.schedule(name).active))
        if not active:
            return []
        pipe = self._r.pipeline(transaction=False)
        for run_id in active:
            pipe.hget(self.keys.run(run_id).run, "status")
        statuses = [decode_text(s) for s in pipe.execute()]
        done = [run_id for run_id, status in zip(active, statuses, strict=True) if status != "running"]
        if done:
            self._r.srem(self.keys.schedule(name).active, *done)
        return [run_id for run_id, status in zip(active, statuses, strict=True) if status == "running"]

    def run_status(self, run_id: str) -> str | None:
        """A run's status as the store has it (None: not there)."""
        return decode_text(self._r.hget(self.keys.run(run_id).run, "status")) or None

