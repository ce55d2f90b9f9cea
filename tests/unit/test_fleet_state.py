"""The fleet's state machine on fakeredis with Lua: FleetState and RedisStore, in milliseconds.

The same scripts the fleet runs on a real server (``state/stores/redis/lua``) run here in
lupa: begin and claims, commits that count join counters, duplicate deliveries, expired
claims and claims re-taken after a restart, cancel, the batch counters, resume, and the
scripts' loading by SHA.  Time is moved by hand (``clock.advance``), never waited for;
tests/support/fake_redis.py gives fakeredis the INFO uptime the ``begin`` script reads.  What is about processes, networks
and persistence stays in tests/integration (real redis-server, real workers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from tests.support.fake_redis import fake_server, restart
from yaml_workflow.state.document import now_iso, status_event, step_event
from yaml_workflow.state.stores.redis import Begun, FleetState, Holder, RedisStore
from yaml_workflow.state.stores.redis.fleet import claim_lifetime_ms, claim_ttl
from yaml_workflow.state.stores.redis.scripts import NAMES, Scripts, source

URL = "redis://fakeredis/0"
PREFIX = "ywff"
RUN = "run1"


class Clock:
    """``time.time`` moved by hand: fakeredis expires keys and FleetState stamps holders by it."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._real = time.time

    def __call__(self) -> float:
        return self._real() + self.offset

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass at once."""
        self.offset += seconds


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(time, "time", made)
    return made


@pytest.fixture()
def server(clock: Clock) -> fakeredis.FakeServer:
    """One fake Redis server, up for a day: each client below is another connection to it."""
    return fake_server()


@pytest.fixture()
def store(server: fakeredis.FakeServer) -> Iterator[RedisStore]:
    made = RedisStore(URL, prefix=PREFIX, client=fakeredis.FakeRedis(server=server, decode_responses=True))
    yield made
    made.close()


class Workers:
    """Worker processes' views of the fleet state (each its own connection and claims);
    the claims a test leaves held are given back after it, so nothing keeps renewing them."""

    def __init__(self, server: fakeredis.FakeServer) -> None:
        self.server = server
        self.made: list[FleetState] = []

    def __call__(self) -> FleetState:
        made = FleetState(URL, PREFIX, client=fakeredis.FakeRedis(server=self.server))
        self.made.append(made)
        return made

    def close(self) -> None:
        for fs in self.made:
            for name in fs.live_claims(RUN):
                fs.release(fs.claim_key(RUN, name))


@pytest.fixture()
def worker(server: fakeredis.FakeServer) -> Iterator[Workers]:
    made = Workers(server)
    yield made
    made.close()


@pytest.fixture()
def fs(worker: Workers) -> FleetState:
    return worker()


def start_run(store: RedisStore, fs: FleetState, steps: list[str], run_id: str = RUN) -> None:
    """A submitted run: its document in the store, its spec and counters in the fleet keys."""
    now = time.time()
    store.create_run({"t": "run", "at": now, "workflow_id": run_id, "name": "wf", "start_time": now_iso(now),
                      "status": "running", "workspace": "/tmp/ws", "run_number": 1, "params": {},
                      "plan": {"order": steps}, "mode": "fleet"})
    fs.create(run_id, {"v": 1, "plan": {"order": steps}}, len(steps))


def begin(fs: FleetState, step: str, token: str = "t1", ns: list[str] | None = None) -> Begun:
    return fs.begin(RUN, step, token, ns or [])


def finish(fs: FleetState, step: str, successors: list[tuple[str, int]], result: Any = None,
           **kwargs: Any) -> Any:
    """Commit a step done, with its completed record, as a step task does."""
    event = step_event(step, "completed", result=result, finished_at=time.time())
    return fs.commit(RUN, step, {"status": "completed", "result": result}, successors,
                     {"step": step, "status": "completed"}, records=[event], **kwargs)


def events(fs: FleetState) -> list[dict[str, Any]]:
    return [e for _, e in fs.read_events(RUN, "0-0", 0)] if fs.last_event_id(RUN) != "0-0" else []


# --- begin and claims ---------------------------------------------------------------


def test_begin_claims_the_step_and_reads_what_its_templates_need(store: RedisStore, fs: FleetState) -> None:
    # given a run whose step a is done (its namespace entry stored)
    start_run(store, fs, ["a", "b"])
    assert begin(fs, "a").claimed
    finish(fs, "a", [("b", 1)], result={"rows": [1, 2.5]})
    # when b's delivery begins, reading steps.a
    got = begin(fs, "b", ns=["a", "missing"])
    # then it holds b's claim, first attempt, no earlier start, with a's entry only
    assert got.status == "running" and got.claimed and not got.done
    assert (got.attempt, got.started, got.fanout, got.gen) == (1, "", "", "")  # gen: no resume yet
    assert got.ns == {"a": {"status": "completed", "result": {"rows": [1, 2.5]}}}
    assert begin(fs, "b", token="t2", ns=["*"]).claimed is False  # (held: see the next test)
    assert fs.live_claims(RUN) == ["b"]
    holder, live = fs.holders(RUN)["b"]
    assert live and isinstance(holder, Holder) and holder.renewed == pytest.approx(time.time(), abs=5)


def test_a_second_delivery_finds_the_claim_held_and_waits_for_it(store: RedisStore, worker: Workers) -> None:
    first, second = worker(), worker()
    start_run(store, first, ["a"])
    assert begin(first, "a", "t1").claimed
    # when another worker's delivery begins while the claim is live
    got = begin(second, "a", "t2")
    # then it does not run the step; it is told how long the claim has left
    assert got.status == "running" and not got.claimed
    assert 0 < got.claim_wait <= claim_lifetime_ms() / 1000
    first.release(first.claim_key(RUN, "a"))
    assert begin(second, "a", "t2").claimed  # given back: the next delivery takes it
    second.release(second.claim_key(RUN, "a"))


def test_an_expired_claim_is_taken_by_the_next_delivery_and_its_holder_is_fenced(
        store: RedisStore, worker: Workers, clock: Clock) -> None:
    dead, alive = worker(), worker()
    start_run(store, dead, ["a"])
    assert begin(dead, "a", "t-dead").claimed
    [held] = dead.held()
    # when the holder stops renewing and the claim key runs out
    clock.advance(claim_lifetime_ms() / 1000 + 1)
    assert dead.live_claims(RUN) == []
    holder, live = dead.holders(RUN)["a"]
    assert not live and holder.renewed < time.time() - claim_ttl()  # shown as stalled
    # then a redelivery takes the step, and knows the first attempt had started
    got = begin(alive, "a", "t-alive")
    assert got.claimed and got.started == "1"
    # and the first holder can neither renew, take back nor give back the new claim
    assert dead.renew_many([held]) == [False]
    assert dead.retake(held) is False
    assert dead.release_claim(held) is False
    assert alive.live_claims(RUN) == ["a"]
    assert alive.renew_many(alive.held()) == [True]


def test_after_a_restart_a_vanished_claim_is_its_holder_s_to_retake_for_one_ttl(
        store: RedisStore, worker: Workers, server: Any, clock: Clock) -> None:
    # given a step running under a claim, and Redis restarted without the claim key
    holder, other = worker(), worker()
    start_run(store, holder, ["a"])
    assert begin(holder, "a", "t1").claimed
    [held] = holder.held()
    fakeredis.FakeRedis(server=server).delete(held.key)
    restart(server)
    # when another delivery of the step begins within one claim TTL of the restart
    refused = begin(other, "a", "t2")
    # then it does not take the step: it is told to come back when the TTL has passed
    assert not refused.claimed and refused.claim_wait == pytest.approx(claim_ttl(), abs=1)
    # and the holder takes its claim back, unless the step went on without it
    assert holder.retake(held) is True
    assert not begin(other, "a", "t2").claimed
    assert holder.renew_many([held]) == [True]


def test_a_claim_is_not_retaken_once_the_step_went_on(store: RedisStore, worker: Workers, server: Any,
                                                       clock: Clock) -> None:
    holder, other = worker(), worker()
    start_run(store, holder, ["a", "b"])
    raw = fakeredis.FakeRedis(server=server)
    assert begin(holder, "a", "t1").claimed
    [held] = holder.held()
    # another attempt was scheduled meanwhile: the old holder's attempt is over
    raw.delete(held.key)
    holder.set_fields(RUN, **{"attempt:a": 2})
    assert holder.retake(held) is False
    # the step was recorded done by another delivery: nothing to take back
    holder.set_fields(RUN, **{"attempt:a": 1})
    clock.advance(claim_ttl() + 1)
    assert begin(other, "a", "t2").claimed
    finish(other, "a", [("b", 1)])
    assert holder.retake(held) is False and other.live_claims(RUN) == []


def test_break_claim_frees_a_step_whose_holder_is_known_dead(store: RedisStore, worker: Workers) -> None:
    first, second = worker(), worker()
    start_run(store, first, ["a"])
    assert begin(first, "a", "t1").claimed
    second.break_claim(RUN, "a")
    assert second.live_claims(RUN) == [] and second.holders(RUN) == {}
    assert begin(second, "a", "t2").claimed
    second.release(second.claim_key(RUN, "a"))


# --- commit and joins ---------------------------------------------------------------


def test_commits_count_joins_so_a_fan_in_fires_once_after_all_its_inputs(store: RedisStore, fs: FleetState) -> None:
    # given a DAG a -> (b, c) -> d
    start_run(store, fs, ["a", "b", "c", "d"])
    begin(fs, "a")
    first = finish(fs, "a", [("b", 1), ("c", 1)], result="A")
    # then a made b and c ready, and counted itself out of the run
    assert first.new and first.ready == [("b", ""), ("c", "")] and first.remaining == 3
    begin(fs, "b")
    assert finish(fs, "b", [("d", 2)]).ready == []  # d still waits for c
    begin(fs, "c")
    last = finish(fs, "c", [("d", 2)])
    assert last.ready == [("d", "")] and last.remaining == 1
    # and each commit wrote the step's records and its done marker together
    doc = store.load(RUN)
    assert {s: r["status"] for s, r in doc["execution_state"]["step_outputs"].items()} == dict.fromkeys("abc", "completed")
    assert doc["execution_state"]["step_outputs"]["a"]["result"] == "A"
    assert all(fs.is_done(RUN, s) for s in "abc") and not fs.is_done(RUN, "d")
    assert [e["step"] for e in events(fs)] == ["a", "b", "c"]
    assert fs.live_claims(RUN) == []  # each commit gave its claim back


def test_a_forced_skip_reaches_the_successor_with_its_reason(store: RedisStore, fs: FleetState) -> None:
    start_run(store, fs, ["a", "b"])
    begin(fs, "a")
    done = finish(fs, "a", [("b", 1)], forced_skips={"b": "skipped by next: of a"})
    assert done.ready == [("b", "skipped by next: of a")]


def test_a_duplicate_delivery_finds_the_step_done_and_its_commit_records_nothing(
        store: RedisStore, worker: Workers) -> None:
    first, second = worker(), worker()
    start_run(store, first, ["a", "b", "c"])
    begin(first, "a")
    original = finish(first, "a", [("b", 1), ("c", 1)], result="first")
    before = (store.load(RUN), events(first), first.field(RUN, "remaining"), first.field(RUN, "join:b"))
    # when the same message is delivered again
    again = begin(second, "a", "t2")
    assert again.claimed and again.done  # it only finishes the dispatch
    replay = finish(second, "a", [("b", 1), ("c", 1)], result="second")
    # then the second commit returns the first one's ready list and writes nothing
    assert not replay.new and replay.ready == original.ready and replay.remaining == original.remaining
    assert (store.load(RUN), events(second), second.field(RUN, "remaining"), second.field(RUN, "join:b")) == before
    assert second.live_claims(RUN) == []  # and its claim went back


def test_a_failure_that_stops_the_run_is_not_counted_out(store: RedisStore, fs: FleetState) -> None:
    start_run(store, fs, ["a", "b"])
    begin(fs, "a")
    event = step_event("a", "failed", error="boom")
    got = fs.commit(RUN, "a", {"status": "failed"}, [], None, records=[event], count=False)
    assert got.new and got.remaining == 2  # the run must not look finished to others
    assert store.load(RUN)["execution_state"]["step_outputs"]["a"]["error"] == "boom"


# --- run status: cancel, gone, finished ---------------------------------------------


def test_a_cancelled_run_status_wins_and_no_step_begins(store: RedisStore, fs: FleetState) -> None:
    start_run(store, fs, ["a", "b"])
    begin(fs, "a")
    # when the run is cancelled in the store (its hash) while the fleet hash says running
    store.record(RUN, status_event("cancelled"))
    assert fs.field(RUN, "status") == "running"
    # then every check sees cancelled: status, a new delivery, a commit
    assert fs.status(RUN) == "cancelled"
    assert begin(fs, "b") == Begun("cancelled")
    assert finish(fs, "a", [("b", 1)]).status == "cancelled"
    assert fs.live_claims(RUN) == []


def test_a_run_redis_lost_is_gone_and_nothing_is_written(store: RedisStore, fs: FleetState, server: Any) -> None:
    assert begin(fs, "a") == Begun("gone")
    got = fs.commit(RUN, "a", {}, [("b", 1)], None, records=[step_event("a", "completed")])
    assert not got.new and got.status == "gone"
    assert fakeredis.FakeRedis(server=server).keys("*") == []  # no stray keys


def test_a_finished_run_tells_followers_and_its_fleet_keys_expire(store: RedisStore, fs: FleetState, server: Any) -> None:
    start_run(store, fs, ["a"])
    begin(fs, "a")
    finish(fs, "a", [])
    fs.set_status(RUN, "completed", {"status": "completed", "t": "end"})
    raw = fakeredis.FakeRedis(server=server)
    keys = fs.run_keys(RUN)
    assert all(0 < raw.ttl(k) <= 7 * 86400 for k in keys.fleet_data)
    assert raw.ttl(keys.run) == -1  # the run's own state is the store's to keep
    assert events(fs)[-1] == {"status": "completed", "t": "end"}


def test_waiting_retries_are_the_steps_with_a_countdown_still_running(
        store: RedisStore, fs: FleetState, clock: Clock) -> None:
    start_run(store, fs, ["a", "b"])
    fs.set_fields(RUN, **{"not_before:a": time.time() + 10, "not_before:b": time.time() - 1})
    assert fs.waiting_retries(RUN) == ["a"]
    clock.advance(11)
    assert fs.waiting_retries(RUN) == []


# --- batch fan-outs -----------------------------------------------------------------


def test_each_chunk_is_counted_once_and_its_items_kept(store: RedisStore, fs: FleetState) -> None:
    start_run(store, fs, ["batch"])
    fs.store_fanout(RUN, "batch", 1, {"chunks": 2, "total": 4})
    assert fs.fanout_plan(RUN, "batch", 1) == {"chunks": 2, "total": 4}
    assert begin(fs, "batch").fanout == "1"  # a redelivery finds the fan-out it made
    fs.release(fs.claim_key(RUN, "batch"))
    ok = {"status": "completed", "result": 1.5}
    assert fs.chunk_done(RUN, "batch", 1, 0, {0: ok, 1: ok}) == 1
    # a chunk delivered twice is not counted twice, and its first items stay
    assert fs.chunk_done(RUN, "batch", 1, 0, {0: {"status": "failed"}}) is None
    assert fs.chunks_done(RUN, "batch", 1) == 1
    assert fs.chunk_done(RUN, "batch", 1, 1, {2: ok, 3: {"status": "failed", "error": "e"}}) == 2
    items = fs.batch_items(RUN, "batch", 1)
    assert sorted(items) == [0, 1, 2, 3] and items[0] == ok and items[3]["error"] == "e"
    # a fan-out bound to fail stops later chunks; another fan-out is untouched
    assert not fs.batch_stopped(RUN, "batch", 1)
    fs.stop_batch(RUN, "batch", 1)
    assert fs.batch_stopped(RUN, "batch", 1) and not fs.batch_stopped(RUN, "batch", 2)


def test_progress_counters_add_up_and_one_chunk_per_interval_records(store: RedisStore, fs: FleetState,
                                                                      clock: Clock) -> None:
    start_run(store, fs, ["batch"])
    assert fs.count_progress(RUN, "batch", 1, 2, 0, 1, 5.0) == (2, 0, 1, True)
    assert fs.count_progress(RUN, "batch", 1, 1, 1, 0, 5.0) == (3, 1, 1, False)  # within the interval
    clock.advance(6)
    assert fs.count_progress(RUN, "batch", 1, 1, 0, 0, 5.0) == (4, 1, 1, True)


# --- resume -------------------------------------------------------------------------


def test_reset_for_resume_replaces_the_bookkeeping_and_drops_fan_outs_of_steps_run_again(
        store: RedisStore, fs: FleetState, server: Any) -> None:
    # given a finished (failed) run: a done, its batch step b with two fan-outs, keys expiring
    start_run(store, fs, ["a", "b", "c"])
    begin(fs, "a")
    finish(fs, "a", [("b", 1)])
    for n in (1, 2):
        fs.store_fanout(RUN, "b", n, {"chunks": 1})
        fs.chunk_done(RUN, "b", n, 0, {0: {"status": "failed"}})
    fs.set_status(RUN, "failed", {"status": "failed"})
    raw = fakeredis.FakeRedis(server=server)
    keys = fs.run_keys(RUN)
    # when a resume resets it, b to run again
    spec = {"v": 1, "plan": {"order": ["a", "b", "c"]}, "gen": "g2"}
    fields = {"status": "running", "remaining": 2, "gen": "g2", "done:a": "1", "next:a": "[]", "join:b": 1}
    fs.reset_for_resume(RUN, spec, fields, {"a": json.dumps({"status": "completed"})}, ["b"])
    # then the fleet hash is exactly the new one, b's fan-outs are gone, the events stay
    assert {k.decode(): v.decode() for k, v in raw.hgetall(keys.fleet).items()} == {
        k: str(v) for k, v in fields.items()}
    assert fs.spec(RUN) == spec and fs.status(RUN) == "running"
    assert not raw.exists(keys.batch("b", 1)) and not raw.exists(keys.batch("b", 2))
    assert raw.ttl(keys.events) == -1 and events(fs)
    resumed = begin(fs, "b", ns=["a"])
    assert resumed.ns == {"a": {"status": "completed"}} and resumed.gen == "g2"
    assert begin(fs, "a").done  # a stale message of a done step finds it done
    for step in ("a", "b"):
        fs.release(fs.claim_key(RUN, step))


def test_one_resume_lock_at_a_time(store: RedisStore, worker: Workers) -> None:
    first, second = worker(), worker()
    start_run(store, first, ["a"])
    lock = first.resume_lock(RUN, 60)
    assert lock.acquire()
    assert not second.resume_lock(RUN, 60).acquire()
    lock.release()
    assert second.resume_lock(RUN, 60).acquire()


def test_delete_run_forgets_the_fleet_keys_and_keeps_the_store_s(store: RedisStore, fs: FleetState,
                                                                   server: Any) -> None:
    start_run(store, fs, ["a"])
    begin(fs, "a")
    fs.store_fanout(RUN, "a", 1, {})
    fs.delete_run(RUN)
    raw = fakeredis.FakeRedis(server=server)
    keys = fs.run_keys(RUN)
    left = sorted(k.decode() for k in raw.keys(f"{keys.base}*"))
    assert set(left) <= set(keys.data) and keys.run in left


# --- the store's retention ----------------------------------------------------------


def test_a_finished_run_expires_a_resumed_one_is_kept_and_the_index_forgets_expired_runs(
        store: RedisStore, fs: FleetState, server: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YAML_WORKFLOW_FINISHED_TTL", "600")
    raw = fakeredis.FakeRedis(server=server)
    keys = store.keys(RUN)
    start_run(store, fs, ["a"])
    store.record(RUN, step_event("a", "completed", result=1))
    # a completed run gets the TTL when it stops; a failed one would be kept for resume
    store.record(RUN, status_event("completed"))
    store.flush(RUN)
    assert all(0 < raw.ttl(k) <= 600 for k in keys.data if raw.exists(k))
    # when it runs again (a resume), it must not expire under it
    store.record(RUN, status_event("running"))
    assert all(raw.ttl(k) == -1 for k in keys.data if raw.exists(k))
    # when its keys expire, the run is gone and the index forgets it on the next listing
    store.expire_finished(RUN, 5)
    clock.advance(6)
    assert not store.exists(RUN)
    assert [r["workflow_id"] for r in store.list_runs()] == []
    assert raw.zscore(store.index_key, RUN) is None


# --- scripts ------------------------------------------------------------------------


class Recorder:
    """A fake client that notes the name of every command it is sent."""

    def __init__(self, server: fakeredis.FakeServer) -> None:
        self.commands: list[str] = []
        self.client = fakeredis.FakeRedis(server=server)
        original = self.client.execute_command

        def execute(*args: Any, **kwargs: Any) -> Any:
            self.commands.append(" ".join(str(a) for a in args[:2]).upper() if args[0] == "SCRIPT" else str(args[0]))
            return original(*args, **kwargs)

        self.client.execute_command = execute  # type: ignore[method-assign]


def test_scripts_are_sent_by_sha_and_loaded_once(store: RedisStore, server: Any) -> None:
    rec = Recorder(server)
    fs = FleetState(URL, PREFIX, client=rec.client)
    start_run(store, fs, ["a", "b", "c"])
    for step in ("a", "b", "c"):
        begin(fs, step)
        finish(fs, step, [])
    # every call is EVALSHA; a script's text crosses the wire once (begin, commit)
    assert "EVAL" not in rec.commands
    assert rec.commands.count("EVALSHA") >= 6
    assert rec.commands.count("SCRIPT LOAD") <= 2


def test_a_flushed_script_cache_is_refilled_on_the_next_call(store: RedisStore, fs: FleetState,
                                                               server: Any) -> None:
    start_run(store, fs, ["a", "b"])
    begin(fs, "a")
    finish(fs, "a", [("b", 1)])
    # when the server forgets every script (a restart, SCRIPT FLUSH)
    fakeredis.FakeRedis(server=server).script_flush()
    # then the next calls of both the fleet and the store still work
    assert begin(fs, "b").claimed
    assert finish(fs, "b", []).new
    store.record(RUN, status_event("completed"))
    assert store.load(RUN)["status"] == "completed"


def test_every_script_compiles_with_its_preludes(server: Any) -> None:
    client = fakeredis.FakeRedis(server=server)
    scripts = Scripts(client)
    for name in NAMES:
        assert client.script_load(source(name)) == getattr(scripts, name).sha
