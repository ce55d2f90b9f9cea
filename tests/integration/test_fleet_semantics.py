"""Fleet semantics on real workers: both workers used, next, retries, exactly-once, JSON only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.workers import EventLog, Fleet, fleet_fixture, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.redis]

# A short claim TTL: a claim left by a killed process frees in seconds, not 30.
# The fault hook kills the worker process once, right after `crash_here` is committed.
fleet = fleet_fixture(workers=2, env={"YAML_WORKFLOW_CLAIM_TTL": "3",
                                      "YAML_WORKFLOW_TEST_FAULT": "after_commit:crash_here"})


def _submit(fleet: Fleet, tmp: Path, text: str, *extra: str, wait: bool = True) -> tuple[Any, dict[str, Any]]:
    wf = tmp / "wf.yaml"
    wf.write_text(text)
    args = ["submit", str(wf), "--base-dir", str(tmp / "runs"), "--format", "json", *extra]
    proc = fleet.cli(*args, *(["--wait"] if wait else []), env={"T": str(tmp)}, cwd=tmp)
    doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc, doc


def _state(doc: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(doc["workspace"]) / ".workflow_metadata.json").read_text())


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_steps_of_one_run_run_on_both_workers(fleet: Fleet, tmp_path: Path) -> None:
    parallel = "\n".join(
        f"  - {{name: p{i}, task: shell, depends_on: [root], inputs: {{command: 'sleep 0.6'}}}}"
        for i in range(8))
    proc, doc = _submit(fleet, tmp_path, f"name: spread\nsteps:\n  - {{name: root, task: noop}}\n{parallel}\n")
    assert proc.returncode == 0, proc.stderr
    steps = _state(doc)["execution_state"]["step_outputs"]
    hosts = {steps[f"p{i}"]["host"] for i in range(8)}
    # Each worker holds at most 2 tasks (concurrency 2, prefetch 1): 8 must spread.
    assert len(hosts) == 2, hosts
    assert {h.split("@")[0] for h in hosts} == {n.split("@")[0] for n in fleet.names}


NEXT = """
name: jumps
steps:
  - {name: start, task: shell, inputs: {command: 'echo start >> "$T/trace"'}}
  - name: risky
    task: shell
    inputs: {command: exit 1}
    on_error: {action: next, next: cleanup}
  - {name: middle1, task: shell, inputs: {command: 'echo middle1 >> "$T/trace"'}}
  - {name: middle2, task: shell, inputs: {command: 'echo middle2 >> "$T/trace"'}}
  - {name: cleanup, task: shell, inputs: {command: 'echo cleanup >> "$T/trace"'}}
"""


def test_next_skips_the_steps_in_between(fleet: Fleet, tmp_path: Path) -> None:
    proc, doc = _submit(fleet, tmp_path, NEXT)
    assert proc.returncode == 0, proc.stderr
    assert _lines(tmp_path / "trace") == ["start", "cleanup"]  # middle steps ran zero times
    steps = _state(doc)["execution_state"]["step_outputs"]
    assert steps["risky"]["status"] == "failed"
    for name in ("middle1", "middle2"):
        assert steps[name]["status"] == "skipped"
        assert "risky" in steps[name]["reason"]
    assert steps["cleanup"]["status"] == "completed"


RETRY = """
name: flaky
steps:
  - name: flaky
    task: shell
    retry: {max_attempts: 4, delay: 0.3}
    inputs:
      command: 'n=$(cat "$T/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$T/count"; [ $n -ge 3 ]'
  - {name: after, task: shell, inputs: {command: 'echo after >> "$T/trace"'}}
