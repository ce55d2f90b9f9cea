"""kill -9 of a writer at any instant: the state file always parses, nothing recorded is lost.

A child process records step transitions through the JSON store and its recorder (what
``run`` does), compacting far more often than usual so that kills land in the middle of
rewrites too, and acknowledges each transition on a pipe once ``record`` returned.  The
test kills it at random moments and checks the workspace after every kill.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from yaml_workflow.state.mirror import STATE_FILE, read_state

ROOT = Path(__file__).resolve().parents[2]
KILLS = 15

WRITER = textwrap.dedent("""
    import sys, time
    from yaml_workflow.state import mirror
    from yaml_workflow.state.document import now_iso, step_event
    from yaml_workflow.state.recorder import RunRecorder
    from yaml_workflow.state.stores.json_file import JsonFileStore

    mirror.COMPACT_INTERVAL = 0.005  # compact all the time: kills must land mid-rewrite too
    workspace, first = sys.argv[1], int(sys.argv[2])
    store = JsonFileStore("file://", root=workspace)
    recorder = RunRecorder(store, workspace, workspace)
    if first == 0:
        recorder.start({"t": "run", "at": time.time(), "workflow_id": "kill9", "name": "kill9",
                        "start_time": now_iso(), "status": "running", "workspace": workspace})
    n = first
    while True:
        recorder.record(step_event(f"s{n}", "completed", result={"n": n, "pad": "x" * 200}))
        sys.stdout.write(f"{n}\\n")
        sys.stdout.flush()
        n += 1
""")


class Acks:
    """Reads a writer's acknowledgements from its pipe as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.last = -1
        self.first_seen = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip().isdigit():
                self.last = int(line)
                self.first_seen.set()

    def join(self) -> int:
        """The last acknowledged number once the pipe is closed (the writer is dead)."""
        self._thread.join(timeout=30)
        return self.last


@pytest.mark.serial
def test_kill_9_at_random_moments_loses_nothing_recorded(tmp_path: Path) -> None:
    seed = int(os.environ.get("YWF_KILL9_SEED") or random.randrange(1_000_000))
    print(f"kill -9 seed: {seed} (set YWF_KILL9_SEED to repeat)")
    rng = random.Random(seed)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acknowledged = -1
    # A fixed number of kills, each waiting on conditions: a loaded machine makes the
    # test slower, never fewer kills (a time budget would count how much got done).
    for kills in range(1, KILLS + 1):
        proc = subprocess.Popen([sys.executable, str(script), str(workspace), str(acknowledged + 1)],
                                stdout=subprocess.PIPE, text=True, env=env)
        acks = Acks(proc)
        assert acks.first_seen.wait(30), f"writer did not start (seed {seed})"
        # While it writes, a plain reader always finds a whole file.
        kill_at = time.monotonic() + rng.uniform(0.0, 0.6)
        while time.monotonic() < kill_at:
            if (workspace / STATE_FILE).exists():
                json.loads((workspace / STATE_FILE).read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        acknowledged = max(acknowledged, acks.join())
        # The file on disk parses, and a reader sees every acknowledged transition.
        json.loads((workspace / STATE_FILE).read_text())
        doc = read_state(workspace)
        outputs = doc["execution_state"]["step_outputs"]
        missing = [n for n in range(acknowledged + 1) if outputs.get(f"s{n}", {}).get("result", {}).get("n") != n]
        assert not missing, f"lost {missing[:5]}... after kill {kills} (seed {seed})"
        assert doc["workflow_id"] == "kill9"
    # A temp file left behind is a kill that landed in the middle of a rewrite.
    torn = len(list(workspace.glob(f".{STATE_FILE}.*.tmp")))
    print(f"{kills} kills ({torn} in the middle of a rewrite), "
          f"{acknowledged + 1} transitions acknowledged, none lost")
