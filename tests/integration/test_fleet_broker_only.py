"""Fleet commands with the README's settings alone: ``YAML_WORKFLOW_BROKER_URL`` and nothing else.

Two real workers on a private redis-server; every command runs as a subprocess whose
environment holds no ``YAML_WORKFLOW_*`` variable but the broker URL, from a directory
that holds no workspace, so a run it finds was read in Redis.  The commands that
address runs find the fleet's runs there, say which store they read, and report what
actually happened; the built-in default broker alone makes none of them look for Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.redis_server import free_port
from tests.support.workers import Fleet, fleet_fixture, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.redis]

fleet = fleet_fixture(workers=2, concurrency=2, broker_only=True)

# `b` fails until the file `fixed` exists; each step leaves a line per execution.
FIXME = """
name: fixme
steps:
  - {name: a, task: shell, inputs: {command: 'echo a >> "$T/witness"; echo out-a'}}
  - {name: b, task: shell, inputs: {command: 'test -f "$T/fixed" && echo b >> "$T/witness"'}}
  - {name: c, task: shell, inputs: {command: 'echo c >> "$T/witness"'}}
"""

LONG = """
name: stop
steps:
  - {name: long, task: shell, inputs: {command: 'echo long >> "$T/witness"; sleep 30'}}
  - {name: next, task: shell, inputs: {command: 'echo next >> "$T/witness"'}}
