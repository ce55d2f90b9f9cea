"""Batches resume item by item: succeeded items keep their outputs, only the rest run again."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from yaml_workflow.engine.load import load_workflow
from yaml_workflow.engine.request import RunRequest
from yaml_workflow.executors.local_run import resume_run, start_run
from yaml_workflow.state.document import apply, new_document
from yaml_workflow.state.stores import open_store

WORKFLOW = """
name: bres
steps:
  - name: big
    task: batch
    inputs:
      items: [1, 2, 3, 4, 5, 6]
      chunk_size: 2
      fail_on_item_error: {fail_on_item_error}
      task:
        task: python_code
        inputs:
          code: |
            import os
            with open(os.environ["WITNESS"], "a") as fh:
                fh.write(f"{{batch['item']}}\\n")
            if batch['item'] == 4 and not os.path.exists(os.environ["WITNESS"] + ".ok"):
                raise ValueError("four fails")
            result = batch['item'] * 10
  - name: after
    task: python_code
    inputs:
      code: "result = steps['big']['result']['results']"
"""


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on_item_error: bool) -> tuple[Path, Path]:
    path = tmp_path / "bres.yaml"
    path.write_text(WORKFLOW.format(fail_on_item_error=str(fail_on_item_error).lower()))
    witness = tmp_path / "witness.log"
    monkeypatch.setenv("WITNESS", str(witness))
    return path, witness


def test_a_failed_batch_resumes_only_its_failed_and_unfinished_items(tmp_path, monkeypatch):
    # given a batch that stops after the chunk where item 4 fails
    path, witness = _setup(tmp_path, monkeypatch, fail_on_item_error=True)
    workspace = tmp_path / "ws"
    first = start_run(RunRequest(workflow=load_workflow(path), workspace=workspace))
    assert first.status == "failed"
    assert sorted(witness.read_text().split()) == ["1", "2", "3", "4"]
    # when the cause is fixed and the run resumed
    (tmp_path / "witness.log.ok").touch()
    second = resume_run(RunRequest(workflow=load_workflow(path), workspace=workspace, resume=True))
    # then items 1-3 did not run again, 4 ran a second time, 5-6 once; results are whole
    assert second.ok, second.error
    runs = witness.read_text().split()
    assert sorted(runs) == ["1", "2", "3", "4", "4", "5", "6"]
    assert second.outputs["after"] == [10, 20, 30, 40, 50, 60]


def test_retry_step_of_a_completed_batch_runs_only_failed_items(tmp_path, monkeypatch):
    # given a completed run whose batch has a failed item (failures tolerated)
    path, witness = _setup(tmp_path, monkeypatch, fail_on_item_error=False)
    workspace = tmp_path / "ws"
    first = start_run(RunRequest(workflow=load_workflow(path), workspace=workspace))
    assert first.ok
    assert first.outputs["after"] == [10, 20, 30, None, 50, 60]
    (tmp_path / "witness.log.ok").touch()
    # when `retry RUN --step big` asks for it again
    second = resume_run(RunRequest(workflow=None, workspace=workspace, resume=True,
                                   rerun_steps=["big", "after"]))
    # then only item 4 ran again, with its attempts counted on their own
    assert second.ok
    assert witness.read_text().split().count("4") == 2
    assert len(witness.read_text().split()) == 7
    assert second.outputs["after"] == [10, 20, 30, 40, 50, 60]
    from yaml_workflow.state.mirror import read_state

    items = read_state(workspace)["execution_state"]["step_outputs"]["big"]["items"]
    assert items["3"]["attempts"] == 2 and items["0"]["attempts"] == 1


@pytest.mark.parametrize("kind", ["memory", "file", "redis"])
def test_item_records_read_back_the_same_from_every_store(kind, tmp_path, redis_server):
    # given the transitions of a batch step that ran, was reset for a resume, and ran again
    run_id = uuid.uuid4().hex[:12]
    header = {"t": "run", "workflow_id": run_id, "name": "b", "workspace": str(tmp_path / "ws"),
              "start_time": "2026-01-01T00:00:00Z", "at": 1.0}
    (tmp_path / "ws").mkdir()
    events = [
        {"t": "step", "step": "big", "status": "running", "attempt": 1, "at": 2.0},
        {"t": "items", "step": "big", "at": 3.0,
         "items": {"0": {"status": "completed", "result": 10, "attempts": 1, "key": "a"},
                   "1": {"status": "failed", "error": "x", "attempts": 1, "key": "b"}}},
        {"t": "step", "step": "big", "status": "failed", "error": "x", "at": 4.0},
        {"t": "reset", "steps": ["big"], "at": 5.0},
        {"t": "step", "step": "big", "status": "running", "attempt": 1, "at": 6.0},
    ]
    url = {"memory": "memory://", "file": f"file://{tmp_path}",
           "redis": redis_server.url}[kind]
    if kind == "redis":
        from yaml_workflow.state.stores.redis import RedisStore

        store = RedisStore(url, prefix=f"t{uuid.uuid4().hex[:6]}")
    else:
        store = open_store(url)
    store.create_run(header)
    for event in events:
        store.record(run_id, event)
    store.flush(run_id)
    # when it is read back
    record = store.load(run_id)["execution_state"]["step_outputs"]["big"]
    # then it equals what the document's own rules say
    expected = new_document(header)
    for event in events:
        apply(expected, event)
    assert record["items"] == expected["execution_state"]["step_outputs"]["big"]["items"]
    assert record["status"] == "running"
    assert record["items"]["1"]["status"] == "failed"
