"""Malformed messages on the broker: a real worker logs each in one line, drops it, and
stays up — then runs a real workflow as before."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.workers import Fleet, fleet_fixture, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.celery]

fleet = fleet_fixture(workers=1, concurrency=1)


def _publish_raw(fleet: Fleet, body: str | bytes, headers: dict[str, object], *,
                 content_type: str = "application/json", encoding: str = "utf-8") -> None:
    with fleet.app.connection() as conn:
        conn.Producer().publish(body, routing_key="celery", exchange="", headers=headers,
                                content_type=content_type, content_encoding=encoding)


def test_malformed_messages_are_one_line_each_and_the_worker_stays_up(fleet: Fleet, tmp_path: Path) -> None:
    app = fleet.app
    app.send_task("ywf.step", args=[], task_id="bad-arity-none")
    app.send_task("ywf.step", args=["a", "b", "c", "d", "e"], task_id="bad-arity-five")
    app.send_task("ywf.step", args=[{"x": 1}, [2]], task_id="bad-types")
    app.send_task("ywf.batch_chunk", args=["r", "s", "one", 2], task_id="bad-chunk-type")
    app.send_task("ywf.no_such_task", args=[1], task_id="unknown-task")
    _publish_raw(fleet, "not json {", {"task": "ywf.step", "id": "junk-text", "lang": "py"})
    _publish_raw(fleet, b"\x00\x01junk", {"task": "ywf.step", "id": "junk-bytes", "lang": "py"},
                 encoding="binary")
    # The shape that used to stop the worker (and every worker after it: never acked).
    _publish_raw(fleet, '{"a": 1}', {"task": "ywf.step", "id": "junk-shape", "lang": "py"})
    _publish_raw(fleet, "[1, 2]", {})
    ids = ["bad-arity-none", "bad-arity-five", "bad-types", "bad-chunk-type", "unknown-task",
           "junk-text", "junk-bytes", "junk-shape"]

    def all_logged() -> bool:
        log = fleet.log(0)
        return all(f"'{i}'" in log for i in ids) and "without task headers" in log

    wait_for(all_logged, 30, "the worker to log every malformed message")
    log = fleet.log(0)
    assert "Traceback" not in log, log[-3000:]
    dropped = [line for line in log.splitlines() if "dropped a malformed message" in line]
    assert len(dropped) == len(ids) + 1, dropped
    for task_id in ids:
        (line,) = [d for d in dropped if f"'{task_id}'" in d]  # one line per message
        assert re.search(r"ERROR/MainProcess\] dropped a malformed message", line), line
    assert fleet.procs[0].poll() is None, "the worker stopped"
    assert fleet.ping(), "the worker no longer answers"

    # And it still runs a workflow.
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: after\nsteps:\n  - {name: a, task: echo, inputs: {message: still here}}\n")
    done = fleet.cli("submit", str(wf), "--wait", "--format", "json", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["a"] == "still here"
