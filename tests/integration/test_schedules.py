"""Schedules on a real fleet: real beat and worker processes, a real redis-server.

Assertions are about ticks (what each tick became, as recorded), never about how long
something took.  The beat lock TTL is 1 s here, so takeovers and outages stay short.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.beats import Beats
from tests.support.workers import Fleet, fleet_fixture, wait_for
from yaml_workflow.state.document import parse_iso
from yaml_workflow.state.stores.redis import Schedules

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]

fleet = fleet_fixture(workers=2, concurrency=3)
TTL = 1.0


def workflow(name: str, schedule: str, step: str = "{task: echo, inputs: {message: '{{ workflow.trigger.tick }}'}}") -> str:
    return f"name: {name}\nschedule: {schedule}\nsteps:\n  - {{name: a, {step[1:]}\n"


@pytest.fixture()
def beats(fleet: Fleet) -> Iterator[Beats]:
    group = Beats(fleet, lock_ttl=TTL)
    yield group
    group.stop()
    for name in group.store.definitions():
        group.store.remove(name)


def add(fleet: Fleet, tmp: Path, name: str, schedule: str, **kwargs: Any) -> None:
    path = tmp / f"{name}.yaml"
    path.write_text(workflow(name, schedule, **kwargs))
    proc = fleet.cli("schedule", "add", str(path))
    assert proc.returncode == 0, proc.stderr


def entries(store: Schedules, name: str) -> list[dict[str, Any]]:
    return store.log_between(name, 0, float("inf"))


def run_ticks(store: Schedules, name: str) -> list[float]:
    found = [parse_iso(e["tick"]) for e in entries(store, name) if e["outcome"] == "run"]
    return sorted(t for t in found if t is not None)


def check_ticks(store: Schedules, name: str, every: float, policy: str) -> list[dict[str, Any]]:
    """Every tick between the first and the last run ran once or is recorded missed, as
    the catch-up policy says; the missed gaps (returned) came before a beat took over."""
    runs = run_ticks(store, name)
    assert len(runs) == len(set(runs)), f"a tick ran twice: {runs}"
    gaps = [e for e in entries(store, name) if e["outcome"] == "missed"
            and parse_iso(e["tick"]) > runs[0]]  # type: ignore[operator]
    missed: set[float] = set()
    for gap in gaps:
        first, last, resumed = (parse_iso(gap[k]) for k in ("tick", "last", "resumed"))
        assert first is not None and last is not None and resumed is not None
        ticks = {first + i * every for i in range(int(round((last - first) / every)) + 1)}
        assert len(ticks) == gap["count"] and last < resumed, gap
        assert not ticks & set(runs), f"a missed tick ran: {gap}"
        after = last + every
        assert after in runs, f"the tick after a gap did not run: {gap}, {runs}"
        if policy == "latest":
            assert after < resumed, f"catchup latest: the latest missed tick must run: {gap}"
        elif policy == "none":
            assert after >= resumed, f"catchup none: a tick due before the takeover ran: {gap}"
        missed |= ticks
    if policy == "all":
        assert gaps == []
    expected = {runs[0] + i * every for i in range(int(round((runs[-1] - runs[0]) / every)) + 1)}
    assert expected == set(runs) | missed, f"ticks unaccounted for: {sorted(expected - set(runs) - missed)}"
    return gaps


def wait_runs(store: Schedules, name: str, count: int, after: float = 0.0, timeout: float = 60) -> None:
    wait_for(lambda: len([t for t in run_ticks(store, name) if t >= after]) >= count, timeout,
             f"{count} runs of {name} with ticks after {after}: {entries(store, name)[-5:]}")


def test_two_beats_make_one_run_per_tick_distinct_and_consecutive(fleet: Fleet, beats: Beats, tmp_path: Path) -> None:
    # given an every-2s schedule and two beats
    add(fleet, tmp_path, "pair", "{every: 2s, max_active_runs: 5}")
    both = [beats.start(), beats.start()]
    beats.wait_holder(both)
    # when they run for five ticks
    wait_runs(beats.store, "pair", 5)
    beats.stop()
    # then the runs' ticks are distinct and consecutive, each run recorded once with its tick
    ticks = run_ticks(beats.store, "pair")
    assert [b - a for a, b in zip(ticks, ticks[1:], strict=False)] == [2.0] * (len(ticks) - 1), ticks
    listing = fleet.cli("runs", "--schedule", "pair", "--format", "json", "--limit", "100")
    assert listing.returncode == 0, listing.stderr
    recorded = [r["trigger"] for r in json.loads(listing.stdout)["runs"]]
    assert all(t["type"] == "schedule" and t["name"] == "pair" for t in recorded)
    assert sorted(parse_iso(t["tick"]) for t in recorded) == ticks  # no tick has two runs
    # and the run sees its trigger in templates
    last = [e for e in entries(beats.store, "pair") if e["outcome"] == "run"][-1]
    status = fleet.cli("status", last["run_id"], "--format", "json")
    info = json.loads(status.stdout)
    assert info["trigger"] == {"type": "schedule", "name": "pair", "tick": last["tick"]}
    state = json.loads((Path(info["workspace"]) / ".workflow_metadata.json").read_text())
    assert state["execution_state"]["step_outputs"]["a"]["result"] == last["tick"]  # workflow.trigger.tick


def test_killing_the_lock_holder_hands_over_and_follows_catchup(fleet: Fleet, beats: Beats, tmp_path: Path) -> None:
    # given two beats firing an every-1s schedule (catchup latest, the default)
    add(fleet, tmp_path, "handover", "{every: 1s, max_active_runs: 10}")
    both = [beats.start(), beats.start()]
    holder = beats.wait_holder(both)
    wait_runs(beats.store, "handover", 2)
    # when the holder dies (kill -9: its lock stays until its TTL)
    beats.kill(holder)
    killed_at = time.time()
    other = beats.wait_holder([p for p in both if p is not holder])
    assert other.poll() is None
    # then the other fires the following ticks, and the ticks missed meanwhile follow `latest`
    wait_runs(beats.store, "handover", 3, after=killed_at + 2 * TTL)
    beats.stop()
    check_ticks(beats.store, "handover", 1.0, "latest")


def test_catchup_none_latest_all_after_an_outage(fleet: Fleet, beats: Beats, tmp_path: Path) -> None:
    # given three every-1s schedules, one per catch-up policy, fired by one beat
    for policy in ("none", "latest", "all"):
        add(fleet, tmp_path, f"up-{policy}", f"{{every: 1s, catchup: {policy}, max_active_runs: 20}}")
    first = beats.start()
    beats.wait_holder([first])
    for policy in ("none", "latest", "all"):
        wait_runs(beats.store, f"up-{policy}", 2)
    # when no beat runs for three lock TTLs after the lock expired
    beats.kill(first)
    wait_for(lambda: beats.holder() is None, 30, "the dead beat's lock to expire")
    time.sleep(3 * TTL)  # the outage itself
    restart = time.time()
    second = beats.start()
    beats.wait_holder([second])
    for policy in ("none", "latest", "all"):
        wait_runs(beats.store, f"up-{policy}", 2, after=restart + 1)
    beats.stop()
    # then each schedule caught up as its policy says
    none_gaps = check_ticks(beats.store, "up-none", 1.0, "none")
    latest_gaps = check_ticks(beats.store, "up-latest", 1.0, "latest")
    check_ticks(beats.store, "up-all", 1.0, "all")
    assert none_gaps and none_gaps[-1]["count"] >= 3, none_gaps  # at least the outage's ticks
    assert latest_gaps and latest_gaps[-1]["count"] >= 2, latest_gaps
    all_runs = run_ticks(beats.store, "up-all")
    assert len([t for t in all_runs if t < restart]) > len([t for t in run_ticks(beats.store, "up-none") if t < restart])


def test_max_active_runs_records_skips(fleet: Fleet, beats: Beats, tmp_path: Path) -> None:
    # given a schedule whose run waits for a gate, at most one at a time
    gate = tmp_path / "gate"
    step = ("{task: shell, inputs: {command: 'while [ ! -e " + str(gate) + " ]; do sleep 0.05; done'}}")
    add(fleet, tmp_path, "gated", "{every: 1s, max_active_runs: 1}", step=step)
    beats.start()
    # when ticks come while its first run still runs
    wait_for(lambda: len([e for e in entries(beats.store, "gated") if e["outcome"] == "skipped"]) >= 2, 60,
             "two skipped ticks")
    gate.touch()
    runs_before = [e for e in entries(beats.store, "gated") if e["outcome"] == "run"]
    assert len(runs_before) == 1
    first_run = runs_before[0]["run_id"]
    wait_runs(beats.store, "gated", 2)
    beats.stop()
    # then each skipped tick says why, naming the run that was still running
    skipped = [e for e in entries(beats.store, "gated") if e["outcome"] == "skipped"]
    assert all("max_active_runs 1" in e["reason"] and first_run in e["reason"] for e in skipped[:2]), skipped
    listed = fleet.cli("schedule", "list", "--recent", "20")
    assert listed.returncode == 0 and "skipped" in listed.stdout, listed.stdout


def test_run_now_pause_resume_remove(fleet: Fleet, beats: Beats, tmp_path: Path) -> None:
    add(fleet, tmp_path, "manual", "{cron: '0 3 * * *', timezone: Europe/Berlin, params: {}}")
    paused = fleet.cli("schedule", "pause", "manual")
    assert paused.returncode == 0 and "paused" in paused.stdout, paused.stderr
    # run-now fires a tick at once, paused or not, and prints the run a worker made of it
    now = fleet.cli("schedule", "run-now", "manual", "--timeout", "60")
    assert now.returncode == 0, now.stderr
    run_id = now.stdout.split()[0]
    listing = json.loads(fleet.cli("runs", "--schedule", "manual", "--format", "json").stdout)
    assert [r["run_id"] for r in listing["runs"]] == [run_id]
    assert listing["runs"][0]["trigger"]["tick"].endswith(("+01:00", "+02:00"))  # its zone's offset
    shown = json.loads(fleet.cli("schedule", "list", "--format", "json").stdout)
    assert shown[0]["paused"] is True and shown[0]["next_tick"] is None and shown[0]["last"]["run_id"] == run_id
    resumed = fleet.cli("schedule", "resume", "manual", "--format", "json")
    assert json.loads(resumed.stdout)["next_tick"].endswith("T03:00:00+01:00")
    assert fleet.cli("schedule", "remove", "manual").returncode == 0
    assert "no schedules" in fleet.cli("schedule", "list").stdout
    gone = fleet.cli("schedule", "run-now", "manual")
    assert gone.returncode == 2 and "no schedule named 'manual'" in gone.stderr


def test_schedule_add_refuses_what_submit_refuses(fleet: Fleet, tmp_path: Path) -> None:
    none = tmp_path / "plain.yaml"
    none.write_text("name: plain\nsteps:\n  - {name: a, task: noop}\n")
    proc = fleet.cli("schedule", "add", str(none))
    assert proc.returncode == 2 and "has no `schedule:`" in proc.stderr
    bad = tmp_path / "params.yaml"
    bad.write_text("name: p\nparams:\n  n: {type: integer, required: true}\nschedule: {every: 1h, params: {n: many}}\n"
                   "steps:\n  - {name: a, task: noop}\n")
    proc = fleet.cli("schedule", "add", str(bad))
    assert proc.returncode == 2 and "n" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
