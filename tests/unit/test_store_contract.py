"""One contract, every Store: memory://, file:// and redis:// (on fakeredis with Lua, and on
a real redis-server).

Each test is written once against the Store interface; the expected document is always
``document.replay`` of the same transitions, the single definition of what they do.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yaml_workflow.exceptions import RunNotFound
from yaml_workflow.state.document import (
    HOST,
    history_event,
    now_iso,
    replay,
    run_header,
    status_event,
    step_event,
    summary,
)
from yaml_workflow.state.lease import Lease
from yaml_workflow.state.store import Store
from yaml_workflow.state.stores.json_file import JsonFileStore
from yaml_workflow.state.stores.memory import MemoryStore
from yaml_workflow.state.stores.redis import RedisStore

KINDS = ["memory", "file", "fakeredis", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each kind (Redis: the session server, a prefix of our own;
    fakeredis: a server of its own, the same Lua scripts run by lupa)."""
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "file":
        made = JsonFileStore("file://", root=tmp_path)
    elif request.param == "fakeredis":
        made = RedisStore("redis://fakeredis/0", prefix="ywfc", client=fakeredis.FakeRedis(decode_responses=True))
    else:
        server = request.getfixturevalue("redis_server")
        made = RedisStore(server.url, prefix=f"ywfc{uuid.uuid4().hex[:10]}")
    yield made
    made.close()


