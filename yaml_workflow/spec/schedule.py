"""A schedule's ticks, and which of them a scheduler fires.

A tick is a *nominal* time, the same for every scheduler and never derived from when a
process last ran: a cron tick is the cron time in its time zone (:mod:`.cron`); an
``every`` tick is a multiple of its interval since the Unix epoch, in UTC (every 5m fires
at :00, :05, ...).  It is written in ISO 8601 with its UTC offset
(``2026-11-29T10:05:00+00:00``; a cron tick in its zone's offset), and that text names the
run: the fleet submits a tick with the idempotency key ``schedule:<name>:<tick>``.

:func:`plan_ticks` is the catch-up policy, pure: given the last tick decided (the
cursor), now, and since when this scheduler holds the lock, it says which ticks to fire
and which were missed while no scheduler ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from zoneinfo import ZoneInfo

from .cron import Cron, parse_cron
from .models import Schedule

UTC = timezone.utc
MAX_CATCHUP = 1000  # ticks fired at most by one catch-up; older missed ones are recorded as missed


@dataclass(frozen=True, order=True)
class Tick:
    """One nominal time of a schedule: epoch seconds, and its ISO text (the run's name)."""

    at: float
    text: str = field(compare=False)


class Ticks:
    """The ticks of one schedule."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    @cached_property
    def zone(self) -> ZoneInfo:
        """The schedule's time zone (UTC for `every`)."""
        return ZoneInfo(self.schedule.timezone)

    @cached_property
    def cron(self) -> Cron | None:
        """The parsed cron expression, or None for `every`."""
        return parse_cron(self.schedule.cron) if self.schedule.cron is not None else None

    def tick(self, at: float) -> Tick:
        """The tick at epoch ``at``, written in the schedule's zone."""
        moment = datetime.fromtimestamp(at, UTC).astimezone(self.zone)
        return Tick(at, moment.isoformat())

    def after(self, at: float) -> Tick:
        """The first tick strictly after epoch ``at``."""
        if self.cron is None:
            every = self.schedule.every
            assert every is not None
            return self.tick((int(at // every) + 1) * every)
        return self.tick(self.cron.next_after(datetime.fromtimestamp(at, UTC), self.zone).timestamp())

    def at_or_before(self, at: float) -> Tick | None:
        """The last tick at or before epoch ``at`` (None: none in the last ~9 years)."""
        if self.cron is None:
            every = self.schedule.every
            assert every is not None
            return self.tick(int(at // every) * every)
        step = 3600.0
        while step < 86400 * 366 * 9:  # look back further until a tick turns up
            first = self.after(at - step)
            if first.at <= at:
                last = first
                while True:
                    nxt = self.after(last.at)
                    if nxt.at > at:
                        return last
                    last = nxt
            step *= 8
        return None

    def between(self, after: float, until: float, limit: int) -> tuple[list[Tick], int]:
        """Ticks in (after, until], the last ``limit`` of them, and how many came before those."""
        found: list[Tick] = []
        skipped = 0
        if self.cron is None:
            every = self.schedule.every
            assert every is not None
            first, last = int(after // every) + 1, int(until // every)
            count = max(0, last - first + 1)
            skipped = max(0, count - limit)
            return [self.tick(n * every) for n in range(first + skipped, last + 1)], skipped
        tick = self.after(after)
        while tick.at <= until:
            found.append(tick)
            if len(found) > limit:
                found.pop(0)
                skipped += 1
            tick = self.after(tick.at)
        return found, skipped


@dataclass
class TickPlan:
    """What a scheduler does for one schedule now: fire these, record those as missed."""

    fire: list[Tick] = field(default_factory=list)
    missed: list[Tick] = field(default_factory=list)  # the first and last missed (when any)
    missed_count: int = 0
    cursor: Tick | None = None  # the new cursor: the last tick decided

    @property
    def idle(self) -> bool:
        """Nothing to do."""
        return self.cursor is None


def plan_ticks(ticks: Ticks, cursor: float, now: float, held_since: float) -> TickPlan:
    """The ticks due in (cursor, now] and what the catch-up policy does with them.

    Ticks at or after ``held_since`` came due while this scheduler held the lock: they
    fire.  Earlier ones were missed while no scheduler ran (the one that held the lock
    would have fired them and moved the cursor): ``all`` fires them (the last
    :data:`MAX_CATCHUP`), ``latest`` fires the latest of them, ``none`` fires none.
    """
    due, overflow = ticks.between(cursor, now, MAX_CATCHUP)
    if not due:
        return TickPlan()
    missed = [t for t in due if t.at < held_since]
    on_time = [t for t in due if t.at >= held_since]
    policy = ticks.schedule.catchup
    if policy == "all":
        fire, dropped = due, []
    elif policy == "latest":
        fire, dropped = missed[-1:] + on_time, missed[:-1]
    else:
        fire, dropped = on_time, missed
    plan = TickPlan(fire=fire, cursor=due[-1], missed_count=overflow + len(dropped))
    if plan.missed_count:
        # Ticks past the limit are older than every kept one.
        first = ticks.after(cursor) if overflow else dropped[0]
        last = dropped[-1] if dropped else ticks.at_or_before(due[0].at - 0.001)
        plan.missed = [first, last or first]
    return plan
