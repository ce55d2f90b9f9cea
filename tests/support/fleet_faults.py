"""The fleet's faults as procedures: each starts a fleet with the settings it is given,
makes the fault happen, checks what must hold, and returns the recovery time it measured.

``tests/integration/test_fleet_healing.py`` and ``test_fleet_outage.py`` run each once
(the whole-worker SIGKILL with the shipped defaults, the others with short figures);
``tests/soak/test_fleet_soak.py`` runs each 20 times with the defaults and reports the
median and the maximum recovery time.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.witness import (
    count,
    finished,
    state,
    step,
    submit,
    submit_waiting,
    witness,
    worker_of,
)
from tests.support.workers import Fleet, wait_for

# A dead worker's steps run again elsewhere within this, with the defaults (issue bound).
NOMINAL = 60.0
# Short figures for the single runs of `make test` (defaults in `make soak`).
SHORT = {"YAML_WORKFLOW_CLAIM_TTL": "2", "YAML_WORKFLOW_VISIBILITY_TIMEOUT": "4",
         "YAML_WORKFLOW_RESTORE_INTERVAL": "1"}
STALLED = re.compile(r"stalled \(worker w\d-\w+@\S+: no heartbeat for \d+ s\)")


def chain(n: int, body: str = "sleep 0.3", name: str = "chain") -> str:
    return f"name: {name}\nsteps:\n" + "".join(step(f"s{i:02d}", body) for i in range(n))


def status_of(fleet: Fleet, run_id: str) -> dict[str, Any]:
    proc = fleet.cli("status", run_id, "--format", "json")
    return dict(json.loads(proc.stdout)) if proc.returncode == 0 else {}


def kill_worker_running(fleet: Fleet, tmp: Path, name: str) -> float:
    """SIGKILL the whole worker (main and pool processes) that runs step ``name`` now."""
    started = wait_for(lambda: [w for w in witness(tmp) if w[:2] == [name, "start"]], 60, f"{name} to start")
    fleet.kill(worker_of(fleet, int(started[0][3])))  # the shell's parent is the pool process
    return time.time()


# --- a dead worker ------------------------------------------------------------------------


def whole_worker_sigkill(tmp: Path, env: dict[str, str] | None = None) -> float:
    """The worker running step 3 of a 30-step run dies; seconds until that step is done again."""
    fleet = Fleet(workers=2, concurrency=1, env=env).start()
    try:
        doc = submit(fleet, tmp, chain(30))
        killed_at = kill_worker_running(fleet, tmp, "s03")
        stalled: list[str] = []

        def done() -> str | None:
            rows = status_of(fleet, doc["run_id"]).get("steps", [])
            stalled.extend(row["stalled"] for row in rows if row.get("stalled"))
            return finished(doc)

        assert wait_for(done, 3 * NOMINAL, "the run to end after the kill", interval=0.5) == "completed"
    finally:
        fleet.stop()
    recovery = max(float(w[4]) for w in witness(tmp) if w[:2] == ["s03", "end"]) - killed_at
    # the killed step ran at most twice and is recorded once; every other step ran once
    assert count(tmp, "s03", "start") <= 2
    assert all(count(tmp, f"s{i:02d}", "start") == 1 for i in range(30) if i != 3), witness(tmp)
    records = state(doc)["execution_state"]["step_outputs"]
    assert all(records[f"s{i:02d}"]["status"] == "completed" for i in range(30))
    assert recovery < NOMINAL, f"recovered in {recovery:.1f}s"
    # while it waited, status said which worker went silent, instead of an ETA
    assert any(STALLED.match(text) for text in stalled), stalled
    return recovery


def reserved_and_countdown(tmp: Path, env: dict[str, str] | None = None) -> float:
    """A worker holding a running step and a retry countdown dies; seconds until the run ends."""
    fleet = Fleet(workers=2, concurrency=2, env=env).start()
    try:
        fleet.kill(1)  # start with one worker, so it takes everything
        flaky = 'if [ ! -f "$T/flaky.once" ]; then touch "$T/flaky.once"; exit 1; fi'
        wf = ("name: held\nsteps:\n  - {name: root, task: noop}\n"
              + step("slow", "sleep 3", depends_on="[root]")
              + step("flaky", flaky, depends_on="[root]", retry="{max_attempts: 3, delay: 2}")
              + step("last", depends_on="[slow, flaky]"))
        doc = submit(fleet, tmp, wf)
        wait_for(lambda: count(tmp, "slow", "start") and count(tmp, "flaky", "start"), 30,
                 "the slow step to run and the flaky one to fail once")
        fleet.start_worker(1)
        fleet.wait_ready(count=2)
        killed_at = time.time()
        fleet.kill(0)  # it holds `slow` running and `flaky`'s countdown
        assert wait_for(lambda: finished(doc), 3 * NOMINAL, "the run to end") == "completed"
        took = time.time() - killed_at
    finally:
        fleet.stop()
    assert count(tmp, "slow", "end") >= 1 and count(tmp, "slow", "start") <= 2
    assert count(tmp, "last", "start") == 1
    return took


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


def mid_batch_sigkill(tmp: Path, env: dict[str, str] | None = None) -> float:
    """The worker running a 40-item chunk dies after 12 items; seconds until the run ends.
    Items finished more than 0.5 s before the death never run again."""
    fleet = Fleet(workers=2, concurrency=1, env=env).start()
    try:
        doc = submit(fleet, tmp, BATCH.format(items=list(range(40))))
        lines = tmp / "items"
        wait_for(lambda: lines.exists() and lines.read_text().count(" end ") >= 12, 60, "12 items done")
        pool = int(lines.read_text().splitlines()[0].split()[3])  # each item's parent
        killed_at = time.time()
        fleet.kill(worker_of(fleet, pool))
        assert wait_for(lambda: finished(doc), 3 * NOMINAL, "the run to end") == "completed"
        took = time.time() - killed_at
    finally:
        fleet.stop()
    events = [line.split() for line in (tmp / "items").read_text().splitlines()]
    ends = {int(e[0]): float(e[2]) for e in events if e[1] == "end"}
    starts = Counter(int(e[0]) for e in events if e[1] == "start")
    assert set(ends) == set(range(40))
    finished_early = [i for i, at in ends.items() if at < killed_at - 0.5]
    assert finished_early and [i for i in finished_early if starts[i] > 1] == []
    result = state(doc)["execution_state"]["step_outputs"]["work"]["result"]
    assert result["stats"]["processed"] == 40 and result["stats"]["failed"] == 0
    return took


def backlog(tmp: Path, env: dict[str, str] | None = None, steps: int = 500) -> float:
    """``steps`` steps queued behind two busy workers each run once; seconds the run took."""
    body = "".join(
        f"  - {{name: p{i:03d}, task: python_code, depends_on: [root], inputs: {{code: "
        f"\"open(__import__('os').environ['T'] + '/w', 'a').write('p{i:03d} start\\\\n'); result = 1\"}}}}\n"
        for i in range(steps))
    fleet = Fleet(workers=2, concurrency=2, env=env).start()
    try:
        began = time.time()
        doc = submit(fleet, tmp, "name: backlog\nsteps:\n  - {name: root, task: noop}\n" + body)
        assert wait_for(lambda: finished(doc), 600, "the backlog to run") == "completed"
        took = time.time() - began
    finally:
        fleet.stop()
    names = [w[0] for w in witness(tmp)]
    assert len(names) == steps and len(set(names)) == steps  # never handed out twice
    return took


def long_step(tmp: Path, env: dict[str, str] | None = None, factor: float = 5) -> float:
    """A step ``factor`` times longer than the visibility timeout runs once; seconds it took."""
    vt = float((env or {}).get("YAML_WORKFLOW_VISIBILITY_TIMEOUT", 30))
    fleet = Fleet(workers=2, concurrency=1, env=env).start()
    try:
        began = time.time()
        doc = submit(fleet, tmp, "name: long\nsteps:\n" + step("long", f"sleep {factor * vt:g}") + step("after"))
        assert wait_for(lambda: finished(doc), 3 * factor * vt + 60, "the run to end") == "completed"
        took = time.time() - began
    finally:
        fleet.stop()
    assert count(tmp, "long", "start") == 1 and count(tmp, "after", "start") == 1
    return took


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


def no_survivor(tmp: Path, env: dict[str, str] | None = None) -> float:
    """The worker of a step that left `sleep 300` in its own group dies; when the step runs
    again on this host, that process is dead.  Seconds until the second attempt ended."""
    fleet = Fleet(workers=2, concurrency=1, env=env).start()
    try:
        doc = submit(fleet, tmp, SURVIVOR)
        pid_file = tmp / "sleep.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "the sleep to start")
        sleeper = int(pid_file.read_text())
        killed_at = time.time()
        fleet.kill(worker_of(fleet, int((tmp / "pool.pid").read_text())))
        assert Path(f"/proc/{sleeper}").exists(), "the group outlives its worker"
        assert wait_for(lambda: finished(doc), 3 * NOMINAL, "the second attempt") == "completed"
        took = time.time() - killed_at
    finally:
        fleet.stop()
    assert (tmp / "verdict").read_text().strip() == "dead"
    return took


# --- Redis going away ---------------------------------------------------------------------


def aof_restarts(tmp: Path, env: dict[str, str] | None = None, times: int = 5) -> float:
    """Redis (AOF) restarted ``times`` times under a 30-step run; seconds from the last
    restart to the run's end.  Workers keep their pids; steps are recorded once."""
    fleet = Fleet(workers=2, concurrency=1, appendonly=True, env=env).start()
    try:
        pids = [p.pid for p in fleet.procs]
        waiting = submit_waiting(fleet, tmp, chain(30, name="outage"))
        wait_for(lambda: count(tmp, "s02", "end"), 60, "the run to get going")
        for _ in range(times):
            fleet.server.restart(appendonly=True)
            time.sleep(1.0)
        back = time.time()
        out, err = waiting.communicate(timeout=300)
        took = time.time() - back
        assert waiting.returncode == 0, err
        assert [p.pid for p in fleet.procs] == pids and all(p.poll() is None for p in fleet.procs)
        assert all("Unrecoverable error" not in fleet.log(i) for i in range(2))
        assert "lost Redis" in err and "reconnected to Redis" in err, err
    finally:
        fleet.stop()
    starts = Counter(w[0] for w in witness(tmp) if w[1] == "start")
    assert set(starts) == {f"s{i:02d}" for i in range(30)}
    assert max(starts.values()) <= 2 and sum(v - 1 for v in starts.values()) <= times
    workspace = next((tmp / "runs").glob("outage_run_*"))
    records = state({"workspace": str(workspace)})["execution_state"]["step_outputs"]
    assert all(r["status"] == "completed" for r in records.values())
    return took


