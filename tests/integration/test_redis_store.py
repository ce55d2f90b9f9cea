"""`run` with a redis:// state URL, against a real redis-server the tests start.

The run's state goes to the documented keys, one script run (one round trip) per transition,
and the workspace mirror gets the same transitions; non-JSON outputs fail their step;
a mirror that cannot be written is flagged, not fatal; the seed's WorkflowState API
writes through both.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.redis_server import RedisServer, free_port
from yaml_workflow.engine.load import load_workflow
from yaml_workflow.engine.request import RunRequest
from yaml_workflow.exceptions import StoreUnavailable
from yaml_workflow.state.document import step_event
from yaml_workflow.state.mirror import JOURNAL_DIR, STATE_FILE, Mirror, read_state
from yaml_workflow.state.stores.redis import RedisStore

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]

WORKFLOW = """
name: redis_state
params:
  who:
    type: string
    default: Ada
steps:
  - name: greet
    task: echo
    inputs:
      message: "hello {{ args.who }}"
  - name: compute
    task: python_code
    inputs:
      code: |
        result = {"n": 6 * 7, "empty": [], "pi": 3.14159}
  - name: shout
    task: shell
    inputs:
      command: "echo {{ steps.compute.result.n }}"
"""

NOT_JSON = """
name: not_json
steps:
  - name: make_set
    task: python_code
    inputs:
      code: |
        result = {1, 2, 3}
  - name: after
    task: echo
    inputs:
      message: never
"""


@pytest.fixture()
def prefix() -> str:
    """A key prefix of this test alone on the shared server."""
    return f"ywfi{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client to look at the keys."""
    conn = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield conn
    conn.close()


def run_cli(wf: Path, base: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`yaml-workflow run` as a user types it, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "yaml_workflow", "run", str(wf), "--base-dir", str(base),
         "--format", "json", "--quiet", *args],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=120,
    )


def mirror_on_disk(workspace: Path) -> dict[str, Any]:
    """The compacted state file as any reader parses it."""
    doc: dict[str, Any] = json.loads((workspace / STATE_FILE).read_text())
    doc.pop("mirror", None)
    return doc


def journal_lines(workspace: Path) -> int:
    """How many transitions the mirror was given."""
    return sum(len(p.read_bytes().splitlines()) for p in (workspace / JOURNAL_DIR).glob("*.jsonl"))


