"""`python -m yaml_workflow run` as a user runs it: exit codes, one-line errors, formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

OK = """
params:
  who: {type: string, default: World}
  times: {type: integer, default: 1}
steps:
  - name: greet
    task: echo
    inputs: {message: "Hello {{ args.who }} x{{ args.times }}"}
  - name: touch
    task: shell
    inputs: {command: 'echo done > marker.txt'}
"""

FAILS = """
steps:
  - name: fine
    task: echo
    inputs: {message: fine}
  - name: boom
    task: fail
    inputs: {message: kaput happened}
  - name: never
    task: echo
    inputs: {message: never}
"""

SECRET = "cli-s3cr3t-9931"


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in ``tmp_path`` and return what it did."""
    environ = {k: v for k, v in os.environ.items() if k != "YAML_WORKFLOW_STATE_URL"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "yaml_workflow", *args],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60,
    )


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> str:
    (tmp_path / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return name


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def workspaces(base: Path) -> list[Path]:
    return sorted(base.iterdir()) if base.exists() else []


# --- 0 and 1 -------------------------------------------------------------------------------


def test_success_exits_0_with_a_summary(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, OK), "--base-dir", "runs", "who=Ann")
    assert proc.returncode == 0, proc.stderr
    assert "Workflow 'wf' completed" in proc.stdout
    assert "Traceback" not in proc.stderr
    (workspace,) = workspaces(tmp_path / "runs")
    assert workspace.name == "wf_run_1"
    assert (workspace / "marker.txt").read_text() == "done\n"
    assert (workspace / ".workflow_metadata.json").is_file()


def test_failed_step_exits_1_with_one_error_line_naming_it(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, FAILS), "--base-dir", "runs")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    (line,) = error_lines(proc.stderr)
    assert "'boom'" in line
    assert "kaput happened" in line
    assert proc.stdout == ""


def test_quiet_failure_prints_exactly_one_line(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, FAILS), "--base-dir", "runs", "-q")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "'boom'" in proc.stderr


# --- 2: refused before any step --------------------------------------------------------------

REFUSED = {
    "invalid_yaml": ("name: x\nsteps:\n  - name: a\n    task: echo\n   bad: [\n", [], "wf.yaml:5"),
    "unknown_key": ("name: x\nstpes:\n  - name: a\n    task: echo\n", [], "did you mean 'steps'"),
    "unknown_task": ("steps:\n  - name: a\n    task: ecko\n", [], "did you mean 'echo'"),
    "template_syntax": ("steps:\n  - name: a\n    task: echo\n    inputs: {message: '{{ x + }}'}\n",
                        [], "step 'a'"),
    "bad_param": (OK, ["times=many"], "parameter 'times'"),
    "missing_required": ("params:\n  target: {required: true}\nsteps:\n  - name: a\n    task: echo\n",
                         [], "parameter 'target'"),
    "not_allowed": ("params:\n  stage: {allowed_values: [dev, prod]}\nsteps:\n  - name: a\n    task: echo\n",
                    ["stage=qa"], "parameter 'stage'"),
    "missing_secret": ("secrets: [YWF_CLI_TEST_TOKEN]\nsteps:\n  - name: a\n    task: echo\n",
                       [], "YWF_CLI_TEST_TOKEN"),
    "unknown_flag": (OK, ["--no-such-flag"], "--no-such-flag"),
    "unknown_flow": (OK, ["--flow", "nope"], "unknown flow 'nope'"),
    "bad_start_from": (OK, ["--start-from", "greeet"], "did you mean 'greet'"),
    "from_step_without_resume": (OK, ["--from-step", "greet"], "--from-step needs --resume"),
    "missing_file": (None, [], "workflow file not found"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_commands_exit_2_with_one_line_and_no_workspace(tmp_path: Path, case: str) -> None:
    text, extra, expected = REFUSED[case]
    name = write(tmp_path, text) if text is not None else "absent.yaml"
    env = {"YWF_CLI_TEST_TOKEN": ""}
    proc = cli(tmp_path, "run", name, "--base-dir", "runs", *extra, env=env)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    assert expected in lines[0]
    assert proc.stdout == ""
    assert workspaces(tmp_path / "runs") == []


@pytest.mark.parametrize("flag", ["--workspace", "--base-dir"])
def test_a_workspace_that_cannot_be_made_is_refused_in_one_line(tmp_path: Path, flag: str) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    proc = cli(tmp_path, "run", write(tmp_path, OK), flag, "a_file")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "cannot create the run workspace" in line
    assert "internal error" not in line


def test_output_into_a_missing_folder_is_refused_before_running(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, OK), "--base-dir", "runs", "--output", "no/such/r.json")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "--output" in line
    assert workspaces(tmp_path / "runs") == []


def test_unknown_top_level_command_exits_2(tmp_path: Path) -> None:
    proc = cli(tmp_path, "rnu", "wf.yaml")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- formats and files -----------------------------------------------------------------------


def test_format_json_prints_only_the_result_document(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, OK), "--base-dir", "runs", "--format", "json", "who=Bo")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert {"run_id", "status", "workflow", "workspace", "outputs", "error"} <= set(document)
    assert document["status"] == "success"
    assert document["workflow"] == "wf"
    assert document["error"] is None
    assert document["outputs"]["greet"] == "Hello Bo x1"
    state = json.loads((Path(document["workspace"]) / ".workflow_metadata.json").read_text())
    assert state["workflow_id"] == document["run_id"]


