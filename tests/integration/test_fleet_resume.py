"""`submit --resume` on real workers: fix and continue, --from-step, params, refusals,
cross-mode (fleet <-> local) and a run rebuilt from its JSON mirror."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.workers import Fleet, fleet_fixture

pytestmark = [pytest.mark.celery, pytest.mark.redis]

fleet = fleet_fixture(workers=2, concurrency=1, env={"YAML_WORKFLOW_CLAIM_TTL": "3"})

# `b` fails until the file `fixed` exists; every step leaves one line per execution.
WF = """
name: fixme
params:
  n: {type: integer, default: 0}
steps:
  - {name: a, task: shell, inputs: {command: 'echo a >> "$T/witness"; echo out-a'}}
  - {name: b, task: shell, inputs: {command: 'test -f "$T/fixed" && test {{ args.n }} -ge 0 && echo b >> "$T/witness"'}}
  - {name: c, task: shell, inputs: {command: 'echo c >> "$T/witness"; echo {{ steps.a.result.stdout | trim }}-c'}}
"""


def _wf(tmp: Path, text: str = WF) -> Path:
    path = tmp / "wf.yaml"
    path.write_text(text)
    return path


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.stdout.strip().startswith("{"), (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def _submit_failed(fleet: Fleet, tmp: Path, *params: str) -> dict[str, Any]:
    proc = fleet.cli("submit", str(_wf(tmp)), *params, "--base-dir", str(tmp / "runs"), "--wait",
                     "--format", "json", env={"T": str(tmp)}, cwd=tmp)
    assert proc.returncode == 1, proc.stderr
    doc = _json(proc)
    assert doc["failed_step"] == "b"
    return doc


def _resume(fleet: Fleet, tmp: Path, run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return fleet.cli("submit", "--resume", run_id, "--wait", "--format", "json", *extra,
                     env={"T": str(tmp)}, cwd=tmp, timeout=90)


def _witness(tmp: Path) -> list[str]:
    path = tmp / "witness"
    return path.read_text().split() if path.exists() else []


def _state(workspace: str) -> dict[str, Any]:
    return json.loads((Path(workspace) / ".workflow_metadata.json").read_text())


def test_failed_run_fixed_and_resumed_on_the_fleet(fleet: Fleet, tmp_path: Path) -> None:
    first = _submit_failed(fleet, tmp_path)
    assert _witness(tmp_path) == ["a"]
    (tmp_path / "fixed").touch()
    proc = _resume(fleet, tmp_path, first["run_id"])
    assert proc.returncode == 0, proc.stderr
    out = _json(proc)
    assert out["status"] == "success" and out["run_id"] == first["run_id"]
    assert _witness(tmp_path) == ["a", "b", "c"]  # a is not run again
    # a's output is restored for c's template, and shows in the outputs.
    assert out["outputs"]["c"]["stdout"].strip() == "out-a-c"
    assert out["outputs"]["a"]["stdout"].strip() == "out-a"
    state = _state(first["workspace"])
    assert state["status"] == "completed"
    resumes = [h for h in state["history"] if h["event"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["count"] == 1 and resumes[0]["from_step"] == "b"
    # A completed run is refused, with one line.
    again = fleet.cli("submit", "--resume", first["run_id"], cwd=tmp_path)
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1 and "already completed" in again.stderr


def test_from_step_runs_that_step_and_the_rest_again(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "fixed").touch()
    proc = fleet.cli("submit", str(_wf(tmp_path)), "--base-dir", str(tmp_path / "runs"), "--wait",
                     "--format", "json", env={"T": str(tmp_path)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = _json(proc)["run_id"]
    proc = _resume(fleet, tmp_path, run_id, "--from-step", "b")
    assert proc.returncode == 0, proc.stderr
    assert _witness(tmp_path) == ["a", "b", "c", "b", "c"]


def test_params_kept_unless_override(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "fixed").touch()
    first = _submit_failed(fleet, tmp_path, "n=-1")  # `test -1 -ge 0` fails
    refused = fleet.cli("submit", "--resume", first["run_id"], "n=3", cwd=tmp_path)
    assert refused.returncode == 2 and "override-params" in refused.stderr
    proc = _resume(fleet, tmp_path, first["run_id"], "--override-params", "n=3")
    assert proc.returncode == 0, proc.stderr
    assert _state(first["workspace"])["params"]["n"] == 3
    assert _witness(tmp_path) == ["a", "b", "c"]


def test_changed_step_needs_from_step_or_force(fleet: Fleet, tmp_path: Path) -> None:
    first = _submit_failed(fleet, tmp_path)
    (tmp_path / "fixed").touch()
    changed = _wf(tmp_path, WF.replace("echo out-a", "echo out-A"))
    refused = fleet.cli("submit", str(changed), "--resume", first["run_id"], cwd=tmp_path)
    assert refused.returncode == 2 and "changed" in refused.stderr, refused.stderr
    proc = _resume(fleet, tmp_path, first["run_id"], str(changed), "--force")
    assert proc.returncode == 0, proc.stderr
    assert _witness(tmp_path) == ["a", "a", "b", "c"]
    assert _json(proc)["outputs"]["c"]["stdout"].strip() == "out-A-c"


def _local_env(fleet: Fleet, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in fleet.env.items() if k != "YAML_WORKFLOW_STATE_URL"}
    env["T"] = str(tmp)
    return env


def test_fleet_failure_resumed_locally(fleet: Fleet, tmp_path: Path) -> None:
    first = _submit_failed(fleet, tmp_path)
    (tmp_path / "fixed").touch()
    # The file store reads the workspace's mirror; the fleet-only fields are ignored.
    proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", "--resume", "--workspace",
                           first["workspace"], "--format", "json"], env=_local_env(fleet, tmp_path),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _witness(tmp_path) == ["a", "b", "c"]
    assert _state(first["workspace"])["status"] == "completed"


def test_local_failure_resumed_on_the_fleet(fleet: Fleet, tmp_path: Path) -> None:
    workspace = tmp_path / "runs" / "local_ws"
    proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", str(_wf(tmp_path)),
                           "--workspace", str(workspace), "--format", "json"],
                          env=_local_env(fleet, tmp_path), capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    (tmp_path / "fixed").touch()
    proc = _resume(fleet, tmp_path, run_id, "--workspace", str(workspace))
    assert proc.returncode == 0, proc.stderr
    assert _witness(tmp_path) == ["a", "b", "c"]
    state = _state(str(workspace))
    assert state["status"] == "completed"
    assert state["execution_state"]["step_outputs"]["c"]["host"].startswith("w")  # ran on a worker


def test_run_lost_by_redis_is_rebuilt_from_the_mirror(fleet: Fleet, tmp_path: Path) -> None:
    first = _submit_failed(fleet, tmp_path)
    client = redis.Redis.from_url(fleet.server.url)
    for key in client.scan_iter(match=f"{fleet.server.prefix}:*"):
        client.delete(key)  # the run's keys only: the broker's queues stay
    status = fleet.cli("status", first["run_id"], "--base-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert status.returncode == 0 and "no longer has this run" in status.stdout
    (tmp_path / "fixed").touch()
    # The run's workspace is searched for under --base-dir (and $YAML_WORKFLOW_WORKSPACE_ROOT).
    proc = _resume(fleet, tmp_path, first["run_id"], "--base-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    assert _witness(tmp_path) == ["a", "b", "c"]
    assert _json(proc)["outputs"]["c"]["stdout"].strip() == "out-a-c"
    assert client.exists(f"{fleet.server.prefix}:run:{first['run_id']}")


def test_unknown_run_and_missing_file_are_refused(fleet: Fleet, tmp_path: Path) -> None:
    proc = fleet.cli("submit", "--resume", "0123456789abcdef", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = fleet.cli("submit", cwd=tmp_path)
    assert proc.returncode == 2
    assert os.path.exists(tmp_path)


def test_cancel_stops_a_fleet_run_and_resume_continues_it(fleet: Fleet, tmp_path: Path) -> None:
    import time

    wf = _wf(tmp_path, "name: stop\nsteps:\n"
             "  - {name: long, task: shell, inputs: {command: 'echo long >> \"$T/witness\"; sleep 30'}}\n"
             "  - {name: next, task: shell, inputs: {command: 'echo next >> \"$T/witness\"'}}\n")
    proc = fleet.cli("submit", str(wf), "--base-dir", str(tmp_path / "runs"), "--format", "json",
                     env={"T": str(tmp_path)}, cwd=tmp_path)
    doc = _json(proc)
    deadline = time.monotonic() + 20
    while _witness(tmp_path) != ["long"] and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    cancel = fleet.cli("cancel", doc["run_id"], cwd=tmp_path)
    assert cancel.returncode == 0, cancel.stderr
    client = redis.Redis.from_url(fleet.server.url)
    claim = f"{fleet.server.prefix}:run:{doc['run_id']}:claim:long"
    while client.exists(claim) and time.monotonic() - started < 10:
        time.sleep(0.1)
    assert not client.exists(claim)  # the running step was terminated, its claim given back
    time.sleep(1)
    assert _state(doc["workspace"])["status"] == "cancelled"
    assert _witness(tmp_path) == ["long"]  # not run again, and `next` never started
    (tmp_path / "witness").unlink()
    wf.write_text(wf.read_text().replace("sleep 30", "true"))
    proc = _resume(fleet, tmp_path, doc["run_id"], str(wf), "--force")
    assert proc.returncode == 0, proc.stderr
    assert _witness(tmp_path) == ["long", "next"]
