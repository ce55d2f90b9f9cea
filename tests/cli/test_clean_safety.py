"""`clean` deletes runs only: never a folder that is not a run workspace by our own record,
and Redis keys only of a run whose Redis record names that same workspace."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.cli import cli
from tests.support.redis_server import RedisServer
from yaml_workflow.state.document import now_iso
from yaml_workflow.state.mirror import JOURNAL_DIR, STATE_FILE

DAY = 86400.0


def run_once(tmp_path: Path, base: Path, name: str = "demo") -> Path:
    """One finished run under ``base``; its workspace."""
    wf = tmp_path / f"{name}.yaml"
    wf.write_text(f"name: {name}\nsteps:\n  - {{name: only, task: echo, inputs: {{message: hi}}}}\n")
    before = set(base.iterdir()) if base.exists() else set()
    outcome = cli("run", str(wf), "--base-dir", str(base), "-q")
    assert outcome.code == 0, outcome
    (workspace,) = set(base.iterdir()) - before
    return workspace


def make_old(workspace: Path) -> None:
    path = workspace / STATE_FILE
    doc = json.loads(path.read_text())
    doc["last_updated"] = now_iso(time.time() - 40 * DAY)
    path.write_text(json.dumps(doc))


@pytest.fixture()
def userdata(tmp_path: Path) -> Path:
    """runs/userdata: a folder of the user's with something precious in it."""
    folder = tmp_path / "runs" / "userdata"
    folder.mkdir(parents=True)
    (folder / "precious.txt").write_text("keep me")
    return folder


@pytest.mark.parametrize("decoy", ["empty_journal", "torn_state", "empty_state", "copied_state"])
def test_clean_never_deletes_a_folder_that_is_not_a_run_workspace(
    tmp_path: Path, userdata: Path, decoy: str
) -> None:
    base = userdata.parent
    real = run_once(tmp_path, base)
    if decoy == "empty_journal":
        (userdata / JOURNAL_DIR).mkdir(parents=True)
    elif decoy == "torn_state":
        (userdata / STATE_FILE).write_text('{"workflow_id": "abc", "status": "comp')
    elif decoy == "empty_state":
        (userdata / STATE_FILE).write_text("")
    else:  # a state file copied in to look at: it names its own workspace, not this folder
        shutil.copy(real / STATE_FILE, userdata / STATE_FILE)
        make_old(userdata)

    # The payload of the report: --status unknown takes nothing, in one line, exit 2.
    refused = cli("clean", "--base-dir", str(base), "--older-than", "0", "--status", "unknown")
    assert refused.code == 2 and refused.err.count("\n") == 1 and refused.err.startswith("error: "), refused
    # Every run status, any age: the real run goes, the user's folder stays.
    outcome = cli("clean", "--base-dir", str(base), "--older-than", "0",
                  "--status", "completed,failed,cancelled,running")
    assert outcome.code == 0, outcome
    assert (userdata / "precious.txt").read_text() == "keep me"
    assert not real.exists()
    if decoy == "copied_state":
        assert f"kept {userdata}: its state belongs to the run workspace {real}" in outcome.out, outcome.out
    # workspace clean shares the implementation
    again = cli("workspace", "clean", "--base-dir", str(base), "--older-than", "0")
    assert again.code == 0 and (userdata / "precious.txt").exists(), again


def test_a_link_to_a_folder_elsewhere_is_never_cleaned(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    elsewhere = run_once(tmp_path, tmp_path / "other")
    make_old(elsewhere)
    base.mkdir()
    (base / "demo_run_1").symlink_to(elsewhere, target_is_directory=True)
    outcome = cli("clean", "--base-dir", str(base), "--older-than", "0")
    assert outcome.code == 0 and "removed 0 workspace(s)" in outcome.out, outcome
    assert (elsewhere / STATE_FILE).exists()


@pytest.mark.parametrize("status", ["unknown", "bogus", "completed,nope", "x" * 500])
def test_an_unknown_status_is_one_line_and_exit_2(tmp_path: Path, status: str) -> None:
    base = tmp_path / "runs"
    workspace = run_once(tmp_path, base)
    outcome = cli("clean", "--base-dir", str(base), "--older-than", "0", "--status", status)
    assert outcome.code == 2 and len(outcome.err.splitlines()) == 1 and len(outcome.err) < 400, outcome
    assert workspace.exists()


def test_a_moved_base_dir_is_still_cleaned(tmp_path: Path) -> None:
    workspace = run_once(tmp_path, tmp_path / "runs")
    make_old(workspace)
    moved = tmp_path / "archive"
    (tmp_path / "runs").rename(moved)
    outcome = cli("clean", "--base-dir", str(moved))
    assert outcome.code == 0 and "removed 1 workspace(s)" in outcome.out, outcome
    assert not (moved / workspace.name).exists()


# --- Redis records -------------------------------------------------------------------------


@pytest.fixture()
def redis_env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[redis.Redis, str]]:
    """Local runs keep their state in a real Redis under a fresh prefix."""
    prefix = f"ywfclean{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("YAML_WORKFLOW_STATE_URL", redis_server.url)
    monkeypatch.setenv("YAML_WORKFLOW_KEY_PREFIX", prefix)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client, prefix
    client.close()


def keys_of(client: redis.Redis, prefix: str, run_id: str) -> set[str]:
    found = set(client.scan_iter(match=f"{prefix}:run:{run_id}", count=1000))
    return found | set(client.scan_iter(match=f"{prefix}:run:{run_id}:*", count=1000))


@pytest.mark.redis
def test_a_forged_state_file_cannot_delete_another_runs_redis_keys(
    tmp_path: Path, redis_env: tuple[redis.Redis, str]
) -> None:
    client, prefix = redis_env
    victim = run_once(tmp_path, tmp_path / "runs", "victim")
    victim_id = json.loads((victim / STATE_FILE).read_text())["workflow_id"]
    victim_keys = keys_of(client, prefix, victim_id)
    assert len(victim_keys) >= 4, victim_keys
    # A folder of the attacker's, whose state file carries the victim's id (and names its
    # own folder as the workspace, so that it passes for a run workspace).
    forged_base = tmp_path / "forged"
    # ("*" and a prefix with "*": ids that a glob would read as "every run").
    for number, run_id in enumerate((victim_id, "*", f"{victim_id[:4]}*"), start=1):
        folder = forged_base / f"evil_run_{number}"
        folder.mkdir(parents=True)
        doc = json.loads((victim / STATE_FILE).read_text())
        doc.update(workflow_id=run_id, workspace=str(folder), name="evil",
                   last_updated=now_iso(time.time() - 40 * DAY))
        (folder / STATE_FILE).write_text(json.dumps(doc))
    outcome = cli("clean", "--base-dir", str(forged_base), "--older-than", "0")
    assert outcome.code == 0, outcome
    assert keys_of(client, prefix, victim_id) == victim_keys, "the victim's keys were deleted"
    assert client.zscore(f"{prefix}:runs", victim_id) is not None
    assert (victim / STATE_FILE).exists()
    assert "store records left" in outcome.out, outcome.out

    # The victim's own clean takes its keys with it.
    make_old(victim)
    own = cli("clean", "--base-dir", str(tmp_path / "runs"))
    assert own.code == 0 and "removed 1 workspace(s)" in own.out, own
    assert keys_of(client, prefix, victim_id) == set()
    assert client.zscore(f"{prefix}:runs", victim_id) is None
