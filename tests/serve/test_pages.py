"""The dashboard's pages over HTTP (Starlette's TestClient): what each page shows, and the JSON it polls."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import make_client, seed_fleet_run
from yaml_workflow import client
from yaml_workflow.client.models import StepState
from yaml_workflow.serve.graph import layers, render_graph
from yaml_workflow.serve.security import ServeOptions
from yaml_workflow.state.stores.redis import RedisStore

SEQUENTIAL = """
name: greet
params:
  who: {type: string, default: World}
steps:
  - name: make
    task: echo
    inputs: {message: "Hello {{ args.who }}"}
  - name: show
    task: shell
    inputs: {command: "echo shown"}
"""

DAG = """
name: dag
steps:
  - name: fetch
    task: echo
    inputs: {message: one}
  - name: left
    task: echo
    depends_on: [fetch]
    inputs: {message: left}
  - name: right
    task: echo
    depends_on: [fetch]
    inputs: {message: right}
  - name: join
    task: echo
    depends_on: [left, right]
    inputs: {message: done}
"""


def rows(html: str) -> list[str]:
    """The run ids of the runs list's rows, in order."""
    return re.findall(r'<tr data-run="([^"]+)"', html)


def test_runs_list_shows_local_workspaces_and_fleet_runs_in_one_table(
        dashboard: Any, local_run: Callable[..., Any], redis_env: RedisStore) -> None:
    # given a local run in a workspace and a fleet run that only Redis holds
    local = local_run(SEQUENTIAL)
    seed_fleet_run(redis_env, "fleetrun0001", start=time.time() + 5, host="w7@box")
    # when the runs list is opened
    page = dashboard.get("/")
    # then both are rows, newest first, each linking to its run page by href
    assert page.status_code == 200
    assert rows(page.text) == ["fleetrun0001", local.run_id]
    assert f'href="/runs/{local.run_id}"' in page.text and 'href="/runs/fleetrun0001"' in page.text
    for column in ("workflow", "run id", "status", "started", "duration", "progress", "hosts"):
        assert f"<th>{column}</th>" in page.text
    fleet_row = page.text.split('data-run="fleetrun0001"')[1].split("</tr>")[0]
    assert "fleet_wf" in fleet_row and "w7@box" in fleet_row and "2/2" in fleet_row and "b-completed" in fleet_row


def test_runs_list_filters_by_status_and_workflow_50_a_page(dashboard: Any, redis_env: RedisStore) -> None:
    # given 120 runs in Redis: every third one failed, two workflows
    start = time.time() - 1000
    for i in range(120):
        seed_fleet_run(redis_env, f"run{i:04d}", name="alpha" if i % 2 else "beta", start=start + i,
                       status="failed" if i % 3 == 0 else "completed", steps=("a",))
    # when pages are opened
    first = dashboard.get("/")
    third = dashboard.get("/?offset=100")
    failed = dashboard.get("/?status=failed")
    failed_beta = dashboard.get("/?status=failed&workflow=beta")
    # then 50 rows a page, newest first, with links to the next page
    assert rows(first.text) == [f"run{i:04d}" for i in range(119, 69, -1)]
    assert 'offset=50">older' in first.text
    assert rows(third.text) == [f"run{i:04d}" for i in range(19, -1, -1)]
    assert "older &rarr;" not in third.text and "&larr; newer" in third.text
    assert rows(failed.text) == [f"run{i:04d}" for i in range(117, -1, -3)][:50]
    assert rows(failed_beta.text) == [f"run{i:04d}" for i in range(114, -1, -6)]
    assert all(re.search(r"b-failed", r) for r in failed.text.split("<tr data-run")[1:])
    # and the JSON the page polls says the same
    listing = dashboard.get("/api/runs?status=failed&workflow=beta").json()
    assert [r["run_id"] for r in listing["runs"]] == rows(failed_beta.text)
    assert dashboard.get("/?status=bogus").status_code == 400


