"""A dead local run is recognised as dead, nothing of it survives its resume, and two
resumes of one run never both proceed — each window forced by a hook, not by load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yaml_workflow.state.processes import ProcessRef, is_alive

pytestmark = pytest.mark.serial

DEADLINE = 60.0


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "yaml_workflow", *args], env={**os.environ, **(env or {})},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _until(condition, what: str, limit: float = DEADLINE):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {limit:g}s: {what}")


def _journal_has(workspace: Path, needle: str) -> bool:
    texts = [p.read_text(errors="replace") for p in (workspace / ".ywf" / "journal").glob("*.jsonl")]
    state = workspace / ".workflow_metadata.json"
    if state.exists():
        texts.append(state.read_text(errors="replace"))
    return any(needle in text for text in texts)


SURVIVOR = """
name: survivor
steps:
  - name: first
    task: echo
    inputs: {message: hi}
  - name: hold
    task: shell
    inputs:
      command: |
        if [ -f resumed ]; then
          p=$(cat sleep.pid)
          # a killed process nobody reaped yet is a zombie: dead, though `kill -0` finds it
          if [ -d /proc/$p ] && ! grep -q '^State:[[:space:]]*Z' /proc/$p/status; then
            echo alive > verdict
          else
            echo dead > verdict
          fi
        else
          touch resumed
          sleep 300 &
          echo $! > sleep.pid
          wait
        fi
"""


def test_a_killed_run_that_is_a_zombie_is_dead_and_its_step_survivors_are_killed_by_the_resume(
        tmp_path: Path) -> None:
    # given a run whose step started `sleep 300 &` in its own process group
    wf = tmp_path / "survivor.yaml"
    wf.write_text(SURVIVOR)
    workspace = tmp_path / "ws"
    run = _cli(["run", str(wf), "--workspace", str(workspace), "-q"])
    _until(lambda: (workspace / "sleep.pid").exists() and _journal_has(workspace, '"proc"'),
           "the step started its subprocess and the run recorded it")
    sleeper = int((workspace / "sleep.pid").read_text())
    sleeper_ref = ProcessRef.of(sleeper)
    # when the run is killed and nobody reaps it (this test is its parent and does not wait)
    os.kill(run.pid, signal.SIGKILL)
    _until(lambda: open(f"/proc/{run.pid}/stat").read().split(") ")[1][0] == "Z", "the run is a zombie")
    assert is_alive(sleeper_ref), "the step's subprocess outlived its owner"
    # then a resume at once is not refused as "already running", and it kills the survivor
    # before the step runs again
    resume = _cli(["run", str(wf), "--resume", "--workspace", str(workspace), "-q"])
    out, err = resume.communicate(timeout=DEADLINE)
    assert resume.returncode == 0, err
    assert (workspace / "verdict").read_text().strip() == "dead"
    assert not is_alive(sleeper_ref)
    state = json.loads((workspace / ".workflow_metadata.json").read_text())
    assert state["status"] == "completed"
    run.wait(10)


def test_a_lease_whose_pid_now_belongs_to_another_process_is_dead(tmp_path: Path) -> None:
    from yaml_workflow.state.document import HOST
    from yaml_workflow.state.lease import Lease, lease_is_live

    other = subprocess.Popen(["sleep", "30"])
    try:
        me = ProcessRef.of(other.pid)
        assert lease_is_live(Lease("t", HOST, other.pid, time.time() + 60, me.started))
        assert me.started is not None
        # the same pid with another start time: the owner died and its pid was reused
        assert not lease_is_live(Lease("t", HOST, other.pid, time.time() + 60, me.started - 1))
    finally:
        other.kill()
        other.wait()


RACE = """
name: race
steps:
  - name: once
    task: shell
    inputs:
      command: echo run >> runs.log
  - name: gate
    task: shell
    inputs:
      command: test -f open
"""


def _failed_run(tmp_path: Path) -> tuple[Path, Path]:
    wf = tmp_path / "race.yaml"
    wf.write_text(RACE)
    workspace = tmp_path / "ws"
    first = _cli(["run", str(wf), "--workspace", str(workspace), "-q"])
    first.communicate(timeout=DEADLINE)
    assert first.returncode == 1
    (workspace / "open").touch()
    return wf, workspace


@pytest.mark.parametrize("point", ["resume_before_lease", "resume_after_lease"])
def test_two_resumes_never_both_proceed_with_the_first_held_at_its_critical_point(
        tmp_path: Path, point: str) -> None:
    # given a failed run, and a first resume held at the point where it has (or is about
    # to take) the lease but has not read the run yet
    wf, workspace = _failed_run(tmp_path)
    hold = tmp_path / "hold"
    hold.mkdir()
    first = _cli(["run", str(wf), "--resume", "--workspace", str(workspace), "-q"],
                 {"YAML_WORKFLOW_TEST_PAUSE": f"{point}:{hold}"})
    _until(lambda: (hold / "reached").exists(), "the first resume reached its critical point")
    # when a second resume runs meanwhile
    second = _cli(["run", str(wf), "--resume", "--workspace", str(workspace), "-q"])
    _, second_err = second.communicate(timeout=DEADLINE)
    (hold / "release").touch()
    _, first_err = first.communicate(timeout=DEADLINE)
    # then exactly one proceeded and the other was refused with one line, exit 2
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], (first.returncode, first_err, second.returncode, second_err)
    refusal = first_err if first.returncode == 2 else second_err
    assert len(refusal.strip().splitlines()) == 1 and "Traceback" not in refusal
    assert "already running" in refusal or "already completed" in refusal
    state = json.loads((workspace / ".workflow_metadata.json").read_text())
    assert state["status"] == "completed"
    assert [h["event"] for h in state["history"]] == ["start", "resume"]
    assert (workspace / "runs.log").read_text().split() == ["run"], "the completed step ran again"
