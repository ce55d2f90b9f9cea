"""A follower that learns from the status that the run ended still shows every step
that ended before it (fakeredis)."""

from __future__ import annotations

from typing import Any

import fakeredis

from yaml_workflow.executors.celery.follow import _Follower
from yaml_workflow.state.stores.redis import FleetState


def test_steps_that_ended_between_the_last_read_and_the_status_check_are_shown() -> None:
    fs = FleetState("redis://fake", "t", client=fakeredis.FakeRedis())
    fs.create("r1", {"plan": {"order": ["a", "b"]}}, 2)
    seen: list[str] = []

    def observer(kind: str, event: dict[str, Any]) -> None:
        seen.append(event.get("step", ""))

    follower = _Follower(fs, "r1", observer, None, "0-0")
    fs.event("r1", {"t": "step", "step": "a", "status": "completed"})
    assert follower.read(1) is None and seen == ["a"]
    # the last step ends and the run with it, after the follower's read
    fs.event("r1", {"t": "step", "step": "b", "status": "completed"})
    fs.set_status("r1", "completed", {"t": "end", "status": "completed"})
    assert follower.check() == "completed"
    follower.drain()
    assert seen == ["a", "b"] and follower.done == 2


def test_reading_without_waiting_returns_at_once_when_nothing_is_new() -> None:
    fs = FleetState("redis://fake", "t", client=fakeredis.FakeRedis())
    fs.create("r1", {"plan": {"order": ["a"]}}, 1)
    assert fs.read_events("r1", "0-0", 0) == []
