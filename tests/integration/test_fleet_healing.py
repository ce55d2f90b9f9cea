"""A dead worker costs seconds, not the visibility timeout (real redis-server, real workers).

Each fault runs once here, with a bound of three times its nominal recovery time; the
SIGKILL of a whole worker uses the shipped defaults (visibility timeout 30 s, claim TTL
15 s), the others a claim TTL of 2 s.  ``make soak`` runs each of them 20 times with the
defaults and reports the median and the maximum recovery time
(tests/soak/test_fleet_healing_soak.py).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.witness import count, finished, state, step, submit, witness, worker_of
from tests.support.workers import Fleet, wait_for
from yaml_workflow.settings import get_settings

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]

# The recovery the issue promises with the shipped defaults, and the test's bound.
NOMINAL = 60.0
SHORT = {"YAML_WORKFLOW_CLAIM_TTL": "2", "YAML_WORKFLOW_VISIBILITY_TIMEOUT": "4",
         "YAML_WORKFLOW_RESTORE_INTERVAL": "1"}


def chain(n: int, body: str = "sleep 0.3") -> str:
    return "name: chain\nsteps:\n" + "".join(step(f"s{i:02d}", body) for i in range(n))


def _status(fleet: Fleet, run_id: str) -> dict[str, Any]:
    import json

    proc = fleet.cli("status", run_id, "--format", "json")
    return dict(json.loads(proc.stdout)) if proc.returncode == 0 else {}


def kill_the_worker_running(fleet: Fleet, tmp: Path, name: str) -> tuple[int, float]:
    """SIGKILL the whole worker (main and pool processes) that runs step ``name`` now."""
    started = wait_for(lambda: [w for w in witness(tmp) if w[:2] == [name, "start"]], 60, f"{name} to start")
    index = worker_of(fleet, int(started[0][3]))  # the shell's parent is the pool process
    fleet.kill(index)
    return index, time.time()


def sigkill_whole_worker_mid_step(fleet: Fleet, tmp: Path) -> float:
    """The fault, on a started fleet: returns the recovery time (kill -> killed step done)."""
    doc = submit(fleet, tmp, chain(30))
    _, killed_at = kill_the_worker_running(fleet, tmp, "s03")
    stalled: list[str] = []

    def done() -> str | None:
        status = _status(fleet, doc["run_id"])
        stalled.extend(row["stalled"] for row in status.get("steps", []) if row.get("stalled"))
        return finished(doc)

    assert wait_for(done, 3 * NOMINAL, "the run to end after the kill", interval=0.5) == "completed"
    ends = [float(w[4]) for w in witness(tmp) if w[:2] == ["s03", "end"]]
    recovery = max(ends) - killed_at
    # the killed step ran at most twice and is recorded once; every other step ran once
    assert count(tmp, "s03", "start") <= 2
    assert all(count(tmp, f"s{i:02d}", "start") == 1 for i in range(30) if i != 3), witness(tmp)
    records = state(doc)["execution_state"]["step_outputs"]
    assert all(records[f"s{i:02d}"]["status"] == "completed" for i in range(30))
    assert recovery < NOMINAL, f"recovered in {recovery:.1f}s"
    # while it waited, status said which worker went silent, instead of an ETA
    assert any(re.match(r"stalled \(worker w\d-\w+@\S+: no heartbeat for \d+ s\)", s) for s in stalled), stalled
    return recovery


def test_whole_worker_sigkilled_mid_step_with_the_default_settings(tmp_path: Path) -> None:
    # given two workers with the settings the README ships, and nothing tuned
    assert get_settings().visibility_timeout == 30 and get_settings().claim_ttl == 15
    fleet = Fleet(workers=2, concurrency=1).start()
    try:
        # when the worker running step s03 dies with all its processes
        recovery = sigkill_whole_worker_mid_step(fleet, tmp_path)
    finally:
        fleet.stop()
    # then the run completed within a minute of the death (the figure goes to the README)
    print(f"recovery after a whole-worker SIGKILL with defaults: {recovery:.1f}s")


def test_a_killed_worker_s_reserved_and_countdown_messages_run_elsewhere(tmp_path: Path) -> None:
    # given one worker that runs a slow step and holds a retry countdown of another
    fleet = Fleet(workers=2, concurrency=2, env=SHORT).start()
    try:
        fleet.kill(1)  # start with one worker, so it takes everything
        flaky = 'if [ ! -f "$T/flaky.once" ]; then touch "$T/flaky.once"; exit 1; fi'
        wf = ("name: held\nsteps:\n  - {name: root, task: noop}\n"
              + step("slow", "sleep 3", depends_on="[root]")
              + step("flaky", flaky, depends_on="[root]", retry="{max_attempts: 3, delay: 2}")
              + step("last", depends_on="[slow, flaky]"))
        doc = submit(fleet, tmp_path, wf)
        wait_for(lambda: count(tmp_path, "slow", "start") and count(tmp_path, "flaky", "start"), 30,
                 "the slow step to run and the flaky one to fail once")
        fleet.start_worker(1)
        fleet.wait_ready(count=2)
        killed_at = time.time()
        fleet.kill(0)  # it holds `slow` running and `flaky`'s countdown
        assert wait_for(lambda: finished(doc), 3 * 20, "the run to end") == "completed"
        took = time.time() - killed_at
    finally:
        fleet.stop()
    assert count(tmp_path, "slow", "end") >= 1 and count(tmp_path, "slow", "start") <= 2
    assert count(tmp_path, "last", "start") == 1
    print(f"reserved and countdown messages of a killed worker ran elsewhere in {took:.1f}s")


BATCH = """
name: items
steps:
  - name: work
    task: batch
    inputs:
      items: {items}
      chunk_size: 40
      max_workers: 2
      task:
        task: shell
        inputs:
          command: 'echo "{{{{ item }}}} start $(date +%s.%N) $PPID" >> "$T/items"; sleep 0.2; echo "{{{{ item }}}} end $(date +%s.%N) $PPID" >> "$T/items"'