def test_client_runs_reads_only_one_window_of_the_index_for_a_page(redis_env: RedisStore,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # given 600 runs in Redis
    start = time.time() - 10_000
    for i in range(600):
        seed_fleet_run(redis_env, f"page{i:04d}", start=start + i, steps=("a",))
    read: list[int] = []
    original = RedisStore._run_fields

    def counting(self: RedisStore, ids: list[str]) -> list[dict[str, Any]]:
        read.append(len(ids))
        return original(self, ids)

    monkeypatch.setattr(RedisStore, "_run_fields", counting)
    # when the first page is listed
    listing = client.runs(limit=50)
    # then one window was read (not a summary of every run), and more follow
    assert [r.run_id for r in listing.runs][:2] == ["page0599", "page0598"]
    assert len(listing.runs) == 50 and listing.more and listing.total is None
    assert sum(read) < 100
    assert listing.runs[0].steps_total == 1 and listing.runs[0].steps_done == 1
    assert listing.runs[0].hosts == ["w1@node"] and listing.runs[0].duration == pytest.approx(2, abs=0.01)


def test_run_page_draws_a_node_per_step_and_the_edges_of_depends_on(
        dashboard: Any, local_run: Callable[..., Any]) -> None:
    # given a finished run of a workflow with depends_on
    result = local_run(DAG)
    # when its page is opened
    page = dashboard.get(f"/runs/{result.run_id}")
    # then the graph has one node per step, coloured by status, and an edge per dependency
    assert page.status_code == 200
    nodes = re.findall(r'<g class="node (s-\w+)" data-step="([^"]+)"', page.text)
    assert sorted(n for _, n in nodes) == ["fetch", "join", "left", "right"]
    assert {c for c, _ in nodes} == {"s-completed"}
    assert page.text.count('class="edge"') == 4
    # and the step table is server-rendered, one row per step, with every column
    assert re.findall(r'<tr data-step="([^"]+)" data-status="completed"', page.text) == ["fetch", "left", "right", "join"]
    for column in ("status", "try", "time", "host", "progress", "error", "resources"):
        assert f"<th>{column}</th>" in page.text
    assert "History" in page.text and ">start<" in page.text


def test_graph_layers_follow_order_and_depends_on() -> None:
    chain = [StepState(step=f"s{i}", status="completed", depends_on=[f"s{i - 1}"] if i else []) for i in range(1500)]
    assert layers(chain)["s1499"] == 1499  # no recursion limit on long workflows
    loop = [StepState(step="a", status="pending", depends_on=["b"]), StepState(step="b", status="pending", depends_on=["a"])]
    assert set(layers(loop).values()) == {0}  # a cycle is drawn, not followed forever
    svg = render_graph([StepState(step="x", status="weird<status>\"", depends_on=[])])
    assert 'class="node s-weirdstatus"' in svg and "<status>" not in svg


def test_run_page_shows_params_output_and_log_with_secrets_masked(
        dashboard: Any, local_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # given a run whose step prints and returns a declared secret
    monkeypatch.setenv("YWF_DASH_SECRET", "hunter2-dashboard-secret")
    result = local_run("""
name: secretive
secrets: [YWF_DASH_SECRET]
params:
  colour: {type: string, default: blue}
steps:
  - name: leak
    task: shell
    inputs: {command: "echo token={{ env.YWF_DASH_SECRET }}"}
""", {"colour": "green"})
    # when the run page, the step page, the files and the JSON are read
    run_page = dashboard.get(f"/runs/{result.run_id}")
    step_page = dashboard.get(f"/runs/{result.run_id}/step?name=leak")
    log_file = dashboard.get(f"/runs/{result.run_id}/files/logs/leak.log")
    status = dashboard.get(f"/api/runs/{result.run_id}")
    # then params are shown, the output and the log are there, and the secret nowhere
    assert "colour" in run_page.text and "green" in run_page.text
    assert "token=***" in step_page.text and "Output" in step_page.text and "Log" in step_page.text
    assert log_file.status_code == 200 and "token=***" in log_file.text
    for response in (run_page, step_page, log_file, status):
        assert "hunter2-dashboard-secret" not in response.text


def test_progress_bars_for_a_running_batch(dashboard: Any, redis_env: RedisStore) -> None:
    # given a fleet run whose batch step reports progress while it runs
    start = time.time()
    redis_env.create_run({"t": "run", "at": start, "workflow_id": "batchrun01", "name": "batchy",
                          "start_time": "2026-11-27T10:00:00Z", "status": "running", "params": {},
                          "plan": {"order": ["items", "after"]}, "mode": "fleet"})
    redis_env.record("batchrun01", {"t": "progress", "step": "items", "at": start,
                                    "progress": {"done": 30, "total": 120, "failed": 2, "message": "30/120 items"}})
    # when its page is opened
    page = dashboard.get("/runs/batchrun01")
    # then the running step has a bar: items done of total, and those that failed
    row = page.text.split('<tr data-step="items"')[1].split("</tr>")[0]
    assert '<progress max="120" value="30">' in row and "30/120, 2 failed" in row
    assert 'data-status="running"' in row


def test_unknown_run_is_a_404_page_and_json(dashboard: Any, redis_env: RedisStore) -> None:
    assert dashboard.get("/runs/nosuchrun").status_code == 404
    answer = dashboard.get("/api/runs/nosuchrun")
    assert answer.status_code == 404 and "nosuchrun" in answer.json()["error"]


def test_redis_unreachable_lists_the_workspaces_with_a_warning(
        local_run: Callable[..., Any], runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = local_run(SEQUENTIAL)
    monkeypatch.setenv("YAML_WORKFLOW_STATE_URL", "redis://127.0.0.1:1/0")
    page = make_client(ServeOptions(base_dir=runs_dir)).get("/")
    assert page.status_code == 200 and rows(page.text) == [result.run_id]
    assert "cannot be reached" in page.text