def test_format_json_of_a_failed_run(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, FAILS), "--base-dir", "runs", "--format", "json")
    assert proc.returncode == 1
    document = json.loads(proc.stdout)
    assert document["status"] == "failed"
    assert "kaput happened" in document["error"]
    assert document["outputs"]["fine"] == "fine"
    assert "Traceback" not in proc.stderr


def test_format_yaml(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, OK), "--base-dir", "runs", "--format", "yaml")
    assert proc.returncode == 0, proc.stderr
    document = yaml.safe_load(proc.stdout)
    assert document["status"] == "success"
    assert document["outputs"]["greet"] == "Hello World x1"
    assert {"run_id", "workflow", "workspace", "error"} <= set(document)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_output_file_holds_the_result_document(tmp_path: Path, fmt: str) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, OK), "--base-dir", "runs",
               "--format", fmt, "--output", "result.json")
    assert proc.returncode == 0, proc.stderr
    document = json.loads((tmp_path / "result.json").read_text())
    assert document["status"] == "success"
    assert document["outputs"]["greet"] == "Hello World x1"
    if fmt == "json":
        assert json.loads(proc.stdout) == document


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, OK), "--base-dir", "runs", "--dry-run", "who=Dee")
    assert proc.returncode == 0, proc.stderr
    assert "DRY-RUN" in proc.stdout
    assert "Hello Dee x1" in proc.stdout
    assert not (tmp_path / "runs").exists()
    assert not list(tmp_path.rglob("marker.txt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wf.yaml"]


def test_dry_run_refuses_bad_params_too(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", write(tmp_path, OK), "--base-dir", "runs", "--dry-run", "times=x")
    assert proc.returncode == 2
    assert "parameter 'times'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_secret_is_masked_in_cli_output(tmp_path: Path) -> None:
    text = """
        secrets: [YWF_CLI_TEST_TOKEN]
        steps:
          - name: show
            task: shell
            inputs: {command: 'echo "t=$YWF_CLI_TEST_TOKEN"; echo "e=$YWF_CLI_TEST_TOKEN" >&2'}
          - name: leak
            task: fail
            inputs: {message: "oops {{ env.YWF_CLI_TEST_TOKEN }}"}
    """
    env = {"YWF_CLI_TEST_TOKEN": SECRET}
    proc = cli(tmp_path, "run", write(tmp_path, text), "--base-dir", "runs", "--format", "json", env=env)
    assert proc.returncode == 1
    assert SECRET not in proc.stdout + proc.stderr
    document = json.loads(proc.stdout)
    assert document["outputs"]["show"]["stdout"] == "t=***\n"
    assert "oops ***" in document["error"]
    (workspace,) = workspaces(tmp_path / "runs")
    assert not [p for p in workspace.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_resume_of_a_completed_run_exits_2(tmp_path: Path) -> None:
    name = write(tmp_path, OK)
    assert cli(tmp_path, "run", name, "--base-dir", "runs", "-q").returncode == 0
    proc = cli(tmp_path, "run", name, "--base-dir", "runs", "--resume", "-q")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "already completed" in line


def test_help(tmp_path: Path) -> None:
    proc = cli(tmp_path, "--help")
    assert proc.returncode == 0
    assert "usage: yaml-workflow" in proc.stdout
    assert "run" in proc.stdout
    sub = cli(tmp_path, "run", "--help")
    assert sub.returncode == 0
    for flag in ("--resume", "--dry-run", "--format", "--output", "--base-dir", "--override-params"):
        assert flag in sub.stdout
