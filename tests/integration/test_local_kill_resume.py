"""kill -9 of `yaml-workflow run` at random moments, then `run --resume`: nothing lost, nothing twice.

Given a workflow whose steps each append their name to a witness file,
when the run is SIGKILLed at a random moment and then resumed (as soon as the process
is gone — the dead owner's lease is recognised at once on the same host),
then the run completes, every step's side effect happened exactly once except the step
that was running at the kill (at most twice), and the state file was valid throughout.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

STEPS = 15
REPEATS = int(os.environ.get("YWF_KILL_REPEATS", "8"))


def _workflow(tmp: Path) -> Path:
    lines = ["name: killme", "steps:"]
    for i in range(STEPS):
        lines += [
            f"  - name: s{i:02d}",
            "    task: python_code",
            "    inputs:",
            "      code: |",
            "        import os, time",
            f"        with open(os.environ['WITNESS'], 'a') as fh: fh.write('s{i:02d}\\n')",
            "        time.sleep(0.03)",
            "        result = 1",
        ]
    path = tmp / "killme.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _status(workspace: Path) -> str:
    from yaml_workflow.state.mirror import read_state

    return str(read_state(workspace)["status"])


def _run(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "yaml_workflow", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.serial
def test_sigkill_then_resume_runs_each_step_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("YWF_SEED", random.randrange(1 << 30)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    workflow = _workflow(tmp_path)
    for round_no in range(REPEATS):
        witness = tmp_path / f"witness{round_no}.log"
        workspace = tmp_path / f"ws{round_no}"
        env = {**os.environ, "WITNESS": str(witness)}
        proc = _run(["run", str(workflow), "--workspace", str(workspace), "-q"], env)
        time.sleep(rng.uniform(0.2, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)  # reaped: a zombie would still look alive to the lease check
        state_file = workspace / ".workflow_metadata.json"
        if state_file.exists():
            json.loads(state_file.read_text())  # never a truncated or invalid file
        # Killed after the run recorded its end: nothing left to resume.
        finished = proc.returncode == 0 or (
            state_file.exists() and _status(workspace) == "completed"
        )
        if not finished and state_file.exists():
            resumed = _run(["run", str(workflow), "--resume", "--workspace", str(workspace), "-q"], env)
            out, err = resumed.communicate(timeout=60)
            assert resumed.returncode == 0, err.decode()
        elif not finished:
            # Killed before the state file existed: the run never started; start it now.
            fresh = _run(["run", str(workflow), "--workspace", str(workspace), "-q"], env)
            _, err = fresh.communicate(timeout=60)
            assert fresh.returncode == 0, err.decode()
        doc = json.loads(state_file.read_text())
        assert doc["status"] == "completed"
        counts = Counter(witness.read_text().split())
        assert set(counts) == {f"s{i:02d}" for i in range(STEPS)}, f"round {round_no}, seed {seed}"
        twice = [name for name, n in counts.items() if n > 1]
        assert len(twice) <= 1 and all(counts[n] <= 2 for n in twice), (counts, seed)
