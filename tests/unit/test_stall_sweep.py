"""Which steps a stalled run is owed, and what counts as a standstill (fakeredis)."""

from __future__ import annotations

import fakeredis

from yaml_workflow.executors.celery.sweep import owed_steps
from yaml_workflow.state.stores.redis.sweep import RunFacts, SweepState

SPEC = {"deps": {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]},
        "plan": {"order": ["a", "b", "c", "d"], "skipped": {}}}


def test_a_root_with_nothing_done_is_owed() -> None:
    assert owed_steps(SPEC, RunFacts("running", {})) == ["a"]


def test_steps_whose_dependencies_are_all_done_are_owed_and_no_others() -> None:
    facts = RunFacts("running", {"done:a": "1", "join:b": "1", "join:c": "1", "done:b": "1", "join:d": "1"})
    assert owed_steps(SPEC, facts) == ["c"]  # d waits for c


def test_skipped_and_done_steps_are_never_owed() -> None:
    facts = RunFacts("running", {"done:a": "1", "join:b": "1", "join:c": "1", "skip:b": "flow"})
    assert owed_steps({**SPEC, "plan": {"order": SPEC["plan"]["order"], "skipped": {"c": "x"}}}, facts) == []


def test_a_message_of_the_run_in_the_queue_or_unacked_counts_as_held() -> None:
    r = fakeredis.FakeRedis()
    state = SweepState("redis://x", "redis://x", "t", client=r, broker_client=r)
    assert not state.broker_holds("r1", {"celery"})
    r.lpush("celery", b'{"headers": {"argsrepr": "run=r2 step=a"}}')
    assert not state.broker_holds("r1", {"celery"})  # another run's message
    r.lpush("celery", b'{"headers": {"argsrepr": "run=r1 step=a"}}')
    assert state.broker_holds("r1", {"celery"})
    r.delete("celery")
    r.hset("unacked", "tag", b'[{"headers": {"argsrepr": "run=r1 step=b"}}, "", "celery"]')
    assert state.broker_holds("r1", {"celery"})


def test_one_worker_at_a_time_holds_the_turn() -> None:
    r = fakeredis.FakeRedis()
    one = SweepState("redis://x", "redis://x", "t", client=r)
    assert one.take_turn("w1", 5) and one.take_turn("w1", 5)
    assert not one.take_turn("w2", 5)
    r.delete("t:sweep:lock")  # the holder died and its lock expired
    assert one.take_turn("w2", 5)
