"""`serve-mcp` with a real fleet: submit_workflow hands a run to real Celery workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mcp_client import run_session, serve_mcp
from tests.support.workers import Fleet

pytestmark = [pytest.mark.celery, pytest.mark.redis]


def test_submit_workflow_runs_on_the_fleet_and_run_status_reads_it_from_redis(tmp_path: Path) -> None:
    workflows, runs = tmp_path / "workflows", tmp_path / "runs"
    workflows.mkdir()
    (workflows / "fleet.yaml").write_text(
        "name: fleet\n"
        "params: {who: {default: nobody}}\n"
        "steps:\n"
        "  - {name: greet, task: echo, inputs: {message: 'hi {{ args.who }}'}}\n"
        "  - {name: shout, task: shell, inputs: {command: 'echo {{ steps.greet.result | upper }}'}}\n")
    fleet = Fleet(workers=1, concurrency=1)
    try:
        fleet.start()
        env = {key: value for key, value in fleet.env.items() if key.startswith("YAML_WORKFLOW_")}

        async def scenario() -> None:
            async with serve_mcp(workflows, runs, env=env) as mcp:
                submitted = await mcp.ok("submit_workflow", workflow="fleet.yaml", params={"who": "Zoe"},
                                         wait=True, timeout=60)
                result = submitted["result"]
                assert result is not None and result["status"] == "completed", submitted
                assert result["outputs"]["greet"] == "hi Zoe"
                assert result["outputs"]["shout"]["stdout"] == "HI ZOE\n"
                assert submitted["workspace"].startswith(str(runs))

                status = await mcp.ok("run_status", run=submitted["run_id"])
                assert status["mode"] == "fleet" and status["status"] == "completed"
                assert status["store"].startswith("redis://")
                assert [s["host"] is not None for s in status["steps"]] == [True, True]

        run_session(scenario)
    finally:
        fleet.stop()