def empty_restart(tmp: Path, env: dict[str, str] | None = None) -> float:
    """Redis restarted without persistence: the follower says the run is lost (exit 3),
    workers stay up, `submit --resume` finishes it; seconds the resume took."""
    fleet = Fleet(workers=2, concurrency=1, env=env).start()
    try:
        pids = [p.pid for p in fleet.procs]
        waiting = submit_waiting(fleet, tmp, chain(10, "sleep 0.5", name="outage"))
        run_id = waiting.stdout.readline().strip() if waiting.stdout else ""
        wait_for(lambda: count(tmp, "s02", "end"), 60, "the run to get going")
        fleet.server.restart(appendonly=False)  # Redis comes back empty
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 3, err
        assert f"the store lost run {run_id}" in err and f"submit --resume {run_id}" in err
        assert [p.pid for p in fleet.procs] == pids and all(p.poll() is None for p in fleet.procs)
        status = fleet.cli("status", run_id, "--base-dir", str(tmp / "runs"))
        assert status.returncode == 0 and "no longer has this run" in status.stdout, status.stderr
        began = time.time()
        resumed = fleet.cli("submit", "--resume", run_id, "--base-dir", str(tmp / "runs"), "--wait",
                            "-q", env={"T": str(tmp)}, cwd=tmp, timeout=300)
        took = time.time() - began
        assert resumed.returncode == 0, resumed.stderr
    finally:
        fleet.stop()
    assert all(count(tmp, f"s{i:02d}", "end") >= 1 for i in range(10))
    return took


