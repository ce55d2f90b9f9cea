"""Faults on a real fleet: Redis restarted (with and without AOF), a worker stopped with
SIGTERM, retry delays past the visibility timeout, the broker lost during a retry
countdown, two resumes of one run at once.

Every step writes witness lines (``step event pid ppid time``) to ``$T/w``; the checks
are made on those lines and on the final state, never on timing alone.  Waits are
bounded; each test stays within about a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.rounds import rounds as repetitions
from tests.support.witness import count, finished, state, step, submit, witness
from tests.support.workers import Fleet, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]

# Short figures: each fault recovers in seconds.
SHORT = {"YAML_WORKFLOW_VISIBILITY_TIMEOUT": "8", "YAML_WORKFLOW_STEP_TIMEOUT": "4",
         "YAML_WORKFLOW_CLAIM_TTL": "3"}


def test_redis_restarted_with_aof_mid_run_the_run_completes(tmp_path: Path) -> None:
    fleet = Fleet(workers=1, concurrency=1, env=SHORT, appendonly=True)
    try:
        fleet.start()
        wf = "name: aof\nsteps:\n" + step("a") + step("b", "sleep 2") + step("c")
        doc = submit(fleet, tmp_path, wf)
        wait_for(lambda: count(tmp_path, "b", "start"), 20, "b to start")
        fleet.server.restart(appendonly=True)  # kill -9 and start again from the AOF
        assert wait_for(lambda: finished(doc), 45, "the run to end") == "completed"
    finally:
        fleet.stop()
    steps = state(doc)["execution_state"]["step_outputs"]
    assert [steps[n]["status"] for n in "abc"] == ["completed"] * 3
    assert count(tmp_path, "a", "start") == 1 and count(tmp_path, "c", "start") == 1


def test_redis_restarted_empty_status_says_lost_and_resume_finishes(tmp_path: Path) -> None:
    fleet = Fleet(workers=1, concurrency=1, env=SHORT)
    try:
        fleet.start()
        wf = "name: lost\nsteps:\n" + step("a") + step("b", "sleep 2") + step("c")
        doc = submit(fleet, tmp_path, wf)
        wait_for(lambda: count(tmp_path, "b", "start"), 20, "b to start")
        fleet.server.restart(appendonly=False)  # no persistence: Redis comes back empty
        wait_for(lambda: count(tmp_path, "b", "end"), 20, "b to end")
        time.sleep(1.0)  # the worker's commit meets the empty Redis: it enqueues nothing
        base = ["--base-dir", str(tmp_path / "runs")]
        status = fleet.cli("status", doc["run_id"], *base, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "no longer has this run" in status.stdout
        assert count(tmp_path, "c", "start") == 0  # nothing ran on the lost state
        # The run's exported environment was lost with Redis: the resumer's is taken.
        proc = fleet.cli("submit", "--resume", doc["run_id"], *base, "--wait", "--format", "json",
                         env={"T": str(tmp_path)}, cwd=tmp_path, timeout=60)
        assert proc.returncode == 0, proc.stderr
    finally:
        fleet.stop()
    # a and b were recorded in the JSON mirror: not run again; c ran once.
    assert [count(tmp_path, n, "start") for n in "abc"] == [1, 1, 1]
    assert state(doc)["status"] == "completed"


def _worker_of(fleet: Fleet, child: int) -> int:
    """Which worker's main process is the parent of pool process ``child``."""
    ppid = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return next(i for i, p in enumerate(fleet.procs) if p.pid == ppid)


def test_sigterm_hands_the_running_step_back_within_the_soft_shutdown(tmp_path: Path) -> None:
    soft = 2.0
    # Claims and visibility timeout left long: a hand-back by either would take 30 s+.
    fleet = Fleet(workers=2, concurrency=1, env={"YAML_WORKFLOW_SOFT_SHUTDOWN_TIMEOUT": str(soft),
                                                "YAML_WORKFLOW_STEP_TIMEOUT": "60",
                                                "YAML_WORKFLOW_VISIBILITY_TIMEOUT": "600"})
    try:
        fleet.start()
        wf = "name: term\nsteps:\n" + step("long", "sleep 8") + step("after")
        doc = submit(fleet, tmp_path, wf)
        first = wait_for(lambda: [w for w in witness(tmp_path) if w[:2] == ["long", "start"]], 20,
                         "the long step to start")[0]
        victim = _worker_of(fleet, int(first[3]))
        sent = time.time()
        os.kill(fleet.procs[victim].pid, signal.SIGTERM)  # what docker stop / Kubernetes send
        again = wait_for(lambda: [w for w in witness(tmp_path) if w[:2] == ["long", "start"]][1:],
                         soft + 10, "the long step to start on the other worker")[0]
        handed_back = float(again[4]) - sent
        assert handed_back <= soft + 5, handed_back
        assert _worker_of(fleet, int(again[3])) != victim
        assert wait_for(lambda: finished(doc), 30, "the run to end") == "completed"
    finally:
        fleet.stop()
    assert count(tmp_path, "after", "start") == 1
    assert state(doc)["execution_state"]["step_outputs"]["long"]["status"] == "completed"


