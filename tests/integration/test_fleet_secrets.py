"""A declared secret never reaches Redis on the fleet, not even inside a batch's items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.support.workers import Fleet, fleet_fixture

pytestmark = [pytest.mark.celery, pytest.mark.redis]

SECRET = "s3cr3t-fleet-value-42"
fleet = fleet_fixture(workers=2, env={"YWF_FLEET_TOKEN": SECRET})

WORKFLOW = """
name: secret_batch
secrets: [YWF_FLEET_TOKEN]
steps:
  - name: fan
    task: batch
    inputs:
      items: ["{{ env.YWF_FLEET_TOKEN }}", "plain", "{{ env.YWF_FLEET_TOKEN }}-x"]
      chunk_size: 1
      task:
        task: python_code
        inputs:
          code: "result = len(batch['item'])"
  - name: echo_it
    task: shell
    inputs:
      command: "echo token=$YWF_FLEET_TOKEN"
"""


def _text_of_everything(client: redis.Redis) -> str:
    """Every key and value in the server, decoded as text (escaped forms stay as stored)."""
    parts = []
    for key in client.scan_iter("*"):
        parts.append(key.decode("utf-8", "replace"))
        kind = client.type(key)
        values: list[bytes] = []
        if kind == b"string":
            values = [client.get(key) or b""]
        elif kind == b"hash":
            values = [x for pair in client.hgetall(key).items() for x in pair]
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"set":
            values = list(client.smembers(key))
        elif kind == b"zset":
            values = client.zrange(key, 0, -1)
        elif kind == b"stream":
            values = [x for _id, fields in client.xrange(key) for pair in fields.items() for x in pair]
        parts += [v.decode("utf-8", "replace") for v in values]
    return "\n".join(parts)


def test_a_secret_in_batch_items_stays_out_of_redis_and_the_items_still_see_it(
    fleet: Fleet, tmp_path: Path
) -> None:
    # given a batch whose items are rendered from a declared secret
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    # when it runs on the fleet
    proc = fleet.cli("submit", str(wf), "--wait", "--format", "json", "--base-dir",
                     str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # then the items saw the real value (lengths), while every output shows it masked
    assert result["outputs"]["fan"]["results"] == [len(SECRET), 5, len(SECRET) + 2]
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    assert "***" in result["outputs"]["echo_it"]["stdout"]
    # and nothing in Redis — state, fleet keys, broker queues, results, events — holds it
    client = redis.Redis.from_url(fleet.server.url)
    everything = _text_of_everything(client)
    assert SECRET.encode() not in everything.encode()
    assert SECRET not in everything
    # nor the workspace
    workspace = Path(result["workspace"])
    for path in workspace.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


PARAMS = """
name: secret_params
secrets: [YWF_FLEET_TOKEN]
params:
  p: {type: string}
  opts: {type: object, default: {}}
steps:
  - name: seen
    task: python_code
    inputs:
      code: |
        result = {"p": args["p"] == env["YWF_FLEET_TOKEN"], "nested": args["opts"].get("k") == env["YWF_FLEET_TOKEN"],
                  env["YWF_FLEET_TOKEN"]: "a key"}
  - name: gate
    task: shell
    inputs: {command: 'test -f "$GATE"'}
  - name: after
    task: python_code
    inputs:
      code: |
        result = args["p"] == env["YWF_FLEET_TOKEN"]
"""


def test_a_param_equal_to_a_secret_is_a_reference_in_redis_and_workers_get_the_value(
    fleet: Fleet, tmp_path: Path
) -> None:
    # given `submit wf.yaml p=$TOKEN` (the report's payload), and an object param holding it
    wf = tmp_path / "wf.yaml"
    wf.write_text(PARAMS)
    gate = tmp_path / "gate"
    proc = fleet.cli("submit", str(wf), f"p={SECRET}", 'opts={"k": "' + SECRET + '"}', "--wait",
                     "--format", "json", "--base-dir", str(tmp_path / "runs"), env={"GATE": str(gate)},
                     cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # stopped at the gate
    result = json.loads(proc.stdout)
    run_id = result["run_id"]
    # then the workers ran with the real values, taken from their own environment
    assert result["outputs"]["seen"] == {"p": True, "nested": True, "***": "a key"}
    # while Redis holds references: the spec's args and the run's params
    client = redis.Redis.from_url(fleet.server.url)
    spec = json.loads(client.get(f"{fleet.server.prefix}:run:{run_id}:spec"))
    assert spec["args"] == {"p": "***", "opts": {"k": "***"}}
    assert {(tuple(r["path"]), r["secret"]) for r in spec["arg_secrets"]} == {
        (("p",), "YWF_FLEET_TOKEN"), (("opts", "k"), "YWF_FLEET_TOKEN")}
    params = json.loads(client.hget(f"{fleet.server.prefix}:run:{run_id}", "params"))
    assert params == {"p": "***", "opts": {"k": "***"}}
    # and a resume on the fleet gets the value back the same way
    gate.touch()
    resumed = fleet.cli("submit", "--resume", run_id, "--wait", "--format", "json", cwd=tmp_path,
                        env={"GATE": str(gate)})
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["outputs"]["after"] is True
    everything = _text_of_everything(client)
    client.close()
    logs = "".join(fleet.log(i) for i in range(fleet.count))
    for text in (SECRET, json.dumps(SECRET)[1:-1]):
        assert text not in everything
        assert text not in logs
        assert text not in proc.stdout + proc.stderr + resumed.stdout + resumed.stderr
    for path in Path(result["workspace"]).rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_a_param_with_a_secret_inside_a_longer_text_is_refused_by_submit(fleet: Fleet, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(PARAMS)
    proc = fleet.cli("submit", str(wf), f"p=prefix-{SECRET}", "--base-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "parameter 'p'" in proc.stderr and SECRET not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_secret_set_on_the_submitter_only_fails_the_step_naming_the_worker(fleet: Fleet, tmp_path: Path) -> None:
    # given a secret the submitter has and the workers do not
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: needs_secret\nsecrets: [YWF_SUBMITTER_ONLY]\nsteps:\n"
                  "  - {name: use, task: shell, inputs: {command: 'echo $YWF_SUBMITTER_ONLY'}}\n")
    # when it is submitted (submit checks the secret here, then a worker runs the step)
    proc = fleet.cli("submit", str(wf), "--wait", "--format", "json", "--base-dir", str(tmp_path / "runs"),
                     env={"YWF_SUBMITTER_ONLY": "only-here-0123456789"}, cwd=tmp_path)
    # then the step fails, saying which worker lacks it and where workers take secrets from
    assert proc.returncode == 1, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert "secret YWF_SUBMITTER_ONLY is not set on worker w" in error, error
    assert "workers take secrets from their own environment (docs/security.md)" in error
    assert "only-here-0123456789" not in proc.stdout + proc.stderr