class Clock:
    """Strictly increasing transition times (the file store orders journals by time)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def header(root: Path, run_id: str, start: float, **extra: Any) -> dict[str, Any]:
    """A run transition like the executors write."""
    return {
        "t": "run", "at": start, "workflow_id": run_id, "name": "contract", "start_time": now_iso(start),
        "status": "running", "workflow_file": "wf.yaml", "workspace": str(root / run_id),
        "run_number": 1, "params": {"who": "Ada", "n": 3}, "fingerprints": {},
        "workflow": {"name": "contract", "steps": [{"name": "a", "task": "echo"}]},
        "plan": {"order": ["a", "b", "c"]}, "mode": "local",
        "options": {"flow": None, "skip_steps": []}, **extra,
    }


def at(event: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """The event stamped with the next tick."""
    return {**event, "at": clock()}


def lifecycle(clock: Clock) -> list[dict[str, Any]]:
    """Every transition kind, including a step that runs again after it finished."""
    return [at(e, clock) for e in [
        history_event("start"),
        step_event("a", "running", attempt=1, fingerprint="fa", started_at=clock(), host=HOST, pid=1),
        {"t": "progress", "step": "a", "progress": {"done": 1, "total": 4, "percent": 25.0}},
        step_event("a", "completed", result={"rows": [], "nested": {"x": [1, 2.5]}, "t": 1712345678.123456},
                   attempt=1, finished_at=clock(), duration=0.123456),
        {"t": "var", "key": "answer", "value": {"n": 42, "empty": []}},
        step_event("b", "running", attempt=1, fingerprint="fb"),
        step_event("b", "retrying", attempt=1, max_attempts=3, next_delay=0.5, error="boom", error_type="E"),
        step_event("b", "running", attempt=2),
        step_event("b", "failed", attempt=2, error="boom again", error_type="E", error_message="it broke",
                   result={"return_code": 1, "stdout": "", "stderr": "é"}),
        status_event("failed", failed_step={"step_name": "b", "error": "boom again"}),
        {"t": "flag", "flag": "mirror_write_failed", "value": "disk full"},
        {"t": "reset", "steps": ["b"]},
        {"t": "params", "params": {"who": "Bob", "n": 4}},
        status_event("running", failed_step=None),
        step_event("a", "running", attempt=2, fingerprint="fa2"),  # a fresh record: a was done
        step_event("a", "completed", result="second", attempt=2),
        step_event("b", "running", attempt=1),
        step_event("b", "completed", result=None, attempt=1),
        step_event("c", "skipped", reason="condition was false"),
        {"t": "progress", "step": "d", "progress": {"done": 0}},  # no record yet: starts one
        status_event("completed", current_step=None),
    ]]


class TestStoreContract:
    """What every Store promises."""

    def test_record_then_load_equals_replay_after_every_transition(self, store: Store, tmp_path: Path) -> None:
        # given a run
        clock = Clock()
        head = header(tmp_path, "run-a", clock())
        store.create_run(head)
        assert store.load("run-a") == replay([head])
        # when each transition is recorded, then the stored document is the replayed one
        done = [head]
        for event in lifecycle(clock):
            store.record("run-a", event)
            done.append(event)
            assert store.load("run-a") == replay(done), f"after {event}"
        store.flush("run-a")
        assert store.load("run-a") == replay(done)

    def test_record_many_is_the_same_as_one_by_one(self, store: Store, tmp_path: Path) -> None:
        clock = Clock()
        head = header(tmp_path, "run-m", clock())
        events = lifecycle(clock)
        store.create_run(head)
        store.record_many("run-m", events)
        assert store.load("run-m") == replay([head, *events])

    def test_a_second_run_transition_restarts_the_run_but_keeps_its_history(self, store: Store, tmp_path: Path) -> None:
        clock = Clock()
        head = header(tmp_path, "run-r", clock())
        events = lifecycle(clock)[:6]
        again = header(tmp_path, "run-r", clock(), params={"who": "Eve"})
        store.create_run(head)
        store.record_many("run-r", [*events, again])
        expected = replay([head, *events, again])
        assert expected["history"] and not expected["execution_state"]["step_outputs"]
        assert store.load("run-r") == expected

    def test_exists_and_unknown_runs(self, store: Store, tmp_path: Path) -> None:
        store.create_run(header(tmp_path, "known", time.time()))
        assert store.exists("known")
        assert not store.exists("unknown")
        with pytest.raises(RunNotFound):
            store.load("unknown")
        with pytest.raises(RunNotFound):
            store.record("unknown", status_event("failed"))
        assert not store.exists("unknown")  # the refused write left nothing behind

    def test_list_runs_newest_first_with_summaries(self, store: Store, tmp_path: Path) -> None:
        # given three runs started one after another (created out of order)
        for run_id, start in (("r2", 2_000.0), ("r1", 1_000.0), ("r3", 3_000.0)):
            store.create_run(header(tmp_path, run_id, 1_700_000_000.0 + start))
        store.record("r2", step_event("a", "completed", result=1))
        store.record("r2", step_event("b", "skipped", reason="x"))
        store.record("r2", step_event("c", "failed", error="e"))
        # when listed, then newest first, each row the summary of the run's document
        rows = store.list_runs()
        assert [r["workflow_id"] for r in rows] == ["r3", "r2", "r1"]
        # (a store may add figures of its own: Redis adds steps_total, hosts and trigger)
        assert [{k: r[k] for k in summary({})} for r in rows] == [summary(store.load(r["workflow_id"])) for r in rows]
        assert rows[1]["steps_done"] == 2
        assert [r["workflow_id"] for r in store.list_runs(limit=2)] == ["r3", "r2"]

    def test_delete_run(self, store: Store, tmp_path: Path) -> None:
        for run_id in ("keep", "drop"):
            store.create_run(header(tmp_path, run_id, time.time()))
            store.record(run_id, step_event("a", "completed", result=run_id))
        store.delete_run("drop")
        assert not store.exists("drop")
        with pytest.raises(RunNotFound):
            store.load("drop")
        assert [r["workflow_id"] for r in store.list_runs()] == ["keep"]
        assert store.load("keep")["execution_state"]["step_outputs"]["a"]["result"] == "keep"

    def test_restore_run_recreates_the_whole_document(self, store: Store, tmp_path: Path) -> None:
        # given a document with every part filled in (including a retry entry of a failed step)
        clock = Clock()
        events = [header(tmp_path, "orig", clock())] + lifecycle(clock)[:11]
        doc = replay(events)
        doc["workflow_id"], doc["workspace"] = "restored", str(tmp_path / "restored")
        assert doc["execution_state"]["retry_state"] and doc["history"] and doc["flags"]
        # when restored into the store, then it loads back equal
        store.restore_run(doc)
        assert store.load("restored") == doc
        # and it carries on like any run
        more = at(step_event("c", "completed", result=3), clock)
        store.record("restored", more)
        assert store.load("restored") == replay([more], doc)

    def test_restore_over_an_existing_run_replaces_it(self, store: Store, tmp_path: Path) -> None:
        if store.is_mirror:
            pytest.skip("the JSON file store is the mirror that restores are made from")
        clock = Clock()
        head = header(tmp_path, "twice", clock())
        store.create_run(head)
        store.record_many("twice", lifecycle(clock))
        fresh = replay([head, at(step_event("z", "completed", result="z"), clock)])
        store.restore_run(fresh)
        assert store.load("twice") == fresh
        assert store.load("twice") == replay(run_events(fresh))

    # --- leases ----------------------------------------------------------------------

    def test_lease_acquire_refuse_renew_release(self, store: Store, tmp_path: Path) -> None:
        store.create_run(header(tmp_path, "leased", time.time()))
        mine = Lease("tok-1", "host-a", 111, time.time() + 30)
        theirs = Lease("tok-2", "host-b", 222, time.time() + 30)
        assert store.acquire_lease("leased", mine) is None
        assert store.lease_holder("leased") == mine
        # another live holder is refused and told who holds it
        assert store.acquire_lease("leased", theirs) == mine
        # taking it again with our own token is fine
        assert store.acquire_lease("leased", mine) is None
        # renew: only the holder
        renewed = Lease("tok-1", "host-a", 111, time.time() + 60)
        assert store.renew_lease("leased", renewed) is True
        assert store.lease_holder("leased") == renewed
        assert store.renew_lease("leased", theirs) is False
        # release: only the holder's token counts
        store.release_lease("leased", "tok-2")
        assert store.lease_holder("leased") == renewed
        store.release_lease("leased", "tok-1")
        assert store.lease_holder("leased") is None
        assert store.acquire_lease("leased", theirs) is None

    def test_an_expired_lease_is_free_but_still_shown(self, store: Store, tmp_path: Path) -> None:
        store.create_run(header(tmp_path, "stale", time.time()))
        old = Lease("tok-old", "elsewhere", 1, time.time() - 1)
        assert store.acquire_lease("stale", old) is None
        assert store.lease_holder("stale") == old  # expired, still named
        new = Lease("tok-new", "host-b", 2, time.time() + 30)
        assert store.acquire_lease("stale", new) is None
        assert store.lease_holder("stale") == new

    def test_a_dead_process_on_this_host_holds_nothing(self, store: Store, tmp_path: Path) -> None:
        # given a lease held (unexpired) by a process of this host that has exited
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait(timeout=30)
        store.create_run(header(tmp_path, "orphan", time.time()))
        dead = Lease("tok-dead", HOST, child.pid, time.time() + 3600)
        assert store.acquire_lease("orphan", dead) is None
        # when another process asks, then it gets the lease at once
        alive = Lease("tok-alive", HOST, 999_999_999, time.time() + 30)
        assert store.acquire_lease("orphan", alive) is None
        assert store.lease_holder("orphan") == alive

    # --- any sequence of step transitions --------------------------------------------

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(steps=st.lists(st.tuples(
        st.sampled_from(["a", "b", "x.y"]),
        st.sampled_from(["running", "retrying", "completed", "failed", "skipped", "progress", "reset"]),
        st.one_of(st.none(), st.integers(-3, 2**60), st.floats(allow_nan=False), st.text(max_size=5),
                  st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.booleans(), max_size=2)),
    ), max_size=12))
    def test_any_step_sequence_matches_replay(self, store: Store, tmp_path: Path, steps: list[Any]) -> None:
        clock = Clock()
        run_id = f"h{uuid.uuid4().hex[:12]}"
        head = header(tmp_path, run_id, clock())
        events: list[dict[str, Any]] = []
        for name, kind, value in steps:
            if kind == "progress":
                events.append({"t": "progress", "step": name, "progress": value, "at": clock()})
            elif kind == "reset":
                events.append({"t": "reset", "steps": [name], "at": clock()})
            else:
                fields = {"result": value} if kind in ("completed", "failed") else {"error": str(value)}
                events.append(at(step_event(name, kind, attempt=len(events), **fields), clock))
        store.create_run(head)
        store.record_many(run_id, events)
        assert store.load(run_id) == replay([head, *events])


def run_events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The transitions rebuilding ``doc`` (what the default restore_run records)."""
    from yaml_workflow.state.store import rebuild_events

    return [run_header(doc), *rebuild_events(doc)]