"""


def test_retry_uses_celery_retry_and_counts_attempts(fleet: Fleet, tmp_path: Path) -> None:
    with EventLog(fleet.app) as events:
        proc, doc = _submit(fleet, tmp_path, RETRY)
        assert proc.returncode == 0, proc.stderr
        retried = wait_for(lambda: events.of("task-retried"), 10, "task-retried events")
    assert _lines(tmp_path / "count") == ["3"]
    assert _lines(tmp_path / "trace") == ["after"]
    record = _state(doc)["execution_state"]["step_outputs"]["flaky"]
    assert record["status"] == "completed" and record["attempt"] == 3
    # Flower sees RETRY twice: Celery's own retry carried the two waits.
    ids = {e["uuid"] for e in retried}
    assert len(retried) == 2 and len(ids) == 1


TWICE = """
name: twice
steps:
  - {name: slow, task: shell, inputs: {command: 'echo slow >> "$T/slow"; sleep 1.5'}}
  - {name: second, task: shell, inputs: {command: 'echo second >> "$T/second"; sleep 1.5'}}
  - {name: third, task: shell, inputs: {command: 'echo third >> "$T/third"'}}
"""


def test_a_message_published_twice_runs_once_and_enqueues_once(fleet: Fleet, tmp_path: Path) -> None:
    """Real duplicate messages: one while the step runs (it waits for the claim with a
    Celery retry), one after it is done (it only replays the dispatch, and the successor
    is not sent again).  What begin and commit return to a duplicate is
    tests/unit/test_fleet_state.py's, on fakeredis."""
    with EventLog(fleet.app) as events:
        proc, doc = _submit(fleet, tmp_path, TWICE, wait=False)
        assert proc.returncode == 0, proc.stderr
        run_id = doc["run_id"]
        wait_for(lambda: (tmp_path / "slow").exists(), 20, "the first step to start")
        # Duplicate while the step runs (it waits for the claim) ...
        fleet.app.send_task("ywf.step", args=[run_id, "slow"], argsrepr=f"run={run_id} step=slow")
        wait_for(lambda: (tmp_path / "second").exists(), 20, "the second step to start")
        # ... and after it was recorded done (it only checks the dispatch).
        fleet.app.send_task("ywf.step", args=[run_id, "slow"], argsrepr=f"run={run_id} step=slow")
        wait_for(lambda: (tmp_path / "third").exists(), 30, "the third step")
        wait_for(lambda: _state(doc)["status"] == "completed", 20, "the run to complete")
        wait_for(lambda: len(events.of("task-succeeded")) >= 5, 20, "the duplicates to finish")
    assert _lines(tmp_path / "slow") == ["slow"]
    assert _lines(tmp_path / "second") == ["second"]
    assert _lines(tmp_path / "third") == ["third"]
    sent_second = events.of("task-sent", "step=second")
    assert len(sent_second) == 1, sent_second


CRASH = """
name: crash
steps:
  - {name: crash_here, task: shell, inputs: {command: 'echo ran >> "$T/crash"'}}
  - {name: next_one, task: shell, inputs: {command: 'echo next >> "$T/next"'}}
"""


def test_death_between_commit_and_dispatch_still_dispatches(fleet: Fleet, tmp_path: Path) -> None:
    # The worker process dies after recording the step done, before enqueueing the next
    # one; the message is redelivered (reject on worker lost) and must dispatch it.
    proc, doc = _submit(fleet, tmp_path, CRASH, "--timeout", "60")
    assert proc.returncode == 0, proc.stderr
    assert _lines(tmp_path / "crash") == ["ran"]  # recorded once, not run again
    assert _lines(tmp_path / "next") == ["next"]
    assert (Path(doc["workspace"]) / ".ywf" / "fault-after_commit-crash_here").exists()


