"""Faults of the local executor: two resumes at once, and a full disk under the mirror.

Each test writes a witness log from the workflow's steps and checks invariants from it
and from the final state.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.rounds import rounds

RESUME_ROUNDS = int(os.environ.get("YWF_RESUME_ROUNDS", rounds(10, 50)))

RESUMABLE = """
name: twice
steps:
  - name: first
    task: python_code
    inputs:
      code: |
        import os
        with open(os.environ["WITNESS"], "a") as fh: fh.write("first\\n")
        result = 1
  - name: gate
    task: python_code
    inputs:
      code: |
        import os, time
        with open(os.environ["WITNESS"], "a") as fh: fh.write("gate\\n")
        if not os.path.exists(os.environ["WITNESS"] + ".open"):
            raise RuntimeError("gate closed")
        time.sleep(0.05)
        result = 2
"""


def _cli(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "yaml_workflow", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


@pytest.mark.serial
def test_two_resumes_of_one_run_at_once_one_proceeds_one_is_refused(tmp_path: Path) -> None:
    # given a failed run, repeated RESUME_ROUNDS times
    workflow = tmp_path / "twice.yaml"
    workflow.write_text(RESUMABLE)
    failed_run = tmp_path / "failed"
    witness = tmp_path / "witness.log"
    env = {**os.environ, "WITNESS": str(witness)}
    first = _cli(["run", str(workflow), "--workspace", str(failed_run), "-q"], env)
    first.communicate(timeout=60)
    assert first.returncode == 1
    Path(f"{witness}.open").touch()
    for round_no in range(RESUME_ROUNDS):
        # each round resumes its own copy of the same failed run
        workspace = tmp_path / f"ws{round_no}"
        shutil.copytree(failed_run, workspace)
        witness.write_text("first\ngate\n")
        # when two resumes start at the same moment
        pair = [_cli(["run", str(workflow), "--resume", "--workspace", str(workspace), "-q"], env)
                for _ in range(2)]
        outcomes = [(p.wait(60), p.communicate()[1]) for p in pair]
        # then exactly one proceeds and the other is refused with one line, exit 2
        codes = sorted(code for code, _ in outcomes)
        assert codes == [0, 2], (round_no, outcomes)
        refusal = next(err for code, err in outcomes if code == 2)
        assert "already running" in refusal or "already completed" in refusal, refusal
        assert len(refusal.strip().splitlines()) == 1 and "Traceback" not in refusal
        # and the resumed step ran once more, the completed one never again
        assert Counter(witness.read_text().split()) == {"first": 1, "gate": 2}, round_no
        state = json.loads((workspace / ".workflow_metadata.json").read_text())
        assert state["status"] == "completed"
        assert [h["event"] for h in state["history"]] == ["start", "resume"]


def _limit_file_size(limit: int) -> None:
    # A file write past the limit fails with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.serial
def test_a_full_disk_under_the_mirror_flags_the_run_and_keeps_the_last_file(tmp_path: Path) -> None:
    # given a Redis state store, and a process that may write files of 60 KB at most
    server = RedisServer().start()
    try:
        prefix = f"ywfdisk{uuid.uuid4().hex[:6]}"
        steps = "\n".join(
            f"  - name: s{i:02d}\n    task: python_code\n    inputs:\n"
            f"      code: \"result = 'x' * 400\"" for i in range(120)
        )
        workflow = tmp_path / "big.yaml"
        workflow.write_text(f"name: big\nsteps:\n{steps}\n")
        env = {**os.environ, "YAML_WORKFLOW_STATE_URL": server.url, "YAML_WORKFLOW_KEY_PREFIX": prefix}
        proc = _cli(["run", str(workflow), "--workspace", str(tmp_path / "ws"), "--format", "json"],
                    env, preexec_fn=lambda: _limit_file_size(60_000))
        out, err = proc.communicate(timeout=120)
        # then every step completed with Redis as the truth, and the run is flagged
        assert proc.returncode == 0, err
        run_id = json.loads(out)["run_id"]
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.hget(f"{prefix}:run:{run_id}", "status") == "completed"
        assert client.hlen(f"{prefix}:run:{run_id}:outputs") == 120
        flags = {k: v for k, v in client.hgetall(f"{prefix}:run:{run_id}").items() if k.startswith("flag:")}
        assert "flag:mirror_write_failed" in flags, flags
        assert "could not be written" in err
        # and the state file on disk is still a whole, valid document (the last good one)
        doc = json.loads((tmp_path / "ws" / ".workflow_metadata.json").read_text())
        assert doc["workflow_id"] == run_id
    finally:
        server.stop()
