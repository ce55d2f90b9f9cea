"""``yaml-workflow beat``: Celery beat's loop with our own Scheduler, the schedules in Redis.

Why a Scheduler of our own rather than celery-redbeat: what schedules need is ours in
any case.  A beat entry fires a fixed task with fixed arguments when ``is_due(last_run_at)``
says so, intervals count from the last run, and a late crontab fires once; we need
*nominal* ticks (cron in its time zone, ``every`` aligned to the epoch) passed as the
task's argument, the catch-up policy, and ``max_active_runs`` (decided by the worker).
RedBeat would add its own keys and lock outside the one owner of our keyspace, and a
second copy of the definitions ``schedule add`` stores.  What remains is small: the
loop (Celery's ``beat.Service``), a lock, and :func:`..spec.schedule.plan_ticks`.

High availability: any number of beats may run; the one that holds the lock
(``YAML_WORKFLOW_BEAT_LOCK_TTL``, 10 s) fires, and renews it three times per TTL; the
others try to take it as often.  When the holder dies its lock expires and another takes
over within about 1.3 TTL.  A beat that lost the lock (a pause, a partition) cannot move
a cursor (the script checks the lock), and a tick fired twice makes one run (its
idempotency key), so two holders for a moment cost nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import redis
from celery.beat import Scheduler

from ...settings import get_settings
from ...spec.models import Schedule
from ...spec.schedule import TickPlan, Ticks, plan_ticks
from ...state.document import HOST
from ...state.stores.redis import Schedules
from . import config
from .fire import FIRE_TASK

log = logging.getLogger("yaml_workflow.beat")


def iso(at: float) -> str:
    """Epoch seconds as ISO 8601 in UTC."""
    return datetime.fromtimestamp(at, timezone.utc).isoformat()


class ScheduleBeat(Scheduler):
    """A Celery beat Scheduler over the schedules in Redis (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.store = Schedules(config.state_url())
        self.ttl = get_settings().beat_lock_ttl
        self.lock_value = json.dumps({"token": uuid.uuid4().hex, "host": HOST, "pid": os.getpid(),
                                      "started": iso(time.time())}, sort_keys=True)
        self.held_since: float | None = None
        self._ticks: dict[str, tuple[str, Ticks]] = {}  # name -> (definition text, its ticks)
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        """No entries of Celery's own: the schedules are read from Redis on every tick."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Hold the lock, fire what is due; the seconds until the loop should come back."""
        beat = self.ttl / 3
        try:
            held = self.store.hold_lock(self.lock_value, self.ttl)
        except redis.RedisError as err:
            if self.held_since is not None:
                log.error("beat: lost Redis (%s); firing nothing until it is back", err)
            self.held_since = None
            return beat
        now = time.time()
        if not held:
            if self.held_since is not None:
                log.warning("beat: another beat holds the lock now; standing by")
            self.held_since = None
            return beat
        if self.held_since is None:
            self.held_since = now
            log.info("beat: holding the lock (ttl %gs); firing schedules", self.ttl)
        wake = now + beat
        try:
            definitions = self.store.definitions()
            states = self.store.states(list(definitions))
        except redis.RedisError as err:
            log.error("beat: cannot read the schedules: %s", err)
            return beat
        for name, definition in definitions.items():
            try:
                wake = min(wake, self.fire_due(name, definition, states.get(name) or {}, now))
            except Exception:  # noqa: BLE001 - one bad schedule must not stop the others
                log.exception("beat: schedule %s", name)
        return max(0.01, min(wake - time.time(), beat))

    def ticks_of(self, name: str, definition: dict[str, Any]) -> Ticks:
        """The schedule's ticks (parsed once per definition)."""
        text = json.dumps(definition.get("schedule"), sort_keys=True)
        cached = self._ticks.get(name)
        if cached is None or cached[0] != text:
            cached = self._ticks[name] = (text, Ticks(Schedule.model_validate(definition["schedule"])))
        return cached[1]

    def fire_due(self, name: str, definition: dict[str, Any], state: dict[str, str], now: float) -> float:
        """Fire the schedule's due ticks; the epoch of its next tick."""
        if not state or state.get("paused") == "1":
            return now + self.ttl
        ticks = self.ticks_of(name, definition)
        cursor = float(state.get("cursor_at") or now)
        assert self.held_since is not None
        plan = plan_ticks(ticks, cursor, now, self.held_since)
        if not plan.idle:
            self.record_missed(name, ticks, plan)
            for tick in plan.fire:
                self.app.send_task(FIRE_TASK, args=[name, tick.text], argsrepr=f"schedule={name} tick={tick.text}")
                log.info("beat: schedule %s: fired tick %s", name, tick.text)
            assert plan.cursor is not None
            self.store.advance(name, self.lock_value, plan.cursor.text, plan.cursor.at)
            cursor = plan.cursor.at
        return ticks.after(max(cursor, now)).at

    def record_missed(self, name: str, ticks: Ticks, plan: TickPlan) -> None:
        """Log the ticks the catch-up policy does not run (one entry per gap)."""
        if not plan.missed_count:
            return
        first, last = plan.missed
        policy = ticks.schedule.catchup
        resumed = iso(self.held_since or 0)
        entry = {"tick": first.text, "last": last.text, "count": plan.missed_count, "outcome": "missed",
                 "resumed": resumed, "reason": f"no beat ran until {resumed} (catchup: {policy})"}
        self.store.record(name, entry, first.at)
        log.warning("beat: schedule %s: %d tick(s) from %s to %s missed (catchup: %s)",
                    name, plan.missed_count, first.text, last.text, policy)

    def close(self) -> None:
        """A stopping beat gives the lock back: a standby takes over at once."""
        try:
            self.store.release_lock(self.lock_value)
        except redis.RedisError:
            pass  # it expires by its TTL
        super().close()

    @property
    def info(self) -> str:
        """What the banner of `beat` says about the scheduler."""
        return f"schedules in Redis (prefix {self.store.keys.prefix}), lock ttl {self.ttl:g}s"


def run_beat(app: Any, loglevel: str = "INFO") -> None:
    """Run the beat in this process until it is stopped (SIGTERM/SIGINT: gives the lock back)."""
    app.Beat(scheduler_cls=ScheduleBeat, loglevel=loglevel, max_interval=get_settings().beat_lock_ttl / 3).run()