def test_a_pickled_message_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    proc, doc = _submit(fleet, tmp_path, "name: p\nsteps:\n  - {name: a, task: shell, inputs: "
                        "{command: 'echo a >> \"$T/a\"'}}\n", "--queue", "parked", wait=False)
    assert proc.returncode == 0, proc.stderr
    run_id = doc["run_id"]
    fleet.app.send_task("ywf.step", args=[run_id, "a"], serializer="pickle")

    def refused() -> bool:
        return any("untrusted content" in fleet.log(i) or "pickle" in fleet.log(i).lower()
                   for i in range(fleet.count))

    wait_for(refused, 20, "a worker to refuse the pickled message")
    assert not (tmp_path / "a").exists()
    # The same message as JSON runs: the refusal was about the serializer alone.
    fleet.app.send_task("ywf.step", args=[run_id, "a"])
    wait_for(lambda: (tmp_path / "a").exists(), 20, "the JSON message to run")


JOIN = """
name: fanin
steps:
  - {name: root, task: noop}
  - {name: left, task: shell, depends_on: [root], inputs: {command: 'echo left >> "$T/order"'}}
  - {name: right, task: shell, depends_on: [root], inputs: {command: 'sleep 1.5; echo right >> "$T/order"'}}
  - {name: join, task: shell, depends_on: [left, right], inputs: {command: 'echo join >> "$T/order"'}}
"""


def test_join_fires_once_after_all_inputs_when_an_input_is_delivered_twice(fleet: Fleet, tmp_path: Path) -> None:
    """The process-level part: a duplicate message of a finished input, through the broker
    to a real worker while the other input runs, does not start the join.  The counting
    itself (a second commit counts nothing, the join fires after all inputs) is
    tests/unit/test_fleet_state.py's, on fakeredis."""
    proc, doc = _submit(fleet, tmp_path, JOIN, wait=False)
    assert proc.returncode == 0, proc.stderr
    run_id = doc["run_id"]
    wait_for(lambda: "left" in _lines(tmp_path / "order"), 20, "left to finish")
    # `left` again while `right` still runs: its count must not reach the join twice.
    fleet.app.send_task("ywf.step", args=[run_id, "left"])
    wait_for(lambda: _state(doc)["status"] == "completed", 30, "the run to complete")
    assert _lines(tmp_path / "order") == ["left", "right", "join"]


def test_cancelled_run_enqueues_nothing_more(fleet: Fleet, tmp_path: Path) -> None:
    """The process-level part of cancel: a follower in another process sees it, and a
    step running on a worker finishes without enqueueing its successor.  That the store's
    `cancelled` wins over the fleet's status in every check (begin, commit) is
    tests/unit/test_fleet_state.py's, on fakeredis."""
    from yaml_workflow.state.document import CANCELLED, status_event
    from yaml_workflow.state.stores.redis import RedisStore

    text = ("name: c\nsteps:\n  - {name: one, task: shell, inputs: {command: 'touch \"$T/one\"; sleep 1.5'}}\n"
            "  - {name: two, task: shell, inputs: {command: 'touch \"$T/two\"'}}\n")
    wf = tmp_path / "wf.yaml"
    wf.write_text(text)
    waiter = fleet.cli("submit", str(wf), "--base-dir", str(tmp_path / "runs"), env={"T": str(tmp_path)})
    run_id = waiter.stdout.split()[0]
    wait_for(lambda: (tmp_path / "one").exists(), 20, "the first step to start")
    RedisStore(fleet.server.url, prefix=fleet.server.prefix).record(run_id, status_event(CANCELLED))
    import subprocess
    import sys

    follow = subprocess.run([sys.executable, "-c", (
        "import sys; from yaml_workflow.executors.celery.follow import wait_for_run; "
        f"r = wait_for_run({run_id!r}, timeout=30); print(r.status)")],
        env=fleet.env, capture_output=True, text=True, timeout=60)
    assert follow.stdout.strip() == "cancelled", follow.stderr
    # `one` finishes; it sees the cancel before it enqueues `two`.
    store = RedisStore(fleet.server.url, prefix=fleet.server.prefix)
    wait_for(lambda: store.load(run_id)["execution_state"]["step_outputs"].get("one", {}).get("status")
             == "completed", 20, "the running step to finish")
    assert not (tmp_path / "two").exists()