"""


def only_broker(url: str | None, **extra: str) -> dict[str, str]:
    """This environment without any YAML_WORKFLOW_* setting but the broker URL (if given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YAML_WORKFLOW_")}
    if url is not None:
        env["YAML_WORKFLOW_BROKER_URL"] = url
    env.update(extra)
    return env


def ywf(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "yaml_workflow", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """stdout is one JSON document and nothing else."""
    return json.loads(proc.stdout)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


class Place:
    """A submitter's directory (its workspaces under ./runs) and an empty one elsewhere."""

    def __init__(self, fleet: Fleet, tmp: Path) -> None:
        self.fleet, self.tmp = fleet, tmp
        self.submitter, self.elsewhere = tmp / "submitter", tmp / "elsewhere"
        self.env = only_broker(fleet.server.url, T=str(tmp))

    def workflow(self, text: str) -> Path:
        path = self.tmp / "wf.yaml"
        path.write_text(text)
        return path

    def submit(self, text: str, *flags: str) -> subprocess.CompletedProcess[str]:
        return ywf(self.env, self.submitter, "submit", str(self.workflow(text)), "--format", "json", *flags)

    def at(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command run where no workspace is: what it finds, it read in Redis."""
        return ywf(self.env, self.elsewhere, *args)

    def status(self, run_id: str) -> dict[str, Any]:
        proc = self.at("status", run_id, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        return one_json(proc)  # type: ignore[no-any-return]

    def witness(self) -> list[str]:
        path = self.tmp / "witness"
        return path.read_text().split() if path.exists() else []

    def failed_run(self) -> str:
        proc = self.submit(FIXME, "--wait")
        assert proc.returncode == 1, proc.stderr
        doc = one_json(proc)
        assert doc["failed_step"] == "b"
        return str(doc["run_id"])


@pytest.fixture
def place(fleet: Fleet, tmp_path: Path) -> Place:
    return Place(fleet, tmp_path)


def test_status_and_runs_read_the_fleet_s_runs_in_redis_and_say_so(place: Place) -> None:
    # given a fleet run submitted with the broker URL alone
    proc = place.submit(FIXME.replace("test -f", "true ||"), "--wait")
    assert proc.returncode == 0, proc.stderr
    run_id = one_json(proc)["run_id"]
    redis_url = place.fleet.server.url
    # when status is asked where no workspace is, then Redis answered, and says it did
    info = place.status(run_id)
    assert info["status"] == "completed" and info["store"] == redis_url
    text = place.at("status", run_id)
    assert text.returncode == 0 and f"store {redis_url}" in text.stdout
    # and `runs` lists it from Redis, naming what it read, stdout one JSON document
    listing = place.at("runs", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    doc = one_json(listing)
    assert doc["store"] == redis_url and redis_url in doc["sources"]
    row = next(r for r in doc["runs"] if r["run_id"] == run_id)
    assert row["store"] == redis_url and row["status"] == "completed"
    assert f"# read: {redis_url}" in place.at("runs").stdout
    # and `logs` finds the workspace through the run's Redis record
    logs = place.at("logs", run_id, "--step", "a")
    assert logs.returncode == 0 and "out-a" in logs.stdout, logs.stderr


def test_cancel_reaches_the_fleet_and_the_waiting_submit_says_cancelled(place: Place) -> None:
    # given a fleet run in its long first step, followed by `submit --wait`
    place.submitter.mkdir()
    waiting = subprocess.Popen([sys.executable, "-m", "yaml_workflow", "submit", str(place.workflow(LONG)),
                                "--wait"], env=place.env, cwd=place.submitter,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert waiting.stdout is not None
    run_id = waiting.stdout.readline().strip()  # the first line, printed before it follows
    wait_for(lambda: place.witness() == ["long"], 60, "the long step to start")
    # when it is cancelled from elsewhere with the broker URL alone
    cancel = place.at("cancel", run_id)
    # then the cancel reached Redis, and what was read back is reported
    assert cancel.returncode == 0, cancel.stderr
    assert one_line(cancel.stdout) == f"run {run_id} cancelled"
    assert place.status(run_id)["status"] == "cancelled"
    out, err = waiting.communicate(timeout=90)
    assert waiting.returncode == 1, err
    # the follower names the outcome without an empty reason ("cancelled: None")
    assert f"error: Workflow 'stop' cancelled (run {run_id}, workspace " in err, err
    assert "None" not in err
    # and the run did not go on: `next` never ran
    assert place.status(run_id)["status"] == "cancelled"
    assert place.witness() == ["long"]
    # a second cancel reads the run back: nothing to cancel, exit 2, one line
    again = place.at("cancel", run_id)
    assert again.returncode == 2 and "already cancelled" in one_line(again.stderr)


def test_retry_and_skip_continue_the_fleet_run_and_report_its_status(place: Place) -> None:
    # given a run that failed at `b`
    run_id = place.failed_run()
    (place.tmp / "fixed").touch()
    # when `retry` is asked from elsewhere with the broker URL alone (not waiting)
    retry = place.at("retry", run_id, "--step", "b")
    # then the message is the run's status as read back in Redis
    assert retry.returncode == 0, retry.stderr
    assert one_line(retry.stdout) == run_id
    assert one_line(retry.stderr).startswith(f"run {run_id}: step 'b' runs again; the run is ")
    said = one_line(retry.stderr).rsplit(" ", 1)[1]
    assert said in ("running", "completed"), said
    wait_for(lambda: place.status(run_id)["status"] == "completed", 60, "the retried run to complete")
    assert place.witness() == ["a", "b", "c"]
    # and `skip --wait` of another failed run follows it to the end
    (place.tmp / "fixed").unlink()
    (place.tmp / "witness").unlink()
    other = place.failed_run()
    skip = place.at("skip", other, "--step", "b", "--wait", "--format", "json")
    assert skip.returncode == 0, skip.stderr
    assert one_json(skip)["status"] == "success"
    steps = {row["step"]: row["status"] for row in place.status(other)["steps"]}
    assert steps == {"a": "completed", "b": "skipped", "c": "completed"}


def test_submit_resume_finds_the_run_in_redis(place: Place) -> None:
    run_id = place.failed_run()
    (place.tmp / "fixed").touch()
    proc = place.at("submit", "--resume", run_id, "--wait", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert one_json(proc)["status"] == "success"
    assert place.witness() == ["a", "b", "c"]


def test_clean_removes_the_run_s_redis_keys_with_its_workspace(place: Place) -> None:
    # given a finished fleet run: its workspace here, its keys in the broker's Redis
    proc = place.submit(FIXME.replace("test -f", "true ||"), "--wait")
    assert proc.returncode == 0, proc.stderr
    doc = one_json(proc)
    client = redis.Redis.from_url(place.fleet.server.url)
    assert list(client.scan_iter(match=f"*{doc['run_id']}*"))
    # when clean removes it by id
    clean = ywf(place.env, place.submitter, "clean", "--workflow-id", doc["run_id"])
    # then the workspace and every Redis key of the run are gone
    assert clean.returncode == 0, clean.stderr
    assert not Path(doc["workspace"]).exists()
    assert not list(client.scan_iter(match=f"*{doc['run_id']}*"))
    gone = place.at("status", doc["run_id"])
    assert gone.returncode == 2, gone.stderr


def test_a_run_found_nowhere_is_one_line_and_exit_2(place: Place) -> None:
    for command in (["status"], ["logs"], ["cancel"], ["retry", "--step", "a"], ["skip", "--step", "a"],
                    ["submit", "--resume"]):
        args = [*command[:1], "0123456789abcdef", *command[1:]] if command[0] != "submit" else [*command, "0123456789abcdef"]
        proc = place.at(*args)
        assert proc.returncode == 2, (command, proc.stderr)
        line = one_line(proc.stderr)
        assert "0123456789abcdef" in line and place.fleet.server.url in line, line


def test_an_unreachable_configured_redis_is_exit_3_unless_a_workspace_holds_the_run(tmp_path: Path) -> None:
    # given a broker URL on which nothing listens, and a local run in ./runs
    env = only_broker(f"redis://127.0.0.1:{free_port()}/0")
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: here\nsteps:\n  - {name: a, task: echo, inputs: {message: hi}}\n")
    run = ywf(env, tmp_path, "run", str(wf), "--format", "json")
    assert run.returncode == 0, run.stderr  # `run` keeps its own store
    run_id = one_json(run)["run_id"]
    # when a run no workspace holds is asked for: one line, exit 3
    missing = ywf(env, tmp_path, "status", "0123456789abcdef")
    assert missing.returncode == 3 and "cannot be reached" in one_line(missing.stderr)
    # when the local run is asked for: shown from its workspace, with a warning
    found = ywf(env, tmp_path, "status", run_id, "--format", "json")
    assert found.returncode == 0, found.stderr
    assert one_json(found)["store"] == "workspace"
    assert one_line(found.stderr).startswith("warning: ")
    # and `runs` lists the workspaces, warns, exits 3, stdout still one JSON document
    listing = ywf(env, tmp_path, "runs", "--format", "json")
    assert listing.returncode == 3 and one_line(listing.stderr).startswith("warning: ")
    assert [r["run_id"] for r in one_json(listing)["runs"]] == [run_id]
    assert one_json(listing)["store"] == "workspace"  # what was read: the workspaces only


def test_the_built_in_default_broker_alone_reads_the_workspaces_only(tmp_path: Path) -> None:
    # given no setting at all (a laptop without Redis)
    env = only_broker(None)
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: here\nsteps:\n  - {name: a, task: echo, inputs: {message: hi}}\n")
    run_id = one_json(ywf(env, tmp_path, "run", str(wf), "--format", "json"))["run_id"]
    # then status and runs work from the workspaces and never try Redis
    status = ywf(env, tmp_path, "status", run_id, "--format", "json")
    assert status.returncode == 0 and status.stderr == "", status.stderr
    assert one_json(status)["store"] == "workspace"
    listing = ywf(env, tmp_path, "runs", "--format", "json")
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr
    assert not any(s.startswith("redis") for s in one_json(listing)["sources"])
    assert one_json(listing)["store"] == "workspace"
    missing = ywf(env, tmp_path, "status", "0123456789abcdef")
    assert missing.returncode == 2 and "redis" not in one_line(missing.stderr)


def test_clean_with_the_broker_s_redis_down_is_one_line_exit_3_and_removes_nothing(place: Place) -> None:
    # given a finished fleet run, and then a broker URL on which nothing listens
    proc = place.submit(FIXME.replace("test -f", "true ||"), "--wait")
    assert proc.returncode == 0, proc.stderr
    doc = one_json(proc)
    env = only_broker(f"redis://127.0.0.1:{free_port()}/0")
    # when clean is asked to remove it
    clean = ywf(env, place.submitter, "clean", "--workflow-id", doc["run_id"])
    # then one line, exit 3, and the workspace (whose Redis keys could not go) is kept
    assert clean.returncode == 3, clean.stderr
    assert "cannot reach the state store" in one_line(clean.stderr)
    assert Path(doc["workspace"]).exists()
