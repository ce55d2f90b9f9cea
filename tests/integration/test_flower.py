"""Flower against a real fleet: the run's steps as tasks, their progress as task events.

A real Flower process watches the fleet's broker while a workflow with a batch runs on
two real workers.  Flower's REST API must list every step (``ywf.step``) and chunk
(``ywf.batch_chunk``) of the run, named by ``run=<id> step=<name>`` (a retried step
too), in state SUCCESS;
the ``task-progress`` events are read with a celery.events receiver (Flower's API does
not return custom fields); a declared secret appears nowhere in what Flower holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import free_port
from tests.support.workers import EventLog, Fleet, stop_group, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.redis]

SECRET = "flower-must-never-see-7f3a9c"
ITEMS = 60

WORKFLOW = f"""
name: flower_progress
secrets: [YWF_FLOWER_API_TOKEN]
steps:
  - name: generate
    task: python_code
    inputs:
      code: "result = list(range({ITEMS}))"
  - name: flaky
    task: python_code
    retry: {{max_attempts: 2, delay: 0.2}}
    inputs:
      code: |
        import os
        path = os.path.join(workspace, "attempts.txt")
        n = int(open(path).read()) + 1 if os.path.exists(path) else 1
        open(path, "w").write(str(n))
        if n < 2:
            raise RuntimeError("first attempt fails")
        result = n
  - name: process
    task: batch
    progress_update: true
    progress_interval: 0.05
    inputs:
      items: "{{{{ steps.generate.result }}}}"
      chunk_size: 10
      max_workers: 2
      task:
        task: python_code
        inputs:
          code: |
            import time
            time.sleep(0.03)
            result = item * 2
  - name: use_secret
    task: echo
    inputs:
      message: "token {{{{ env.YWF_FLOWER_API_TOKEN }}}}"
"""


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    f = Fleet(workers=2, env={"YWF_FLOWER_API_TOKEN": SECRET})
    try:
        f.start()
        yield f
    finally:
        f.stop()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return json.loads(response.read().decode())


@pytest.fixture
def flower(fleet: Fleet) -> Iterator[str]:
    """A Flower process on a free loopback port, its REST API open (this test only)."""
    port = free_port()
    env = {**fleet.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    log = open(fleet.dir / "flower.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "flower", f"--port={port}",
         "--address=127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"flower exited: {(fleet.dir / 'flower.log').read_text()[-2000:]}")
        try:
            return bool(_get(f"{base}/api/workers?refresh=1"))
        except (OSError, urllib.error.URLError, ValueError):
            return False

    try:
        wait_for(ready, 60, "Flower to answer /api/workers with the fleet's workers", interval=0.5)
        yield base
    finally:
        stop_group(proc)
        log.close()


def test_flower_lists_the_run_steps_and_progress_goes_out_as_task_events(
        fleet: Fleet, flower: str, tmp_path: Path) -> None:
    # given a workflow with a batch that reports progress, and a declared secret
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    # when it runs on two workers while Flower and an event receiver watch the broker
    with EventLog(fleet.app) as events:
        proc = fleet.cli("submit", str(wf), "--wait", "--base-dir", str(tmp_path / "runs"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        run_id = proc.stdout.splitlines()[0]
        # not a terminal: --wait prints one line per step and per recorded progress report
        assert f"  ..    process {ITEMS}/{ITEMS} (100.0%)" in proc.stderr, proc.stderr
        assert "  ok    process" in proc.stderr
        wait_for(lambda: [e for e in events.of("task-progress") if e.get("done") == ITEMS], 20,
                 "the final task-progress event")
    # then Flower lists every step of the run, and every chunk of its batch, as succeeded
    nchunks = ITEMS // 10

    def listed() -> dict[str, Any] | None:
        tasks = _get(f"{flower}/api/tasks")
        mine = {uid: t for uid, t in tasks.items() if f"run={run_id}" in str(t.get("args"))}
        steps = {t["args"].split("step=")[1].split()[0]: t for t in mine.values() if t["name"] == "ywf.step"}
        chunks = [t for t in mine.values() if t["name"] == "ywf.batch_chunk"]
        done = (set(steps) == {"generate", "flaky", "process", "use_secret"} and len(chunks) == nchunks
                and all(t["state"] == "SUCCESS" for t in mine.values()))
        return tasks if done else None

    tasks = wait_for(listed, 30, "Flower to list the run's steps and chunks as SUCCESS", interval=0.5)
    mine = {uid: t for uid, t in tasks.items() if f"run={run_id}" in str(t.get("args"))}
    for task in mine.values():
        assert task["args"].startswith(f"run={run_id} step=")  # ids only, never inputs
        assert task["kwargs"] in ("{}", "", None)
    # a retried step went through Celery's RETRY and kept its name (a retry is a new message)
    flaky = [t for t in mine.values() if t["args"] == f"run={run_id} step=flaky"]
    assert len(flaky) == 1 and flaky[0]["retries"] >= 1
    # and the progress events name the run and step, count up to the total
    progress = [e for e in events.of("task-progress") if e.get("run") == run_id]
    assert progress, "no task-progress event of the run"
    chunk_ids = {uid for uid, t in mine.items() if t["name"] == "ywf.batch_chunk"}
    for event in progress:
        assert event["step"] == "process" and event["total"] == ITEMS
        assert 0 < event["done"] <= ITEMS and event["failed"] == 0
        assert event["percent"] == round(100.0 * event["done"] / ITEMS, 1)
        assert event["uuid"] in chunk_ids  # sent as the chunk task's own event
    dones = [e["done"] for e in progress]
    assert len(set(dones)) >= 2 and dones[0] < max(dones) == ITEMS
    # and the secret is nowhere in Flower's tasks nor in the events
    assert SECRET not in json.dumps(tasks)
    assert SECRET not in json.dumps(events.events, default=str)
    # while the run's own record of the step that used it is masked
    state = json.loads(next((tmp_path / "runs").glob("flower_progress_run_*/.workflow_metadata.json")).read_text())
    assert state["execution_state"]["step_outputs"]["use_secret"]["result"] == "token ***"
    # and the store holds the batch's last progress report (items done / failed / total)
    record = state["execution_state"]["step_outputs"]["process"]
    assert record["progress"]["done"] == ITEMS and record["progress"]["total"] == ITEMS
