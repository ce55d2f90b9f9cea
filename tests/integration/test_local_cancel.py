"""`cancel` of a local run stops it now: the running step's subprocess is killed, nothing
after it starts, and the run ends `cancelled` — then `run --resume` can continue it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKFLOW = """
name: cancellable
steps:
  - name: long
    task: shell
    inputs:
      command: "echo started >> \\"$WITNESS\\"; [ -f \\"$WITNESS.fast\\" ] || sleep 60; echo finished >> \\"$WITNESS\\""
  - name: after
    task: shell
    inputs:
      command: "echo after >> \\"$WITNESS\\""
"""


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yaml_workflow", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.serial
def test_cancel_stops_a_local_run_in_the_middle_of_a_step(tmp_path: Path) -> None:
    # given a local run whose first step is a long shell command
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    witness = tmp_path / "witness.log"
    env = {**os.environ, "WITNESS": str(witness)}
    workspace = tmp_path / "ws"
    run = subprocess.Popen([sys.executable, "-m", "yaml_workflow", "run", str(wf),
                            "--workspace", str(workspace)], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not (witness.exists() and "started" in witness.read_text()):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    # when it is cancelled from another process
    cancelled_at = time.monotonic()
    done = _cli("cancel", str(workspace), env=env)
    assert done.returncode == 0, done.stderr
    # then the run process ends within seconds, not after the 60 s step
    _, err = run.communicate(timeout=15)
    assert time.monotonic() - cancelled_at < 10
    assert run.returncode == 1
    # and it says it was cancelled, with no empty reason ("cancelled: None")
    assert "error: Workflow 'cancellable' cancelled " in err and "None" not in err, err
    assert done.stdout.strip().endswith("cancelled"), done.stdout
    status = json.loads(_cli("status", str(workspace), "--format", "json", env=env).stdout)
    assert status["status"] == "cancelled"
    lines = witness.read_text().split()
    assert lines == ["started"]  # the step was stopped, `after` never ran
    # and a resume continues it from the step that was stopped
    Path(f"{witness}.fast").touch()
    resumed = _cli("run", str(wf), "--resume", "--workspace", str(workspace), "-q", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert witness.read_text().split() == ["started", "started", "finished", "after"]
