"""`submit` refusals and waiting: exit 3 unreachable, 2 limits, 4 --timeout, no worker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer, free_port
from tests.support.workers import Fleet, fleet_fixture

pytestmark = [pytest.mark.celery, pytest.mark.redis]

# Workers that publish a visibility timeout of 200 s (the submitter's own default is 3600).
fleet = fleet_fixture(workers=1, concurrency=1, env={"YAML_WORKFLOW_VISIBILITY_TIMEOUT": "200"})

# Steps without a timeout get 100 s here, which the 200 s above covers.
LIMIT = {"YAML_WORKFLOW_STEP_TIMEOUT": "100"}
WF = "name: tiny\nsteps:\n  - {name: a, task: echo, inputs: {message: hi}}\n"


def _cli(tmp: Path, env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    wf = tmp / "wf.yaml"
    if not wf.exists():
        wf.write_text(WF)
    import os

    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "yaml_workflow", "submit", str(wf), *args],
                          env=full, capture_output=True, text=True, timeout=timeout, cwd=str(tmp))


def test_unreachable_broker_exits_3_fast_and_creates_nothing(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    proc = _cli(tmp_path, {"YAML_WORKFLOW_BROKER_URL": url, "YAML_WORKFLOW_STATE_URL": url},
                "--wait", "--base-dir", "runs")
    assert time.monotonic() - started < 5
    assert proc.returncode == 3
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()


def test_wait_timeout_exits_4_and_prints_the_run_id(fleet: Fleet, tmp_path: Path) -> None:
    # No worker consumes the queue "parked": the run waits; submit gives up waiting.
    proc = _cli(tmp_path, {**fleet.server.env(), **LIMIT}, "--base-dir", "runs", "--wait",
                "--timeout", "1", "--queue", "parked")
    assert proc.returncode == 4, proc.stderr
    run_id = proc.stdout.splitlines()[0]
    assert len(run_id) == 16 and run_id in proc.stderr
    state = json.loads(next((tmp_path / "runs").glob("tiny_run_*/.workflow_metadata.json")).read_text())
    assert state["workflow_id"] == run_id and state["status"] == "running"  # the run goes on


def test_declared_secret_checked_on_the_submitter_before_anything(fleet: Fleet, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: s\nsecrets: [YWF_TEST_API_TOKEN]\nsteps:\n  - {name: a, task: noop}\n")
    proc = _cli(tmp_path, {**fleet.server.env(), **LIMIT, "YWF_TEST_API_TOKEN": ""}, "--base-dir", "runs")
    assert proc.returncode == 2 and "YWF_TEST_API_TOKEN" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_no_worker_answering_is_reported_after_10s(tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        proc = _cli(tmp_path, server.env(), "--base-dir", "runs", "--wait", "--timeout", "12")
    finally:
        server.stop()
    assert proc.returncode == 4
    assert "no worker answered" in proc.stderr