def test_retry_delay_longer_than_the_visibility_timeout_runs_each_attempt_once(tmp_path: Path) -> None:
    fleet = Fleet(workers=2, concurrency=1, env=SHORT)
    try:
        fleet.start()
        flaky = 'n=$(cat "$T/n" 2>/dev/null || echo 0); echo $((n+1)) > "$T/n"; test $n -ge 1 || exit 1'
        wf = ("name: slowretry\nsteps:\n"
              + step("flaky", flaky, retry="{max_attempts: 2, delay: 12}") + step("after"))
        started = time.monotonic()
        doc = submit(fleet, tmp_path, wf, "--wait", "--timeout", "50")
        took = time.monotonic() - started
    finally:
        fleet.stop()
    assert doc["status"] == "success", doc
    assert took >= 12  # the delay was honoured, in pieces below the visibility timeout
    assert count(tmp_path, "flaky", "start") == 2  # attempt 1 and 2, never a copy
    assert count(tmp_path, "after", "start") == 1


def test_broker_lost_during_a_retry_countdown_the_step_is_not_dropped(tmp_path: Path) -> None:
    fleet = Fleet(workers=1, concurrency=1, env=SHORT, appendonly=True)
    try:
        fleet.start()
        flaky = 'n=$(cat "$T/n" 2>/dev/null || echo 0); echo $((n+1)) > "$T/n"; test $n -ge 1 || exit 1'
        wf = ("name: brokerloss\nsteps:\n"
              + step("flaky", flaky, retry="{max_attempts: 2, delay: 6}") + step("after"))
        doc = submit(fleet, tmp_path, wf)
        wait_for(lambda: count(tmp_path, "flaky", "start"), 20, "the first attempt")
        time.sleep(0.5)  # inside the 6 s countdown
        fleet.server.kill()
        time.sleep(3)
        fleet.server.start()  # same port and directory: the AOF brings the queues back
        # The worker holding the countdown message may die on the lost connection (kombu
        # fails restoring it on close); a supervisor starts it again, as systemd or
        # Kubernetes would.  The message, unacked in the AOF, comes back by Celery's own
        # sweep after the visibility timeout.
        time.sleep(1)
        for i, proc in enumerate(fleet.procs):
            if proc.poll() is not None:
                fleet.start_worker(i)
        assert wait_for(lambda: finished(doc), 40, "the run to end") == "completed"
    finally:
        fleet.stop()
    assert count(tmp_path, "flaky", "start") == 2
    assert count(tmp_path, "after", "start") == 1


def test_two_resumes_at_once_one_proceeds_the_other_is_refused(tmp_path: Path) -> None:
    rounds = repetitions(5, 20)
    fleet = Fleet(workers=1, concurrency=1, env=SHORT)
    try:
        fleet.start()
        # `b` always fails after a second: each resume runs it once and the run fails again.
        wf = "name: twice\nsteps:\n" + step("a") + step("b", "sleep 1; exit 1")
        doc = submit(fleet, tmp_path, wf, "--wait")
        run_id = doc["run_id"]
        argv = [sys.executable, "-m", "yaml_workflow", "submit", "--resume", run_id]
        # Every round runs to its end: each wait below is on a condition, so a slow
        # machine makes the test longer, never failed.
        for i in range(rounds):
            procs = [subprocess.Popen(argv, env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=tmp_path) for _ in range(2)]
            outs = [p.communicate(timeout=60) for p in procs]
            codes = sorted(p.returncode for p in procs)
            assert codes == [0, 2], (codes, outs)
            loser = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode == 2)
            assert len(loser.strip().splitlines()) == 1 and run_id in loser, loser
            wait_for(lambda n=i + 2: finished(doc) == "failed" and count(tmp_path, "b", "start") == n,
                     15, f"round {i} to fail again")
    finally:
        fleet.stop()
    assert count(tmp_path, "a", "start") == 1
    assert count(tmp_path, "b", "start") == rounds + 1  # once per resume: never scheduled twice
    history = [h for h in state(doc)["history"] if h["event"] == "resume"]
    assert len(history) == rounds
