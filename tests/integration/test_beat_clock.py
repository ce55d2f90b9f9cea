"""The beat's scheduler on a fake clock, against a real redis-server: nominal cron times in
a time zone, across a day and a daylight-saving change, and the lock that guards the cursor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery

from tests.support.redis_server import RedisServer
from yaml_workflow.executors.celery.beat import ScheduleBeat
from yaml_workflow.settings import reset_settings
from yaml_workflow.spec.models import Schedule
from yaml_workflow.spec.schedule import Ticks

pytestmark = [pytest.mark.redis]
UTC = timezone.utc


@pytest.fixture()
def beat(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("YAML_WORKFLOW_STATE_URL", redis_server.url)
    monkeypatch.setenv("YAML_WORKFLOW_KEY_PREFIX", redis_server.prefix + "clock")
    monkeypatch.setenv("YAML_WORKFLOW_BEAT_LOCK_TTL", "60")
    reset_settings()
    app = Celery("clock-test", broker="memory://")
    sent: list[tuple[str, str]] = []
    app.send_task = lambda name, args, **_: sent.append((args[0], args[1]))  # type: ignore[method-assign]
    scheduler = ScheduleBeat(app=app, lazy=True)
    scheduler.sent = sent
    assert scheduler.store.hold_lock(scheduler.lock_value, 60)
    yield scheduler
    scheduler.store.release_lock(scheduler.lock_value)
    for name in scheduler.store.definitions():
        scheduler.store.remove(name)


def walk(beat: Any, name: str, schedule: Schedule, start: datetime, end: datetime, step: timedelta) -> list[str]:
    """Add the schedule with its cursor at ``start`` and let the fake clock run to ``end``."""
    definition = {"schedule": schedule.model_dump(mode="json"), "workflow": {}}
    beat.store.put(name, definition, paused=False, cursor=(start.isoformat(), start.timestamp()))
    beat.held_since = start.timestamp()
    now = start
    while now <= end:
        state = beat.store.states([name])[name]
        beat.fire_due(name, definition, state, now.timestamp())
        now += step
    return [tick for fired, tick in beat.sent if fired == name]


def test_a_cron_in_a_non_utc_zone_fires_at_its_nominal_times(beat: Any) -> None:
    # given 09:00-10:40 every 20 minutes in Kolkata (+05:30), and a clock that moves 7 min a step
    schedule = Schedule(cron="*/20 9-10 * * *", timezone="Asia/Kolkata")
    start = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)  # 08:30 in Kolkata
    fired = walk(beat, "kolkata", schedule, start, start + timedelta(hours=3), timedelta(minutes=7))
    # then the ticks are the cron times in Kolkata, each once, in order
    assert fired == [f"2026-11-29T{h}:{m}:00+05:30" for h in ("09", "10") for m in ("00", "20", "40")]
    state = beat.store.states(["kolkata"])["kolkata"]
    assert state["cursor"] == "2026-11-29T10:40:00+05:30"


def test_the_beat_fires_once_across_a_daylight_saving_change(beat: Any) -> None:
    # Berlin's clocks go forward on 2026-03-29 (02:30 does not exist) and back on 2026-10-25
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    spring = walk(beat, "spring", schedule, datetime(2026, 3, 27, 12, tzinfo=UTC),
                  datetime(2026, 3, 31, 12, tzinfo=UTC), timedelta(minutes=13))
    assert spring == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00",
                      "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    autumn = walk(beat, "autumn", schedule, datetime(2026, 10, 23, 12, tzinfo=UTC),
                  datetime(2026, 10, 26, 12, tzinfo=UTC), timedelta(minutes=13))
    assert autumn == ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_a_beat_that_lost_the_lock_cannot_move_a_cursor(beat: Any) -> None:
    schedule = Schedule(every=60)
    start = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    walk(beat, "fenced", schedule, start, start + timedelta(minutes=2), timedelta(minutes=1))
    # when another process holds the lock now
    beat.store.release_lock(beat.lock_value)
    assert beat.store.hold_lock('{"token": "other"}', 60)
    moved = beat.store.advance("fenced", beat.lock_value, "2026-11-29T11:00:00+00:00",
                               datetime(2026, 11, 29, 11, tzinfo=UTC).timestamp())
    # then the cursor stays where the holder left it
    assert not moved
    assert beat.store.states(["fenced"])["fenced"]["cursor"] == "2026-11-29T10:02:00+00:00"
    assert not beat.store.hold_lock(beat.lock_value, 60)
    beat.store.release_lock('{"token": "other"}')
    assert beat.store.hold_lock(beat.lock_value, 60)


def test_ticks_are_the_same_for_every_scheduler() -> None:
    # two schedulers that start at different moments compute the same tick texts
    schedule = Schedule(every="5m")
    a, b = Ticks(schedule), Ticks(schedule)
    assert a.after(1_800_000_001.0).text == b.after(1_800_000_123.0).text == "2027-01-15T08:05:00+00:00"
