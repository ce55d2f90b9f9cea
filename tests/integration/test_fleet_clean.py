"""`clean --workflow-id` of fleet runs: the workspace and every Redis key of the run go
(the store's and the fleet's, and its entry in the run index); a running run never does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.workers import Fleet, fleet_fixture, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.redis]

fleet = fleet_fixture(workers=2, concurrency=1)

DONE = """
name: done
steps:
  - {name: a, task: shell, inputs: {command: echo a}}
  - {name: b, task: shell, inputs: {command: 'echo b-{{ steps.a.result.stdout | trim }}'}}
"""

LONG = """
name: long
steps:
  - {name: long, task: shell, inputs: {command: 'echo started > "$T/started"; sleep 30'}}
  - {name: next, task: shell, inputs: {command: echo next}}
"""


def _submit(fleet: Fleet, tmp: Path, text: str, *extra: str) -> dict[str, Any]:
    wf = tmp / f"wf{time.monotonic_ns()}.yaml"
    wf.write_text(text)
    proc = fleet.cli("submit", str(wf), "--base-dir", str(tmp / "runs"), "--format", "json", *extra,
                     env={"T": str(tmp)}, cwd=tmp)
    assert proc.stdout.strip().startswith("{"), (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _keys(fleet: Fleet, run_id: str) -> list[str]:
    client = redis.Redis.from_url(fleet.server.url, decode_responses=True)
    return sorted(client.scan_iter(match=f"{fleet.server.prefix}:run:{run_id}*", count=1000))


def _indexed(fleet: Fleet, run_id: str) -> bool:
    client = redis.Redis.from_url(fleet.server.url)
    return client.zscore(f"{fleet.server.prefix}:runs", run_id) is not None


def _clean(fleet: Fleet, tmp: Path, *args: str) -> Any:
    return fleet.cli("clean", "--base-dir", str(tmp / "runs"), *args, cwd=tmp)


def test_clean_removes_the_workspace_and_every_redis_key(fleet: Fleet, tmp_path: Path) -> None:
    gone = _submit(fleet, tmp_path, DONE, "--wait")
    kept = _submit(fleet, tmp_path, DONE, "--wait")
    assert gone["status"] == kept["status"] == "success"
    before = _keys(fleet, gone["run_id"])
    # The store's hashes and the fleet's spec, counters and event stream are all there.
    for suffix in ("", ":steps", ":outputs", ":history", ":spec", ":fleet", ":events"):
        assert f"{fleet.server.prefix}:run:{gone['run_id']}{suffix}" in before, before
    assert _indexed(fleet, gone["run_id"])
    other = _keys(fleet, kept["run_id"])

    dry = _clean(fleet, tmp_path, "--workflow-id", gone["run_id"], "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert Path(gone["workspace"]).is_dir() and _keys(fleet, gone["run_id"]) == before

    proc = _clean(fleet, tmp_path, "--workflow-id", gone["run_id"])
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 workspace(s)" in proc.stdout, proc.stdout
    assert not Path(gone["workspace"]).exists()
    assert _keys(fleet, gone["run_id"]) == []
    assert not _indexed(fleet, gone["run_id"])
    # The other run is untouched, and still answers `status`.
    assert Path(kept["workspace"]).is_dir()
    assert _keys(fleet, kept["run_id"]) == other and _indexed(fleet, kept["run_id"])
    status = fleet.cli("status", kept["run_id"], cwd=tmp_path)
    assert status.returncode == 0, status.stderr


def test_clean_never_removes_a_running_run(fleet: Fleet, tmp_path: Path) -> None:
    doc = _submit(fleet, tmp_path, LONG)
    run_id, workspace = doc["run_id"], Path(doc["workspace"])
    wait_for(lambda: (tmp_path / "started").exists(), 30, "the long step to start")
    before = _keys(fleet, run_id)
    try:
        # Neither by default (finished runs only) nor when `running` is asked for by name.
        for extra in ((), ("--status", "running"), ("--status", "running", "--older-than", "0s")):
            proc = _clean(fleet, tmp_path, "--workflow-id", run_id, *extra)
            assert "removed 0 workspace(s)" in proc.stdout, (extra, proc.stdout, proc.stderr)
            assert workspace.is_dir()
            assert _indexed(fleet, run_id)
            assert set(before) <= set(_keys(fleet, run_id)), (extra, before, _keys(fleet, run_id))
    finally:
        cancel = fleet.cli("cancel", run_id, cwd=tmp_path)
        assert cancel.returncode == 0, cancel.stderr
    # Once cancelled it is a finished run like any other.
    claim = f"{fleet.server.prefix}:run:{run_id}:claim:long"
    wait_for(lambda: claim not in _keys(fleet, run_id), 15, "the cancelled step's claim to go")
    proc = _clean(fleet, tmp_path, "--workflow-id", run_id)
    assert proc.returncode == 0 and "removed 1 workspace(s)" in proc.stdout, (proc.stdout, proc.stderr)
    assert not workspace.exists()
    assert _keys(fleet, run_id) == [] and not _indexed(fleet, run_id)
