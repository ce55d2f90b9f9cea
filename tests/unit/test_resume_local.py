"""Resume of a local run: what is refused, what runs again, what is kept and recorded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from yaml_workflow.engine.load import load_workflow
from yaml_workflow.engine.plan import build_plan
from yaml_workflow.engine.request import RunRequest, RunResult
from yaml_workflow.engine.resume import decide
from yaml_workflow.exceptions import EXIT_REFUSED, ResumeRefused
from yaml_workflow.executors.local_run import resume_run, start_run
from yaml_workflow.spec.models import Workflow
from yaml_workflow.state.document import HOST
from yaml_workflow.state.lease import Lease
from yaml_workflow.state.mirror import read_state
from yaml_workflow.state.stores.json_file import JsonFileStore

# a: counts its runs and returns n*10; b: fails until the file `ok` exists; c: uses b.
WORKFLOW = """
params:
  n: {type: integer, default: 1}
  label: {type: string, default: plain}
steps:
  - name: a
    task: python_code
    inputs:
      code: |
        with open(workspace + "/a.count", "a") as fh:
            fh.write("x")
        result = args["n"] * 10
  - name: b
    task: python_code
    inputs:
      code: |
        import os
        with open(workspace + "/b.count", "a") as fh:
            fh.write("x")
        if not os.path.exists(os.path.join(workspace, "ok")):
            raise RuntimeError("not yet")
        result = steps["a"]["result"] + 1
  - name: c
    task: echo
    inputs: {message: "{{ args.label }}:{{ steps.b.result }}"}
"""


class Project:
    """A workflow file in tmp_path and the runs made of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "wf.yaml"
        self.base = root / "runs"
        self.write(WORKFLOW)

    def write(self, text: str) -> None:
        self.path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")

    def workflow(self) -> Workflow:
        return load_workflow(self.path)

    def start(self, **params: str) -> RunResult:
        return start_run(RunRequest(workflow=self.workflow(), base_dir=self.base, params=params))

    def resume(self, workspace: str | Path | None = None, **fields: Any) -> RunResult:
        return resume_run(RunRequest(
            workflow=self.workflow(), base_dir=self.base, resume=True,
            workspace=Path(workspace) if workspace else None, **fields,
        ))

    def refused(self, workspace: str | Path | None = None, **fields: Any) -> ResumeRefused:
        with pytest.raises(ResumeRefused) as caught:
            self.resume(workspace, **fields)
        assert caught.value.exit_code == EXIT_REFUSED
        return caught.value


def count(workspace: str | Path, name: str) -> int:
    path = Path(workspace) / f"{name}.count"
    return len(path.read_text()) if path.exists() else 0


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture()
def failed_run(project: Project) -> RunResult:
    """A run of WORKFLOW with n=2 that failed at b."""
    result = project.start(n="2")
    assert result.status == "failed" and result.failed_step == "b"
    return result


# --- refusals ----------------------------------------------------------------------------


def test_completed_run_is_not_resumed(project: Project, failed_run: RunResult) -> None:
    # given a run that completed (after one resume)
    (Path(failed_run.workspace) / "ok").write_text("")
    result = project.resume(failed_run.workspace)
    assert result.status == "completed"
    # when it is resumed, then it is refused (exit code 2) and names the run
    err = project.refused(result.workspace)
    assert result.run_id in err.one_line()
    assert "already completed" in err.one_line()
    # and the decision function refuses the same way
    doc = read_state(result.workspace)
    workflow = project.workflow()
    with pytest.raises(ResumeRefused):
        decide(workflow, build_plan(workflow), doc, given={})


def test_resume_without_a_run_is_refused(project: Project) -> None:
    err = project.refused()
    assert "no run of 'wf'" in err.one_line()


# --- what runs again ----------------------------------------------------------------------


def test_failed_run_resumes_at_the_failed_step_with_outputs_restored(
    project: Project, failed_run: RunResult
) -> None:
    workspace = failed_run.workspace
    (Path(workspace) / "ok").write_text("")
    # when resumed (found as the latest run under the base dir)
    resumed = project.resume()
    # then a is not run again, b and c run, and b saw a's stored output
    assert resumed.status == "completed"
    assert resumed.run_id == failed_run.run_id
    assert resumed.workspace == workspace
    assert count(workspace, "a") == 1
    assert count(workspace, "b") == 2
    assert resumed.outputs == {"a": 20, "b": 21, "c": "plain:21"}
    doc = read_state(workspace)
    assert doc["status"] == "completed"
    assert doc["execution_state"]["failed_step"] is None


def test_decide_says_what_is_done_and_what_runs_again(project: Project, failed_run: RunResult) -> None:
    workflow = project.workflow()
    doc = read_state(failed_run.workspace)
    decision = decide(workflow, build_plan(workflow), doc, given={})
    assert decision.done == {"a"}
    assert decision.rerun == ["b", "c"]
    assert decision.args == {"n": 2, "label": "plain"}
    assert decision.changed == []


def test_from_step_runs_again_from_that_step(project: Project, failed_run: RunResult) -> None:
    workspace = failed_run.workspace
    (Path(workspace) / "ok").write_text("")
    assert project.resume(workspace).status == "completed"
    # when a completed run is resumed --from-step a
    again = project.resume(workspace, from_step="a")
    # then every step from a runs once more
    assert again.status == "completed"
    assert count(workspace, "a") == 2
    assert count(workspace, "b") == 3
    # and from b, a is kept
    project.resume(workspace, from_step="b")
    assert count(workspace, "a") == 2
    assert count(workspace, "b") == 4


def test_from_step_not_in_the_plan_is_refused(project: Project, failed_run: RunResult) -> None:
    err = project.refused(failed_run.workspace, from_step="zz")
    assert "'zz'" in err.one_line()


