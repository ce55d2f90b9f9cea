"""Which steps a stalled run is owed, and what counts as a standstill (fakeredis)."""

from __future__ import annotations

import json
import time

import fakeredis

from yaml_workflow.executors.celery.sweep import Sweep, owed_steps
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


class RecordingSweep(Sweep):
    """The sweep's decisions, with sending replaced by a record of what would be sent."""

    def __init__(self, state: SweepState) -> None:
        super().__init__(app=None, holder="w1", state=state)
        self.sent: list[tuple[str, list[str]]] = []

    def _send(self, run_id: str, owed: list[str], idle: float) -> list[str]:
        self.sent.append((run_id, owed))
        return owed


def quiet_run(r: fakeredis.FakeRedis, run_id: str = "r1", **fields: str) -> None:
    """A running two-step fleet run whose last event is 100 s old."""
    r.sadd("t:active", run_id)
    r.set(f"t:run:{run_id}:spec", json.dumps({**SPEC, "deps": {"a": [], "b": ["a"]},
                                                "plan": {"order": ["a", "b"], "skipped": {}}}))
    r.hset(f"t:run:{run_id}:fleet", mapping={"status": "running", **fields})
    r.xadd(f"t:run:{run_id}:events", {"e": "{}"}, id=f"{int((NOW - 100) * 1000)}-0")


NOW = time.time()  # retries ahead are judged on the real clock


def sweep_of(r: fakeredis.FakeRedis) -> RecordingSweep:
    return RecordingSweep(SweepState("redis://x", "redis://x", "t", client=r, broker_client=r))


def test_a_quiet_run_is_sent_its_owed_step_on_the_second_look_only() -> None:
    r = fakeredis.FakeRedis()
    quiet_run(r, **{"done:a": "1", "join:b": "1"})
    sweep = sweep_of(r)
    assert sweep.once(NOW) == {} and sweep.sent == []  # first look: remembered
    assert sweep.once(NOW + 5) == {"r1": ["b"]}
    assert sweep.sent == [("r1", ["b"])]


def test_a_run_that_moved_between_two_looks_is_not_sent_anything() -> None:
    r = fakeredis.FakeRedis()
    quiet_run(r)
    sweep = sweep_of(r)
    sweep.once(NOW)
    r.xadd("t:run:r1:events", {"e": "{}"}, id=f"{int((NOW - 60) * 1000)}-0")  # a step ended
    assert sweep.once(NOW + 5) == {}


def test_a_live_claim_a_retry_ahead_or_a_queued_message_means_no_send() -> None:
    for setup in (lambda r: (r.hset("t:run:r1:fleet", "started:a", "1"), r.set("t:run:r1:claim:a", "tok")),
                  lambda r: r.hset("t:run:r1:fleet", "not_before:a", str(time.time() + 3600)),
                  lambda r: r.lpush("celery", b'{"headers": {"argsrepr": "run=r1 step=a"}}')):
        r = fakeredis.FakeRedis()
        quiet_run(r)
        setup(r)
        sweep = sweep_of(r)
        assert sweep.once(NOW) == {} and sweep.once(NOW + 5) == {}


def test_a_run_that_ended_or_was_cancelled_leaves_the_active_set() -> None:
    r = fakeredis.FakeRedis()
    quiet_run(r, "r1")
    r.hset("t:run:r1", "status", "cancelled")
    sweep_of(r).once(NOW)
    assert r.smembers("t:active") == set()


def test_a_worker_without_the_turn_sends_nothing() -> None:
    r = fakeredis.FakeRedis()
    quiet_run(r)
    r.set("t:sweep:lock", "w2", px=60_000)
    sweep = sweep_of(r)
    assert sweep.once(NOW) == {} and sweep.once(NOW + 5) == {}