class Monitor:
    """Every command the server executes (MONITOR), until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = redis.Redis.from_url(url, decode_responses=True)
        self.commands: list[tuple[str, str]] = []  # (client, command)
        self.marker = f"ywf-monitor-stop-{uuid.uuid4().hex}"
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _listen(self) -> None:
        with self.conn.monitor() as monitor:
            self.ready.set()
            for entry in monitor.listen():
                if self.marker in entry["command"]:
                    return
                self.commands.append((f"{entry['client_address']}:{entry['client_port']}", entry["command"]))

    def stop(self) -> list[tuple[str, str]]:
        """The commands seen so far (waits for the ones before now)."""
        stopper = redis.Redis.from_url(self.url)
        stopper.get(self.marker)
        stopper.close()
        self.thread.join(10)
        return self.commands


WRITES = {"HSET", "HDEL", "HSETNX", "DEL", "RPUSH", "ZADD", "EVAL", "PERSIST", "PEXPIRE"}


def test_run_keeps_its_state_in_redis_one_transaction_per_transition_and_mirrors_it(
    tmp_path: Path, redis_server: RedisServer, client: redis.Redis, prefix: str
) -> None:
    # given a workflow and a monitor on the server
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    monitor = Monitor(redis_server.url)
    # when it runs with Redis as the state store
    proc = run_cli(wf, tmp_path / "runs", {"YAML_WORKFLOW_STATE_URL": redis_server.url,
                                          "YAML_WORKFLOW_KEY_PREFIX": prefix}, "who=Bob")
    commands = monitor.stop()
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    run_id, workspace = result["run_id"], Path(result["workspace"])
    run_key = f"{prefix}:run:{run_id}"

    # then the run is in the documented keys
    run = client.hgetall(run_key)
    assert run["name"] == "redis_state" and run["status"] == "completed"
    assert json.loads(run["params"]) == {"who": "Bob"}
    assert json.loads(run["workflow"])["name"] == "redis_state"
    assert run["start_time"] and run["last_updated"] >= run["start_time"]
    assert "current_step" not in run and "failed_step" not in run  # None is stored as absent
    steps = client.hgetall(f"{run_key}:steps")
    assert {json.loads(steps[f"{s}.status"]) for s in ("greet", "compute", "shout")} == {"completed"}
    assert "compute.started_at" in steps and "compute.result" not in steps  # results live in :outputs
    outputs = {k: json.loads(v) for k, v in client.hgetall(f"{run_key}:outputs").items()}
    assert outputs["compute"] == {"n": 42, "empty": [], "pi": 3.14159}
    assert outputs["greet"] == "hello Bob"
    assert [json.loads(h)["event"] for h in client.lrange(f"{run_key}:history", 0, -1)] == ["start"]
    assert client.zscore(f"{prefix}:runs", run_id) is not None
    assert client.ttl(run_key) == -1  # finished runs are kept unless a TTL is configured

    # and the mirror file on disk is the same document as the store's
    store = RedisStore(redis_server.url, prefix=prefix)
    assert mirror_on_disk(workspace) == store.load(run_id)
    assert read_state(workspace) == store.load(run_id)

    # and every write of the run was one script run (atomic), one per transition
    blocks, stray, last = 0, [], {}
    for who, command in commands:
        name, _, rest = command.partition(" ")
        if who.endswith(":"):
            continue  # run by a Lua script: part of the EVALSHA that called it
        if name in ("EVALSHA", "EVAL") and run_key in rest and f"{run_key}:lease" not in rest:
            # A server without the script answers NOSCRIPT; the client loads it and sends
            # the same call again: that is one transition, not two.
            blocks += last.get(who) != ("SCRIPT", command)
            last[who] = (name, command)
        elif name == "SCRIPT":
            last[who] = ("SCRIPT", last.get(who, ("", ""))[1])
        elif run_key in rest and name in WRITES and f"{run_key}:lease" not in rest:
            stray.append(command)
    assert not stray, f"writes outside a script: {stray[:3]}"
    assert blocks == journal_lines(workspace), (blocks, journal_lines(workspace))
    assert blocks >= 1 + 2 * 3 + 2  # header, running+completed per step, history, final status
    store.close()


def test_one_transition_is_one_round_trip(redis_server: RedisServer, prefix: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # given a store whose connections count what they send
    store = RedisStore(redis_server.url, prefix=prefix)
    store.create_run({"t": "run", "workflow_id": "rt", "name": "rt", "status": "running"})
    sent = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        real(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    events = [step_event("a", "running", attempt=1), step_event("a", "completed", result={"x": 1}),
              step_event("a", "running", attempt=2),  # the fresh-record script runs here
              {"t": "var", "key": "k", "value": 1, "at": time.time()},
              {"t": "progress", "step": "b", "progress": {"done": 1}, "at": time.time()}]
    # when each is recorded, then each cost exactly one send (and one read of the replies)
    for event in events:
        before = len(sent)
        store.record("rt", event)
        assert len(sent) - before == 1, event
    # and so does reading the whole run
    before = len(sent)
    store.load("rt")
    assert len(sent) - before == 1
    store.close()


def test_a_non_json_output_fails_its_step_naming_the_step_and_type(
    tmp_path: Path, redis_server: RedisServer, prefix: str
) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(NOT_JSON)
    proc = run_cli(wf, tmp_path / "runs", {"YAML_WORKFLOW_STATE_URL": redis_server.url,
                                          "YAML_WORKFLOW_KEY_PREFIX": prefix})
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert "make_set" in result["error"] and "set" in result["error"]
    # the state stays valid, in Redis and in the mirror
    store = RedisStore(redis_server.url, prefix=prefix)
    doc = store.load(result["run_id"])
    record = doc["execution_state"]["step_outputs"]["make_set"]
    assert record["status"] == "failed" and "set" in record["error"]
    assert "after" not in doc["execution_state"]["step_outputs"]
    assert doc["status"] == "failed"
    assert mirror_on_disk(Path(result["workspace"])) == doc
    store.close()


def test_a_mirror_that_cannot_be_written_is_flagged_and_the_run_goes_on(
    tmp_path: Path, redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from yaml_workflow.executors.local_run import start_run

    # given a disk that fills up after the run's header was written
    real_append = Mirror.append

    def disk_full(self: Mirror, event: dict[str, Any]) -> None:
        if event.get("t") != "run":
            raise OSError(28, "No space left on device")
        real_append(self, event)

    monkeypatch.setattr(Mirror, "append", disk_full)
    monkeypatch.setenv("YAML_WORKFLOW_KEY_PREFIX", prefix)
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    # when the run records its steps
    with caplog.at_level(logging.WARNING, logger="yaml_workflow.state"):
        result = start_run(RunRequest(workflow=load_workflow(wf), base_dir=tmp_path / "runs",
                                      state_url=redis_server.url))
    # then no step failed, Redis has it all and the flag, and the warning was given once
    assert result.status == "completed", result.error
    store = RedisStore(redis_server.url, prefix=prefix)
    doc = store.load(result.run_id)
    assert "No space left" in doc["flags"]["mirror_write_failed"]
    assert {r["status"] for r in doc["execution_state"]["step_outputs"].values()} == {"completed"}
    assert sum("could not be written" in r.message for r in caplog.records) == 1
    # and the previous file is intact (the header, as it was before the disk filled)
    previous = mirror_on_disk(Path(result.workspace))
    assert previous["workflow_id"] == result.run_id and previous["status"] == "running"
    store.close()


def test_workflow_state_api_writes_through_redis_and_the_mirror(
    tmp_path: Path, redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a run kept in Redis
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    env = {"YAML_WORKFLOW_STATE_URL": redis_server.url, "YAML_WORKFLOW_KEY_PREFIX": prefix}
    proc = run_cli(wf, tmp_path / "runs", env)
    assert proc.returncode == 0, proc.stderr
    workflow_id, workspace = json.loads(proc.stdout)["run_id"], Path(json.loads(proc.stdout)["workspace"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    # when the seed's API is used exactly as documented
    from yaml_workflow.state import WorkflowState

    state = WorkflowState.load(workflow_id)
    assert state.current_step is None and state.status == "completed"
    assert state.step_outputs["compute"]["result"]["n"] == 42
    assert state.variables == {}
    state.update_step("step1", status="completed", output="result")
    state.set_variable("key", "value")
    state.mark_completed()
    state.save()

    # then Redis and the mirror file both have the change
    store = RedisStore(redis_server.url, prefix=prefix)
    doc = store.load(workflow_id)
    assert doc["execution_state"]["step_outputs"]["step1"]["result"] == "result"
    assert doc["variables"] == {"key": "value"}
    assert doc["status"] == "completed"
    assert mirror_on_disk(workspace) == doc
    # and loading by workspace path reads the same run
    again = WorkflowState.load(str(workspace))
    assert again.step_outputs["step1"]["result"] == "result" and again.variables["key"] == "value"
    store.close()


def test_finished_runs_expire_after_the_configured_ttl(
    tmp_path: Path, redis_server: RedisServer, client: redis.Redis, prefix: str
) -> None:
    """The process-level part: ``YAML_WORKFLOW_FINISHED_TTL`` given to `run` puts a TTL on
    every key of the finished run on a real server.  That a run running again keeps its
    keys, and that an expired run leaves the index, is tests/unit/test_fleet_state.py's
    (fakeredis, with time moved by hand)."""
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    proc = run_cli(wf, tmp_path / "runs", {"YAML_WORKFLOW_STATE_URL": redis_server.url,
                                          "YAML_WORKFLOW_KEY_PREFIX": prefix,
                                          "YAML_WORKFLOW_FINISHED_TTL": "600"})
    assert proc.returncode == 0, proc.stderr
    run_key = f"{prefix}:run:{json.loads(proc.stdout)['run_id']}"
    for key in (run_key, f"{run_key}:steps", f"{run_key}:outputs", f"{run_key}:history"):
        assert 0 < client.ttl(key) <= 600, key


# --- connecting ----------------------------------------------------------------------


def test_an_unreachable_store_is_exit_3_naming_the_url_without_password(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    proc = run_cli(wf, tmp_path / "runs", {"YAML_WORKFLOW_STATE_URL": url})
    assert proc.returncode == 3, proc.stderr
    assert time.monotonic() - started < 15
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1" in lines[0] and "hunter2" not in lines[0]


def test_password_and_acl_user_in_the_url(own_redis: RedisServer, prefix: str) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    admin.execute_command("ACL", "SETUSER", "ywf", "on", ">s3cret", "~*", "+@all")
    admin.config_set("requirepass", "p4ss")
    admin.close()
    host = f"127.0.0.1:{own_redis.port}"
    for url in (f"redis://:p4ss@{host}/0", f"redis://ywf:s3cret@{host}/0"):
        store = RedisStore(url, prefix=prefix)
        store.create_run({"t": "run", "workflow_id": "auth", "name": "auth"})
        assert store.load("auth")["name"] == "auth"
        store.close()
    wrong = RedisStore(f"redis://:nope@{host}/0", prefix=prefix)
    with pytest.raises(StoreUnavailable) as caught:
        wrong.load("auth")
    assert "nope" not in caught.value.one_line() and host in caught.value.one_line()


def _tls_server(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
         "--tls-auth-clients", "yes", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return proc, port, cert, key


def test_rediss_with_tls_options_in_the_url(tmp_path: Path, prefix: str) -> None:
    proc, port, cert, key = _tls_server(tmp_path)
    try:
        url = (f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
               f"&ssl_certfile={cert}&ssl_keyfile={key}")
        store = RedisStore(url, prefix=prefix)
        deadline = time.monotonic() + 10
        while True:  # wait for the server to listen
            try:
                store.create_run({"t": "run", "workflow_id": "tls", "name": "tls"})
                break
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        store.record("tls", step_event("a", "completed", result=[1, 2]))
        assert store.load("tls")["execution_state"]["step_outputs"]["a"]["result"] == [1, 2]
        store.close()
        # without the client certificate the server refuses: the store is unavailable
        bare = RedisStore(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}", prefix=prefix)
        with pytest.raises(StoreUnavailable):
            bare.load("tls")
    finally:
        proc.kill()
        proc.wait(10)
