"""`submit --wait` on two real workers gives what `run` gives: linear, DAG and batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.workers import Fleet, fleet_fixture

pytestmark = [pytest.mark.celery, pytest.mark.redis]

fleet = fleet_fixture(workers=2)

LINEAR = """
name: linear
params:
  who: {type: string, default: World}
  n: {type: integer, default: 2}
steps:
  - name: greet
    task: echo
    inputs: {message: "Hello, {{ args.who }}"}
  - name: count
    task: python_code
    inputs:
      code: "result = {'double': args['n'] * 2, 'greeting': steps['greet']['result']}"
  - name: maybe
    task: echo
    condition: "{{ args.n > 10 }}"
    inputs: {message: never}
  - name: shell
    task: shell
    inputs: {command: "printf '%s' '{{ steps.count.result.double }}' > out.txt; cat out.txt"}
  - name: soft_fail
    task: shell
    on_error: continue
    inputs: {command: "exit 3"}
  - name: last
    task: template
    inputs: {template: "{{ steps.shell.result.stdout }}-{{ steps.soft_fail.status }}", output_file: last.txt}
"""

DAG = """
name: dag
steps:
  - name: root
    task: echo
    inputs: {message: r}
  - name: left
    task: python_code
    depends_on: [root]
    inputs: {code: "result = steps['root']['result'] + 'L'"}
  - name: right
    task: python_code
    depends_on: root
    inputs: {code: "result = steps['root']['result'] + 'R'"}
  - name: mid
    task: echo
    depends_on: [left]
    inputs: {message: "{{ steps.left.result }}M"}
  - name: join
    task: python_code
    depends_on: [mid, right]
    inputs: {code: "result = steps['mid']['result'] + '+' + steps['right']['result']"}
"""

BATCH = """
name: batchy
params:
  colors: {type: list, default: [red, green, blue, cyan, magenta, yellow, black]}
steps:
  - name: prep
    task: echo
    inputs: {message: go}
  - name: shout
    task: batch
    inputs:
      items: "{{ args.colors }}"
      chunk_size: 3
      max_workers: 2
      task:
        task: python_code
        inputs:
          code: |
            if item == 'black':
                raise ValueError('no black')
            result = f"{batch.index}:{item.upper()}/{batch.total}@{batch.chunk_index}"
  - name: summary
    task: python_code
    inputs:
      code: "result = [len(steps['shout']['result']['processed']), steps['shout']['result']['stats']['failed']]"
"""


def _strip(value: Any, workspace: str) -> Any:
    """Without timings and the workspace path, which differ from run to run."""
    if isinstance(value, dict):
        return {k: _strip(v, workspace) for k, v in value.items() if k != "duration"}
    if isinstance(value, list):
        return [_strip(v, workspace) for v in value]
    if isinstance(value, str):
        return value.replace(workspace, "<ws>")
    return value


def _local(tmp: Path, wf: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", str(wf), "--base-dir",
                           str(tmp / "local"), "--format", "json"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=str(tmp))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _states(workspace: str) -> dict[str, Any]:
    doc = json.loads((Path(workspace) / ".workflow_metadata.json").read_text())
    steps = doc["execution_state"]["step_outputs"]
    return {"status": doc["status"], "steps": {k: v["status"] for k, v in steps.items()}}


@pytest.mark.parametrize("text", [LINEAR, DAG, BATCH], ids=["linear", "dag", "batch"])
def test_submit_wait_equals_run(fleet: Fleet, tmp_path: Path, text: str) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(text)
    local = _local(tmp_path, wf, fleet.env)
    proc = fleet.cli("submit", str(wf), "--wait", "--format", "json", "--base-dir",
                     str(tmp_path / "fleet"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    remote = json.loads(proc.stdout)  # stdout is one JSON document and nothing else
    assert remote["status"] == local["status"] == "success"
    assert _strip(remote["outputs"], remote["workspace"]) == _strip(local["outputs"], local["workspace"])
    assert remote["workflow"] == local["workflow"]
    assert _states(remote["workspace"]) == _states(local["workspace"])
    assert Path(remote["workspace"]).parent == tmp_path / "fleet"


def test_text_output_first_line_is_the_run_id(fleet: Fleet, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(DAG)
    proc = fleet.cli("submit", str(wf), "--wait", "--base-dir", "rel", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.splitlines()[0]
    assert run_id.isalnum() and len(run_id) == 16
    assert "ok    join" in proc.stderr  # each step as it finishes, on stderr
    # A relative --base-dir is made absolute by submit: workers have another cwd.
    assert list((tmp_path / "rel").glob("dag_run_1/.workflow_metadata.json"))
    status = json.loads((tmp_path / "rel/dag_run_1/.workflow_metadata.json").read_text())
    assert status["workflow_id"] == run_id and status["status"] == "completed"


def test_failed_run_exits_1(fleet: Fleet, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: f\nsteps:\n  - {name: a, task: echo, inputs: {message: x}}\n"
                  "  - {name: boom, task: fail, inputs: {message: kaput}}\n"
                  "  - {name: never, task: echo, inputs: {message: y}}\n")
    proc = fleet.cli("submit", str(wf), "--wait", "--format", "json", "--base-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed" and doc["failed_step"] == "boom"
    state = json.loads((Path(doc["workspace"]) / ".workflow_metadata.json").read_text())
    assert state["execution_state"]["failed_step"]["step_name"] == "boom"
    assert "never" not in state["execution_state"]["step_outputs"]
