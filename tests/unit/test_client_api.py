"""The Python API's additions for its callers: workflow files, params checks, run identity."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from yaml_workflow import client
from yaml_workflow.exceptions import UsageError

WORKFLOW = """\
    name: greet
    description: Says hello
    secrets: [API_TOKEN_FOR_TEST]
    params:
      count: {type: integer, required: true}
      colour: {allowed_values: [red, blue], default: red}
    steps:
      - name: hello
        task: echo
        inputs: {message: "hello {{ args.count }}"}
    """


def write(folder: Path, name: str, text: str) -> Path:
    """A file with dedented text; parent folders created."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


def test_list_workflows_loads_each_file_and_names_params(tmp_path: Path) -> None:
    write(tmp_path, "greet.yaml", WORKFLOW)
    write(tmp_path, "sub/broken.yml", "steps:\n  - name: a\n    task: echo\n    inputs: [oops\n")
    write(tmp_path, "notes.yaml", "just: data\n")

    rows = client.list_workflows(tmp_path)

    assert [(r.file, r.valid) for r in rows] == [("greet.yaml", True), ("sub/broken.yml", False)]
    assert rows[0].name == "greet" and rows[0].steps == 1 and rows[0].params == ["colour", "count"]
    assert rows[1].error and "broken.yml:" in rows[1].error


def test_list_workflows_of_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        client.list_workflows(tmp_path / "nowhere")


@pytest.mark.parametrize(("params", "problem"), [
    ({}, "count"),
    ({"count": "many"}, "count"),
    ({"count": 2, "colour": "green"}, "colour"),
])
def test_validate_with_params_checks_them_as_a_run_would(tmp_path: Path, params: dict[str, Any],
                                                         problem: str) -> None:
    path = write(tmp_path, "greet.yaml", WORKFLOW)

    report = client.validate(path, params=params)

    assert not report.valid
    assert problem in report.errors[0].message


def test_validate_with_good_params_and_without_params(tmp_path: Path) -> None:
    path = write(tmp_path, "greet.yaml", WORKFLOW)
    assert client.validate(path, params={"count": "3"}).valid
    assert client.validate(path).valid  # params are only checked when given


def test_a_local_run_announces_itself_first_and_status_names_its_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN_FOR_TEST", "tok-123456")
    path = write(tmp_path, "greet.yaml", WORKFLOW)
    events: list[tuple[str, dict[str, Any]]] = []

    result = client.run(path, {"count": 1}, base_dir=tmp_path / "runs",
                        observer=lambda kind, event: events.append((kind, event)))

    assert result.ok
    assert events[0] == ("run", {"run_id": result.run_id, "workspace": result.workspace,
                                 "workflow": "greet"})
    assert [kind for kind, _ in events].count("run") == 1
    status = client.status(result.run_id, base_dir=tmp_path / "runs")
    assert status.secrets == ["API_TOKEN_FOR_TEST"]