# --- params -------------------------------------------------------------------------------


def test_params_of_the_first_run_are_kept(project: Project, failed_run: RunResult) -> None:
    (Path(failed_run.workspace) / "ok").write_text("")
    # the same value again is fine; nothing given keeps the stored ones
    resumed = project.resume(failed_run.workspace, params={"n": "2"})
    assert resumed.outputs["a"] == 20
    assert read_state(failed_run.workspace)["params"]["n"] == 2


def test_a_differing_param_without_override_is_refused(project: Project, failed_run: RunResult) -> None:
    history_before = read_state(failed_run.workspace)["history"]
    err = project.refused(failed_run.workspace, params={"n": "5"})
    line = err.one_line()
    assert "parameter 'n'" in line
    assert "--override-params" in line
    # and the refused resume recorded nothing
    assert read_state(failed_run.workspace)["history"] == history_before
    assert count(failed_run.workspace, "b") == 1


def test_override_params_replaces_them(project: Project, failed_run: RunResult) -> None:
    (Path(failed_run.workspace) / "ok").write_text("")
    resumed = project.resume(failed_run.workspace, params={"label": "new"}, override_params=True)
    # the new label is used by the steps that run again; unchanged params stay
    assert resumed.outputs["c"] == "new:21"
    params = read_state(failed_run.workspace)["params"]
    assert params == {"n": 2, "label": "new"}


# --- changed and removed steps --------------------------------------------------------------


def edit_step_a(project: Project) -> None:
    project.write(WORKFLOW.replace('args["n"] * 10', 'args["n"] * 100'))


def test_a_changed_completed_step_is_refused_by_name(project: Project, failed_run: RunResult) -> None:
    (Path(failed_run.workspace) / "ok").write_text("")
    edit_step_a(project)
    err = project.refused(failed_run.workspace)
    line = err.one_line()
    assert "changed since they ran: a" in line
    assert "--from-step a" in line
    # a --from-step after the changed step does not cover it
    assert "changed" in project.refused(failed_run.workspace, from_step="b").one_line()
    assert count(failed_run.workspace, "a") == 1


def test_from_step_at_the_changed_step_runs_it_again(project: Project, failed_run: RunResult) -> None:
    (Path(failed_run.workspace) / "ok").write_text("")
    edit_step_a(project)
    resumed = project.resume(failed_run.workspace, from_step="a")
    assert resumed.status == "completed"
    assert resumed.outputs["a"] == 200
    assert count(failed_run.workspace, "a") == 2


def test_force_runs_the_changed_step_again(project: Project, failed_run: RunResult) -> None:
    (Path(failed_run.workspace) / "ok").write_text("")
    edit_step_a(project)
    resumed = project.resume(failed_run.workspace, force=True)
    assert resumed.status == "completed"
    assert resumed.outputs["a"] == 200
    assert resumed.outputs["b"] == 201
    history = read_state(failed_run.workspace)["history"]
    assert history[-1]["changed"] == ["a"]


def test_a_removed_step_is_reported(project: Project, failed_run: RunResult) -> None:
    # given the completed step a is no longer in the workflow
    project.write(WORKFLOW.replace("""  - name: a
    task: python_code
    inputs:
      code: |
        with open(workspace + "/a.count", "a") as fh:
            fh.write("x")
        result = args["n"] * 10
""", "").replace('steps["a"]["result"] + 1', "1"))
    assert project.workflow().step_names == ["b", "c"]
    err = project.refused(failed_run.workspace)
    assert "no longer in the workflow: a" in err.one_line()
    # when forced, the decision still reports it
    workflow = project.workflow()
    decision = decide(workflow, build_plan(workflow), read_state(failed_run.workspace),
                      given={}, force=True)
    assert decision.changed == ["a"]
    assert decision.rerun == ["b", "c"]


# --- history and lease --------------------------------------------------------------------


def test_history_records_each_resume(project: Project, failed_run: RunResult) -> None:
    workspace = failed_run.workspace
    project.resume(workspace)  # still failing at b
    (Path(workspace) / "ok").write_text("")
    project.resume(workspace, from_step="b")
    history = read_state(workspace)["history"]
    assert [h["event"] for h in history] == ["start", "resume", "resume"]
    first, second = history[1], history[2]
    assert (first["count"], second["count"]) == (1, 2)
    assert first["from_step"] == "b" and second["from_step"] == "b"
    for entry in history:
        assert entry["host"] == HOST
        assert entry["pid"] == os.getpid()


@pytest.fixture()
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process on this host that is not us."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait(10)


def test_a_live_lease_of_another_process_refuses(
    project: Project, failed_run: RunResult, other_process: subprocess.Popen[bytes]
) -> None:
    # given another live process holds the run's lease
    store = JsonFileStore(root=project.base)
    lease = Lease("someone-else", HOST, other_process.pid, time.time() + 120)
    assert store.acquire_lease(failed_run.run_id, lease) is None
    history_before = read_state(failed_run.workspace)["history"]
    # when the run is resumed, then it is refused naming the holder
    err = project.refused(failed_run.workspace)
    assert f"already running on {HOST} pid {other_process.pid}" in err.one_line()
    assert read_state(failed_run.workspace)["history"] == history_before
    assert count(failed_run.workspace, "b") == 1


def test_a_lease_of_a_dead_process_does_not_block(project: Project, failed_run: RunResult) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    store = JsonFileStore(root=project.base)
    assert store.acquire_lease(failed_run.run_id, Lease("gone", HOST, dead.pid, time.time() + 120)) is None
    (Path(failed_run.workspace) / "ok").write_text("")
    assert project.resume(failed_run.workspace).status == "completed"
