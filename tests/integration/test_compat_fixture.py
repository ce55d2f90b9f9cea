"""Runs recorded by an older release still resume, locally and on the fleet.

tests/fixtures/compat/ holds two runs of compat.yaml that failed at `items` (a batch
whose item 3 failed, some of its other items done), recorded by
the release before the package was restructured (scripts/make-compat-fixture, README
there): a local run's workspace (file store), and a fleet run's workspace with a JSON
dump of its Redis keys.  Each test resumes a copy with today's code and checks that the
run completes, that no step or batch item that had completed runs again
(output/witness has one line per execution) and that the outputs recorded by the old
release are the ones used.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.redis_dump import read_dump, restore_keys
from tests.support.workers import Fleet

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "compat"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())
DONE_BEFORE = ["prepare", "greet"]  # completed before the failure at items


def _copy(part: str, tmp: Path) -> Path:
    """A writable copy of the fixture's workspace, item 3 fixed (output/go exists)."""
    workspace = tmp / Path(MANIFEST[part]["workspace"]).name
    shutil.copytree(FIXTURE / MANIFEST[part]["workspace"], workspace, symlinks=True)
    (workspace / "output" / "go").touch()
    return workspace


def _state(workspace: Path) -> dict[str, Any]:
    return json.loads((workspace / ".workflow_metadata.json").read_text())


def _witness(workspace: Path) -> Counter[str]:
    return Counter((workspace / "output" / "witness").read_text().split())


def _check_completed(workspace: Path, before: dict[str, Any], witness_before: Counter[str]) -> None:
    """The resumed run's files: completed, nothing done twice, old outputs used."""
    old = before["execution_state"]["step_outputs"]
    assert all(old[s]["status"] == "completed" for s in DONE_BEFORE) and old["items"]["status"] == "failed"
    old_items = old["items"]["items"]
    assert old_items["2"]["status"] == "failed" and any(i["status"] == "completed" for i in old_items.values())
    # then nothing that had completed ran again: only the items not done before ran
    again = Counter(f"item-{i + 1}" for i in range(6)
                    if (old_items.get(str(i)) or {}).get("status") != "completed")
    assert _witness(workspace) - witness_before == again
    state = _state(workspace)
    assert state["status"] == "completed" and state["workflow_id"] == before["workflow_id"]
    records = state["execution_state"]["step_outputs"]
    assert {s: records[s]["status"] for s in records} == dict.fromkeys([*DONE_BEFORE, "items", "finish"], "completed")
    for step in DONE_BEFORE:  # the old records are kept as they were
        assert records[step]["result"] == old[step]["result"], step
    results = records["items"]["result"]["results"]
    for index, item in old_items.items():  # and so are the old item results
        if item["status"] == "completed":
            assert results[int(index)] == item["result"], index
    # finish read them all: the token the old `prepare` printed, every item's result
    result = json.loads((workspace / "output" / "result.json").read_text())
    assert result["token"] == old["prepare"]["result"]["stdout"]
    assert result["greeting"] == "hello Ada"
    assert [int(r["stdout"]) for r in result["items"]] == [10, 20, 30, 40, 50, 60]


def test_a_local_run_of_the_old_release_resumes(tmp_path: Path) -> None:
    # given the old release's failed local run, copied, with item 3's problem fixed
    workspace = _copy("local", tmp_path)
    before, witness = _state(workspace), _witness(workspace)
    assert before["workflow_id"] == MANIFEST["local"]["run_id"] and before["status"] == "failed"
    # when today's code resumes it: its stored workflow was not signed (the old release did
    # not sign), so it alone is not trusted; the workflow file given again is checked
    # against the steps that ran
    alone = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", "--resume", "--workspace",
                            str(workspace)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                           stdin=subprocess.DEVNULL)
    assert alone.returncode == 2 and "pass the workflow file" in alone.stderr, alone.stderr
    proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", str(FIXTURE / "compat.yaml"), "--resume",
                           "--workspace", str(workspace)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, stdin=subprocess.DEVNULL)
    # then it completes where it stopped
    assert proc.returncode == 0, proc.stderr
    _check_completed(workspace, before, witness)


@pytest.mark.redis
@pytest.mark.celery
def test_a_fleet_run_of_the_old_release_resumes_on_new_workers(tmp_path: Path) -> None:
    # given a fresh redis-server holding the old release's keys of a failed fleet run,
    # the run's workspace (copied, item 3 fixed) and new real workers under the old prefix
    dump = read_dump(FIXTURE / MANIFEST["fleet"]["keys"])
    run_id, prefix = MANIFEST["fleet"]["run_id"], MANIFEST["fleet"]["prefix"]
    assert dump["run_id"] == run_id and dump["prefix"] == prefix
    fleet = Fleet(workers=2, concurrency=2, env={"YAML_WORKFLOW_KEY_PREFIX": prefix})
    try:
        client = redis.Redis.from_url(fleet.server.url)
        restore_keys(client, dump["keys"])
        client.close()
        fleet.start()
        workspace = _copy("fleet", tmp_path)
        before, witness = _state(workspace), _witness(workspace)
        assert before["workflow_id"] == run_id and before["status"] == "failed"
        # the old keys read as the run they hold
        status = fleet.cli("status", run_id, "--format", "json")
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)
        assert shown["status"] == "failed" and shown["run_id"] == run_id
        # when today's code resumes it on the fleet (the workspace moved: --workspace says where)
        # (with the workflow file: the old release did not sign the workflow it stored)
        proc = fleet.cli("submit", str(FIXTURE / "compat.yaml"), "--resume", run_id, "--workspace",
                         str(workspace), "--wait", "--format", "json", timeout=180)
        # then it completes, each step recorded once, the old outputs used
        assert proc.returncode == 0, (proc.stdout, proc.stderr, fleet.log(0)[-3000:])
        out = json.loads(proc.stdout)
        assert out["status"] == "success" and out["run_id"] == run_id
        assert out["outputs"]["prepare"] == before["execution_state"]["step_outputs"]["prepare"]["result"]
        _check_completed(workspace, before, witness)
    finally:
        fleet.stop()
