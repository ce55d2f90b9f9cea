"""What the stall sweep reads: the fleet's active runs and the broker's lists.

A message can be lost between the broker and a worker: kombu's Redis transport takes a
message off its list (BRPOP) and only then records it as unacknowledged, so a Redis
that dies in between, or a reply that never reaches the worker, leaves the message
nowhere.  Nothing would ever deliver that step again.  The sweep
(:mod:`yaml_workflow.executors.celery.sweep`) finds such runs from the facts read here:
a `running` run with no live claim, no retry countdown ahead, no change for a while,
and no message of its own in the broker's lists or unacknowledged hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .connection import client_for, decode_text
from .fleet import FleetState
from .keys import Keyspace

# kombu's Redis transport: the hash of delivered, unacknowledged messages, and the
# separator of a priority queue's list name (``queue\x06\x16N`` for priority N).
UNACKED_HASH = "unacked"
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
# A list longer than this is not read: a backlog that long means busy workers, and the
# run is looked at again once it drains.
LIST_LIMIT = 5000


@dataclass
class RunFacts:
    """What the sweep knows of one active run."""

    status: str
    fields: dict[str, str] = field(default_factory=dict)  # the fleet hash
    live_claims: int = 0
    waiting_retry: bool = False  # a retry countdown still ahead (its message waits in a worker)


class SweepState:
    """The stall sweep's reads and its turn lock, on the state Redis and the broker's."""

    def __init__(self, state_url: str, broker_url: str, prefix: str, *, client: Any = None,
                 broker_client: Any = None) -> None:
        self.keys = Keyspace(prefix)
        self._r = client if client is not None else client_for(state_url)
        self._fleet = FleetState(state_url, prefix, client=self._r)  # claims and retries, as it reads them
        self._b = broker_client if broker_client is not None else (
            self._r if broker_url == state_url else client_for(broker_url))

    def take_turn(self, holder: str, seconds: float) -> bool:
        """True when this holder sweeps now: the lock was free, or is already its own."""
        ms = max(1, int(seconds * 1000))
        if self._r.set(self.keys.sweep_lock, holder, nx=True, px=ms):
            return True
        if decode_text(self._r.get(self.keys.sweep_lock)) == holder:
            self._r.pexpire(self.keys.sweep_lock, ms)
            return True
        return False

    def active_runs(self) -> list[str]:
        """Fleet runs that may still be running."""
        return sorted(decode_text(m) for m in self._r.smembers(self.keys.active_runs))

    def last_change(self, run_ids: list[str]) -> dict[str, float | None]:
        """Each run's last event time (epoch seconds; None when it has none yet), in one
        round trip: every finished step, progress report and retry adds an event."""
        pipe = self._r.pipeline()
        for run_id in run_ids:
            pipe.xrevrange(self.keys.run(run_id).events, count=1)
        out: dict[str, float | None] = {}
        for run_id, last in zip(run_ids, pipe.execute(), strict=True):
            out[run_id] = int(decode_text(last[0][0]).split("-")[0]) / 1000 if last else None
        return out

    def spec(self, run_id: str) -> dict[str, Any] | None:
        """The run's compiled spec as stored (plain JSON: no models are built here)."""
        raw = self._r.get(self.keys.run(run_id).spec)
        return json.loads(raw) if raw else None

    def facts(self, run_id: str) -> RunFacts:
        """The run's status and fleet fields, its live claims and whether a retry waits."""
        keys = self.keys.run(run_id)
        pipe = self._r.pipeline()
        pipe.hget(keys.run, "status")
        pipe.hgetall(keys.fleet)
        run_status, raw = pipe.execute()
        fields = {decode_text(k): decode_text(v) for k, v in raw.items()}
        status = "cancelled" if decode_text(run_status) == "cancelled" else fields.get("status", "")
        return RunFacts(status, fields, len(self._fleet.live_claims(run_id)),
                        bool(self._fleet.waiting_retries(run_id)))

    def forget(self, run_id: str) -> None:
        """The run is no longer running: the sweep stops looking at it."""
        self._r.srem(self.keys.active_runs, run_id)

    def broker_holds(self, run_id: str, queues: set[str]) -> bool:
        """True when a message of the run waits in one of ``queues`` or is delivered and
        unacknowledged (reserved by a worker, or held for a countdown).  Messages carry
        ``run=<id> step=<name>`` in their headers (what Flower shows), which is what is
        looked for; a list too long to read counts as holding it."""
        needle = f"run={run_id} step=".encode()
        names = [n for q in sorted(queues) for n in (q, *(f"{q}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS))]
        pipe = self._b.pipeline()
        for name in names:
            pipe.llen(name)
        lengths = pipe.execute()
        if any(n > LIST_LIMIT for n in lengths):
            return True
        pipe = self._b.pipeline()
        for name, n in zip(names, lengths, strict=True):
            if n:
                pipe.lrange(name, 0, -1)
        pipe.hvals(UNACKED_HASH)
        return any(needle in raw for chunk in pipe.execute() for raw in chunk)
