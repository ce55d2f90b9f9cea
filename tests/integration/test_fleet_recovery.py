"""kill -9 of a worker in the middle of a step: the run completes on another worker."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.support.workers import Fleet, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.redis, pytest.mark.serial]

# A short visibility timeout so the lost message comes back in seconds; the step limit
# (4 s) plus the countdown cap (2 s) stays below it, as submit requires.
ENV = {"YAML_WORKFLOW_VISIBILITY_TIMEOUT": "8", "YAML_WORKFLOW_STEP_TIMEOUT": "4",
       "YAML_WORKFLOW_CLAIM_TTL": "3"}

WF = """
name: survive
steps:
  - {name: before, task: shell, inputs: {command: 'echo before >> "$T/before"'}}
  - {name: victim, task: shell, inputs: {command: 'echo start >> "$T/victim"; sleep 2; echo end >> "$T/victim"'}}
  - {name: after, task: shell, inputs: {command: 'echo after >> "$T/after"'}}
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_worker_killed_mid_step_the_run_still_completes(tmp_path: Path) -> None:
    fleet = Fleet(workers=1, concurrency=1, env=ENV)
    try:
        fleet.start()
        wf = tmp_path / "wf.yaml"
        wf.write_text(WF)
        proc = fleet.cli("submit", str(wf), "--base-dir", str(tmp_path / "runs"), "--format", "json",
                         env={"T": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        wait_for(lambda: _lines(tmp_path / "victim") == ["start"], 20, "the victim step to start")
        fleet.kill(0)  # the whole worker, pool and all: its message stays unacked in Redis
        fleet.start_worker(0)
        fleet.wait_ready(30)
        state_file = Path(doc["workspace"]) / ".workflow_metadata.json"
        wait_for(lambda: json.loads(state_file.read_text())["status"] == "completed", 60,
                 "the run to complete after the visibility timeout")
    finally:
        fleet.stop()
    assert _lines(tmp_path / "before") == ["before"]  # finished before the kill: not run again
    # At least once: started again on the new worker (the first shell, in its own
    # process group, may outlive its worker and finish too).
    victim = _lines(tmp_path / "victim")
    assert victim.count("start") == 2 and "end" in victim
    assert _lines(tmp_path / "after") == ["after"]
    steps = json.loads(state_file.read_text())["execution_state"]["step_outputs"]
    assert steps["victim"]["status"] == "completed" and steps["after"]["status"] == "completed"


def test_pool_child_killed_mid_step_the_step_is_recorded_once(tmp_path: Path) -> None:
    """Only the prefork child dies (OOM killer): its parent requeues the message at once."""
    fleet = Fleet(workers=2, concurrency=1, env=ENV)
    try:
        fleet.start()
        wf = tmp_path / "wf.yaml"
        wf.write_text(WF.replace('echo start >> "$T/victim"', 'echo $PPID >> "$T/child"; echo start >> "$T/victim"'))
        proc = fleet.cli("submit", str(wf), "--base-dir", str(tmp_path / "runs"), "--format", "json",
                         env={"T": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        child = int(wait_for(lambda: _lines(tmp_path / "child"), 20, "the victim step to start")[0])
        os.kill(child, signal.SIGKILL)  # the pool process alone; its worker lives on
        state_file = Path(doc["workspace"]) / ".workflow_metadata.json"
        wait_for(lambda: json.loads(state_file.read_text())["status"] == "completed", 40,
                 "the run to complete")
    finally:
        fleet.stop()
    assert _lines(tmp_path / "before") == ["before"]
    assert _lines(tmp_path / "victim").count("start") == 2  # at least once: it ran again
    assert _lines(tmp_path / "after") == ["after"]  # the next step ran once
    state = json.loads(state_file.read_text())
    assert [h["event"] for h in state["history"]] == ["submit"]
    assert state["execution_state"]["step_outputs"]["victim"]["status"] == "completed"
