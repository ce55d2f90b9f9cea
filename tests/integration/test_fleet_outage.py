"""A Redis outage is ridden out: workers stay up, clients reconnect, no step runs twice
because of it (real redis-server restarted under real workers).

Once each here; ``make soak`` repeats them 20 times (tests/soak/test_fleet_outage_soak.py).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.witness import count, finished, state, step, submit, submit_waiting, witness
from tests.support.workers import Fleet, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]


def chain(n: int, body: str = "sleep 0.3") -> str:
    return "name: outage\nsteps:\n" + "".join(step(f"s{i:02d}", body) for i in range(n))


def restarts_during_a_run(fleet: Fleet, tmp: Path, times: int) -> tuple[str, str, list[int]]:
    """Restart Redis (AOF) ``times`` times under a 30-step run; its outcome and the pids."""
    pids = [p.pid for p in fleet.procs]
    waiting = submit_waiting(fleet, tmp, chain(30))
    wait_for(lambda: count(tmp, "s02", "end"), 60, "the run to get going")
    for _ in range(times):
        fleet.server.restart(appendonly=True)
        time.sleep(1.0)
    out, err = waiting.communicate(timeout=180)
    assert waiting.returncode == 0, err
    return out, err, pids


def test_redis_restarted_five_times_with_aof_during_one_run(tmp_path: Path) -> None:
    # given two workers with the shipped settings and a Redis that keeps an AOF
    fleet = Fleet(workers=2, concurrency=1, appendonly=True).start()
    try:
        out, err, pids = restarts_during_a_run(fleet, tmp_path, 5)
        # then no worker process went away, and the follower said it lost Redis and found it
        assert [p.pid for p in fleet.procs] == pids and all(p.poll() is None for p in fleet.procs)
        assert all("Unrecoverable error" not in fleet.log(i) for i in range(2))
        assert "lost Redis" in err and "reconnected to Redis" in err, err
    finally:
        fleet.stop()
    # every step recorded once; side effects at most twice, and only for steps in flight
    starts = Counter(w[0] for w in witness(tmp_path) if w[1] == "start")
    assert set(starts) == {f"s{i:02d}" for i in range(30)}
    assert max(starts.values()) <= 2 and sum(v - 1 for v in starts.values()) <= 5
    records = state({"workspace": str(next((tmp_path / "runs").glob("outage_run_*")))})
    assert all(r["status"] == "completed" for r in records["execution_state"]["step_outputs"].values())


def test_redis_restarted_without_persistence_the_run_is_lost_and_resume_finishes_it(tmp_path: Path) -> None:
    fleet = Fleet(workers=2, concurrency=1, env={"YAML_WORKFLOW_CLAIM_TTL": "2"}).start()
    try:
        pids = [p.pid for p in fleet.procs]
        waiting = submit_waiting(fleet, tmp_path, chain(10, "sleep 0.5"))
        run_id = waiting.stdout.readline().strip() if waiting.stdout else ""
        wait_for(lambda: count(tmp_path, "s02", "end"), 60, "the run to get going")
        fleet.server.restart(appendonly=False)  # Redis comes back empty
        out, err = waiting.communicate(timeout=120)
        # then the follower ends with exit 3 and says how to rebuild the run
        assert waiting.returncode == 3, err
        assert f"the store lost run {run_id}" in err and f"submit --resume {run_id}" in err
        assert [p.pid for p in fleet.procs] == pids and all(p.poll() is None for p in fleet.procs)
        status = fleet.cli("status", run_id, "--base-dir", str(tmp_path / "runs"))
        assert status.returncode == 0 and "no longer has this run" in status.stdout, status.stderr
        resumed = fleet.cli("submit", "--resume", run_id, "--base-dir", str(tmp_path / "runs"), "--wait",
                            "-q", env={"T": str(tmp_path)}, cwd=tmp_path, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        fleet.stop()
    assert all(count(tmp_path, f"s{i:02d}", "end") >= 1 for i in range(10))


def test_submit_wait_rides_out_a_ten_second_outage(tmp_path: Path) -> None:
    fleet = Fleet(workers=1, concurrency=1, appendonly=True).start()
    try:
        waiting = submit_waiting(fleet, tmp_path, chain(8, "sleep 0.5"))
        wait_for(lambda: count(tmp_path, "s01", "end"), 60, "the run to get going")
        fleet.server.kill()
        time.sleep(10)
        fleet.server.start()
        out, err = waiting.communicate(timeout=180)
    finally:
        fleet.stop()
    assert waiting.returncode == 0, err
    assert err.count("lost Redis") == 1 and err.count("reconnected to Redis") == 1, err


def test_an_outage_of_three_claim_ttls_runs_no_step_twice(tmp_path: Path) -> None:
    # given steps longer than the claim TTL, so claims expire while Redis is away
    ttl = 2.0
    fleet = Fleet(workers=2, concurrency=1, appendonly=True,
                  env={"YAML_WORKFLOW_CLAIM_TTL": str(ttl)}).start()
    try:
        doc = submit(fleet, tmp_path, "name: long\nsteps:\n" + "".join(step(f"s{i}", "sleep 3") for i in range(3)))
        wait_for(lambda: count(tmp_path, "s1", "start"), 60, "the middle step to start")
        fleet.server.kill()
        time.sleep(3 * ttl)
        fleet.server.start()
        assert wait_for(lambda: finished(doc), 120, "the run to end") == "completed"
    finally:
        fleet.stop()
    starts = Counter(w[0] for w in witness(tmp_path) if w[1] == "start")
    assert starts == {"s0": 1, "s1": 1, "s2": 1}, witness(tmp_path)