def wait_across_outage(tmp: Path, env: dict[str, str] | None = None, seconds: float = 10) -> float:
    """`submit --wait` across an outage of ``seconds`` (AOF) exits 0; seconds from Redis's
    return to the run's end."""
    fleet = Fleet(workers=1, concurrency=1, appendonly=True, env=env).start()
    try:
        waiting = submit_waiting(fleet, tmp, chain(8, "sleep 0.5", name="outage"))
        wait_for(lambda: count(tmp, "s01", "end"), 60, "the run to get going")
        fleet.server.kill()
        time.sleep(seconds)
        fleet.server.start()
        back = time.time()
        out, err = waiting.communicate(timeout=300)
        took = time.time() - back
    finally:
        fleet.stop()
    assert waiting.returncode == 0, err
    assert err.count("lost Redis") == 1 and err.count("reconnected to Redis") == 1, err
    return took


def long_outage(tmp: Path, env: dict[str, str] | None = None) -> float:
    """Redis away for three claim TTLs while a step runs: no step runs twice; seconds from
    Redis's return to the run's end."""
    ttl = float((env or {}).get("YAML_WORKFLOW_CLAIM_TTL", 15))
    fleet = Fleet(workers=2, concurrency=1, appendonly=True, env=env).start()
    try:
        body = f"sleep {ttl * 1.5:g}"
        doc = submit(fleet, tmp, "name: long\nsteps:\n" + "".join(step(f"s{i}", body) for i in range(3)))
        wait_for(lambda: count(tmp, "s1", "start"), 120, "the middle step to start")
        fleet.server.kill()
        time.sleep(3 * ttl)
        fleet.server.start()
        back = time.time()
        assert wait_for(lambda: finished(doc), 3 * NOMINAL + 6 * ttl, "the run to end") == "completed"
        took = time.time() - back
    finally:
        fleet.stop()
    starts = Counter(w[0] for w in witness(tmp) if w[1] == "start")
    assert starts == {"s0": 1, "s1": 1, "s2": 1}, witness(tmp)
    return took