"""


def test_sigkill_mid_batch_keeps_the_items_finished_before_the_death(tmp_path: Path) -> None:
    # given a batch of 40 items in one chunk, two at a time
    fleet = Fleet(workers=2, concurrency=1, env=SHORT).start()
    try:
        doc = submit(fleet, tmp_path, BATCH.format(items=list(range(40))))
        lines = tmp_path / "items"
        wait_for(lambda: lines.exists() and lines.read_text().count(" end ") >= 12, 60, "12 items done")
        # when the worker running the chunk dies (its pool process is each item's parent)
        pool = int(lines.read_text().splitlines()[0].split()[3])
        killed_at = time.time()
        fleet.kill(worker_of(fleet, pool))
        assert wait_for(lambda: finished(doc), 3 * 20, "the run to end") == "completed"
    finally:
        fleet.stop()
    events = [line.split() for line in (tmp_path / "items").read_text().splitlines()]
    ends = {int(e[0]): float(e[2]) for e in events if e[1] == "end"}
    starts: dict[int, int] = {}
    for e in events:
        if e[1] == "start":
            starts[int(e[0])] = starts.get(int(e[0]), 0) + 1
    assert set(ends) == set(range(40))
    # items that finished more than 0.5 s before the death never ran again
    early = [i for i, at in ends.items() if at < killed_at - 0.5 and starts[i] > 1]
    finished_early = [i for i, at in ends.items() if at < killed_at - 0.5]
    assert finished_early and early == [], (finished_early, early)
    result = state(doc)["execution_state"]["step_outputs"]["work"]["result"]
    assert result["stats"]["processed"] == 40 and result["stats"]["failed"] == 0


def test_a_backlog_of_500_queued_steps_is_not_mistaken_for_lost_work(tmp_path: Path) -> None:
    # given 500 steps queued behind two busy workers, and a visibility timeout of 3 s
    steps = "".join(
        f"  - {{name: p{i:03d}, task: python_code, depends_on: [root], inputs: {{code: "
        f"\"open(__import__('os').environ['T'] + '/w', 'a').write('p{i:03d} start\\\\n'); result = 1\"}}}}\n"
        for i in range(500))
    fleet = Fleet(workers=2, concurrency=2, env={**SHORT, "YAML_WORKFLOW_VISIBILITY_TIMEOUT": "3"}).start()
    try:
        doc = submit(fleet, tmp_path, "name: backlog\nsteps:\n  - {name: root, task: noop}\n" + steps)
        assert wait_for(lambda: finished(doc), 300, "the 500 steps to run") == "completed"
    finally:
        fleet.stop()
    # then each ran exactly once: queued messages were never handed out twice
    starts = [w[0] for w in witness(tmp_path)]
    assert len(starts) == 500 and len(set(starts)) == 500


def test_a_step_five_times_longer_than_the_visibility_timeout_runs_once(tmp_path: Path) -> None:
    fleet = Fleet(workers=2, concurrency=1, env={"YAML_WORKFLOW_VISIBILITY_TIMEOUT": "2",
                                                  "YAML_WORKFLOW_CLAIM_TTL": "2",
                                                  "YAML_WORKFLOW_RESTORE_INTERVAL": "1"}).start()
    try:
        doc = submit(fleet, tmp_path, "name: long\nsteps:\n" + step("long", "sleep 10") + step("after"))
        assert wait_for(lambda: finished(doc), 60, "the run to end") == "completed"
    finally:
        fleet.stop()
    assert count(tmp_path, "long", "start") == 1 and count(tmp_path, "after", "start") == 1


SURVIVOR = """
name: survivor
steps:
  - name: hold
    task: shell
    inputs:
      command: |
        if [ -f "$T/first" ]; then
          p=$(cat "$T/sleep.pid")
          if [ -d /proc/$p ] && ! grep -q '^State:[[:space:]]*Z' /proc/$p/status; then v=alive; else v=dead; fi
          echo $v > "$T/verdict"
        else
          touch "$T/first"
          echo $PPID > "$T/pool.pid"
          sh -c 'sleep 300 & echo $! > "$T/sleep.pid"; wait'
        fi
"""


def test_no_process_of_the_first_attempt_is_alive_when_the_second_starts(tmp_path: Path) -> None:
    # given a step whose first attempt leaves `sleep 300` in its own process group
    fleet = Fleet(workers=2, concurrency=1, env=SHORT).start()
    try:
        doc = submit(fleet, tmp_path, SURVIVOR)
        pid_file = tmp_path / "sleep.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "the sleep to start")
        sleeper = int(pid_file.read_text())
        # when the whole worker dies (the step's group is in a session of its own: it survives)
        fleet.kill(worker_of(fleet, int((tmp_path / "pool.pid").read_text())))
        assert Path(f"/proc/{sleeper}").exists()
        assert wait_for(lambda: finished(doc), 3 * 20, "the second attempt") == "completed"
    finally:
        fleet.stop()
    # then the second attempt found the first one's process dead before it ran
    assert (tmp_path / "verdict").read_text().strip() == "dead"
