"""The stall sweep: a step whose message was lost is sent again, without anyone's command.

Claims cover a step that started (its worker renews the claim; when it dies, the
message comes back by the visibility timeout, see :mod:`.guard`).  They cannot cover a
message lost before any worker took it in hand: kombu's Redis transport pops a message
(BRPOP) and only then records it as unacknowledged, so a Redis restart in between, or a
reply lost with its connection, leaves the message nowhere, and the run would wait for
ever.  Every worker runs this sweep in its main process; one at a time holds the turn
(a lock with a TTL, so a dead sweeper hands over).  Each period it looks at the fleet's
active runs and sends again every step a run is owed when the run:

- is `running`, with no live claim and no retry countdown ahead;
- has recorded nothing for ``YAML_WORKFLOW_STALL_AFTER`` (3 claim TTLs by default);
- has no message of its own in the broker's lists or unacknowledged hash;
- looked exactly the same (same last event) one period earlier.

A step is owed when it is not done and all its dependencies are (its join counter is
full).  Sending a message again is always safe: a delivery of a step that another
delivery runs waits for its claim, and one of a step that is done only replays the
dispatch.  A batch step sent again re-sends the chunks it lacks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from ...settings import get_settings
from ...state.stores.redis.sweep import RunFacts, SweepState
from . import config
from .dispatch import send_step
from .runtime import forget_run, get_run

log = logging.getLogger("yaml_workflow.fleet")


def period() -> float:
    """Seconds between two sweeps (a third of the claim TTL)."""
    return max(1.0, get_settings().claim_ttl / 3)


def owed_steps(spec: dict[str, Any], facts: RunFacts) -> list[str]:
    """Steps the run is owed a message for: not done, every dependency done, not skipped."""
    deps: dict[str, list[str]] = spec.get("deps") or {}
    skipped = (spec.get("plan") or {}).get("skipped") or {}
    fields = facts.fields
    owed = []
    for name in (spec.get("plan") or {}).get("order") or []:
        if fields.get(f"done:{name}") or fields.get(f"skip:{name}") or name in skipped:
            continue
        if int(fields.get(f"join:{name}") or 0) >= len(deps.get(name) or []):
            owed.append(name)
    return owed


class Sweep:
    """One worker's side of the sweep: its turn, what it saw last time, what it sends."""

    def __init__(self, app: Any, holder: str, state: SweepState | None = None) -> None:
        self.app, self.holder = app, holder
        self.state = state or SweepState(config.state_url(), config.broker_url(), get_settings().key_prefix)
        self.seen: dict[str, tuple[float | None, tuple[str, ...]]] = {}

    def once(self, now: float | None = None) -> dict[str, list[str]]:
        """One sweep; the steps sent again, by run."""
        now = time.time() if now is None else now
        if not self.state.take_turn(self.holder, 3 * period()):
            self.seen.clear()  # another worker sweeps; start over if the turn comes back
            return {}
        stall = get_settings().effective_stall_after
        active = self.state.active_runs()
        changes = self.state.last_change(active) if active else {}
        seen, sent = {}, {}
        for run_id, last in changes.items():
            if last is not None and now - last < stall:
                continue  # the usual case: something happened lately, nothing more to read
            spec = self.state.spec(run_id)
            if spec is None:
                self.state.forget(run_id)
                continue
            idle = now - (last if last is not None else _started(spec, now))
            if idle < stall:
                continue
            facts = self.state.facts(run_id)
            if facts.status != "running":
                self.state.forget(run_id)
                continue
            if facts.live_claims or facts.waiting_retry:
                continue
            owed = owed_steps(spec, facts)
            if not owed or self.state.broker_holds(run_id, _queues(spec)):
                continue
            seen[run_id] = (last, tuple(owed))
            if self.seen.get(run_id) == seen[run_id]:  # the same standstill one period ago
                sent[run_id] = self._send(run_id, owed, idle)
                del seen[run_id]
        self.seen = seen
        return sent

    def _send(self, run_id: str, owed: list[str], idle: float) -> list[str]:
        forget_run(run_id)  # read the run afresh: a resume may have changed it
        run = get_run(run_id)
        log.warning("run %s: no step running, none queued and no change for %.0fs; sending %s again",
                    run_id, idle, ", ".join(owed))
        for name in owed:
            send_step(self.app, run, name)
        return owed

    def loop(self, stopped: threading.Event) -> None:
        """Sweep each period until ``stopped``; Redis being away only skips sweeps."""
        while not stopped.wait(period()):
            try:
                self.once()
            except (redis.RedisError, OSError) as err:
                log.debug("stall sweep skipped: %s", err)
            except Exception:  # noqa: BLE001 - a sweep must never stop the worker
                log.exception("stall sweep failed")


def _started(spec: dict[str, Any], now: float) -> float:
    """When the run was submitted (its spec's timestamp), for a run with no event yet."""
    from ...state.document import parse_iso

    moment = parse_iso(spec.get("timestamp"))
    return now if moment is None else moment


def _queues(spec: dict[str, Any]) -> set[str]:
    queues = {spec.get("queue") or config.DEFAULT_QUEUE}
    queues.update(s["queue"] for s in (spec.get("workflow") or {}).get("steps") or [] if s.get("queue"))
    return queues


_STOP = threading.Event()


def start_sweep(app: Any, holder: str) -> None:
    """Start this worker's sweep thread (in its main process)."""
    sweep = Sweep(app, holder)
    threading.Thread(target=sweep.loop, args=(_STOP,), name="ywf-sweep", daemon=True).start()