# --- a message lost by the broker ---------------------------------------------------------


def _stall_bound(env: dict[str, str] | None) -> float:
    """How long a lost message may take to be sent again: the stall time, two sweep
    periods (a third of the claim TTL each), times three."""
    env = env or {}
    ttl = float(env.get("YAML_WORKFLOW_CLAIM_TTL", 15))
    stall = float(env.get("YAML_WORKFLOW_STALL_AFTER", 3 * ttl))
    return 3 * (stall + 2 * max(1.0, ttl / 3)) + 30


def lost_root_message(tmp: Path, env: dict[str, str] | None = None) -> float:
    """A run's first message vanishes from the broker before any worker took it (what a
    Redis restart between a worker's pop and its bookkeeping does).  With no command from
    anyone, the stall sweep sends it again; every step runs once.  Seconds from the loss
    to the run's end."""
    import redis

    from yaml_workflow.executors.celery.config import DEFAULT_QUEUE

    fleet = Fleet(workers=1, concurrency=1, env=env)  # no worker yet: the message waits
    try:
        doc = submit(fleet, tmp, chain(3, "true", name="lost"))
        client = redis.Redis.from_url(fleet.server.url)
        assert client.delete(DEFAULT_QUEUE) == 1, "the root's message was not in the queue"
        lost_at = time.time()
        fleet.start()
        assert wait_for(lambda: finished(doc), _stall_bound(env), "the run to end") == "completed"
        took = time.time() - lost_at
        assert "sending s00 again" in fleet.log(0), fleet.log(0)[-3000:]
    finally:
        fleet.stop()
    assert all(count(tmp, f"s{i:02d}", "start") == 1 for i in range(3)), witness(tmp)
    return took


LOST_MIDWAY = """
name: lost_midway
steps:
""" + step("s00") + step("s01", queue="side") + step("s02")


def lost_message_midway(tmp: Path, env: dict[str, str] | None = None) -> float:
    """The message of step 2 (routed to its own queue) vanishes after step 1 ran; the
    sweep sends it again to that queue.  Seconds from the loss to the run's end."""
    import redis

    fleet = Fleet(workers=2, concurrency=1, env=env, queues={0: "celery", 1: "side"}).start(only=1)
    try:
        doc = submit(fleet, tmp, LOST_MIDWAY)
        client = redis.Redis.from_url(fleet.server.url)
        wait_for(lambda: client.llen("side"), 60, "step 2's message to be queued")
        assert client.delete("side") == 1
        lost_at = time.time()
        fleet.start_worker(1)
        fleet.wait_ready()
        assert wait_for(lambda: finished(doc), _stall_bound(env), "the run to end") == "completed"
        took = time.time() - lost_at
        assert "sending s01 again" in fleet.log(0) + fleet.log(1)
    finally:
        fleet.stop()
    assert all(count(tmp, f"s{i:02d}", "start") == 1 for i in range(3)), witness(tmp)
    return took
