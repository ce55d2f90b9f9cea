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


def _dump_everything(client: redis.Redis, prefix: str) -> str:
    """Every key under the fleet's prefix and the broker's own keys, with their values."""
    parts = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        if kind == b"string":
            parts.append(repr(client.get(key)))
        elif kind == b"hash":
            parts.append(repr(client.hgetall(key)))
        elif kind == b"list":
            parts.append(repr(client.lrange(key, 0, -1)))
        elif kind == b"set":
            parts.append(repr(client.smembers(key)))
        elif kind == b"zset":
            parts.append(repr(client.zrange(key, 0, -1)))
        elif kind == b"stream":
            parts.append(repr(client.xrange(key)))
        parts.append(repr(key))
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
    everything = _dump_everything(client, fleet.server.prefix)
    assert SECRET.encode() not in everything.encode()
    assert SECRET not in everything
    # nor the workspace
    workspace = Path(result["workspace"])
    for path in workspace.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
