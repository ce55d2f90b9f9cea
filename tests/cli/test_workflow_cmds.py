"""`validate`, `visualize`, `list`, `init` and `schema`, in-process and as users type them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest
import yaml

from yaml_workflow.cli.main import run_cli
from yaml_workflow.cli.workflow_cmds import bundled_examples
from yaml_workflow.engine.lint import references

EXAMPLES = Path(__file__).resolve().parents[2] / "yaml_workflow" / "examples"


def write(folder: Path, name: str, text: str) -> Path:
    """A file with dedented text; parent folders created."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


GOOD = """\
    name: good
    description: A good one
    params:
      who: {default: x}
    steps:
      - name: a
        task: echo
        inputs: {message: "{{ args.who }}"}
      - name: b
        task: shell
        inputs: {command: "echo {{ steps.a.result }}"}
    """
DUP = """\
    name: dup
    steps:
      - name: twice
        task: echo
      - name: twice
        task: echo
    """
BROKEN = """\
    name: broken
    steps:
      - name: a
        task: echo
        inputs: [unclosed
    """


# --- validate -------------------------------------------------------------------------


def test_validate_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "good.yaml", GOOD)
    assert run_cli(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == f"VALID: {path} (2 steps)"
    assert out.err == ""


@pytest.mark.parametrize(("text", "needle"), [(DUP, "twice"), (BROKEN, "line ")])
def test_validate_bad_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    path = write(tmp_path, "bad.yaml", text)
    assert run_cli(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert re.search(rf"{re.escape(str(path))}:\d+:", err)


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    assert run_cli(["validate", str(good), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"valid": True, "file": str(good), "steps": 2, "error_count": 0,
                   "errors": [], "warnings": []}

    dup = write(tmp_path, "dup.yaml", DUP)
    assert run_cli(["validate", str(dup), "--format", "json"]) == 2
    out = capsys.readouterr()
    doc = json.loads(out.out)  # stdout is the JSON document and nothing else
    assert doc["valid"] is False and doc["error_count"] == 1
    assert "twice" in doc["errors"][0]["message"] and doc["errors"][0]["line"] == 5


LINTY = """\
    name: linty
    params:
      who: x
    steps:
      - name: first
        task: echo
        inputs:
          message: "{{ args.who }} {{ args.nope }} {{ steps.second.result }} {{ steps.secnd.result }}"
      - name: second
        task: echo
        inputs:
          message: >-
            {{ args.maybe | default('m') }} {{ args.get('other') }}
            {% if args.flag is defined %}{{ args.flag }}{% endif %} {{ steps.first.result }}
      - name: each
        task: batch
        inputs:
          items: [1, 2]
          arg_name: thing
          task: {task: echo, inputs: {message: "{{ args.thing }} {{ thing }} {{ batch.index }}"}}
      - name: handled
        task: fail
        on_error:
          action: continue
          message: "{{ error.step }}: {{ error.message }} ({{ error.type }}, {{ error.attempt }})"
    """


def test_validate_warnings_and_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "linty.yaml", LINTY)
    assert run_cli(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert "VALID" in out.out and "3 warning(s)" in out.out
    warnings = [line for line in out.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, out.err
    assert any("args.nope is not a declared param" in w for w in warnings)
    assert any("steps.second may not have run yet" in w for w in warnings)
    assert any("there is no step 'secnd'; did you mean 'second'?" in w for w in warnings)
    # Guarded uses (default, .get, is defined), the batch item and `error` are not flagged.
    assert "maybe" not in out.err and "other" not in out.err and "flag" not in out.err
    assert "thing" not in out.err and "error." not in out.err

    assert run_cli(["validate", str(path), "--strict"]) == 2
    assert "INVALID" in capsys.readouterr().err
    assert run_cli(["validate", str(path), "--strict", "--format", "json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and doc["error_count"] == 3 and doc["warnings"] == []
    assert {e["line"] for e in doc["errors"]} == {5}


def test_lint_dag_and_reachability(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "dag.yaml", """\
        name: dag
        flows:
          default: main
          definitions:
            - main: [root, left, right]
        steps:
          - {name: root, task: echo}
          - name: left
            task: echo
            depends_on: root
            inputs: {message: "{{ steps.root.result }} {{ steps.right.result }}"}
          - name: right
            task: fail
            depends_on: root
            on_error: {next: spare}
          - {name: spare, task: echo, condition: false}
        """)
    assert run_cli(["validate", str(path), "--format", "json"]) == 0
    messages = [w["message"] for w in json.loads(capsys.readouterr().out)["warnings"]]
    assert messages == [
        "step 'left': steps.right may not have run yet when 'left' runs (it comes later or in parallel)",
        "step 'right': on_error next target 'spare' is not in flow 'main'",
        "step 'spare': is in no flow, so it runs only with --flow all",
        "step 'spare': condition is always false (False), so it never runs",
    ]


def test_references_ignores_computed_keys_and_checked_namespaces() -> None:
    assert references("{{ steps[name].result }}") == set()
    assert references("{% if 'x' in args %}{{ args.x }}{% endif %}") == set()
    assert references("{{ steps['a'].result }} {{ args.b }}") == {("steps", "a"), ("args", "b")}


def test_examples_have_no_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert run_cli(["validate", str(path), "--strict"]) == 0, capsys.readouterr().err


# --- visualize ------------------------------------------------------------------------


def test_visualize_text_sequence(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["visualize", str(EXAMPLES / "error_handling.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("error_handling: 5 step(s) (in order)")
    assert "[1] flaky_step (python_code)" in out and "retry: up to 3 attempts" in out
    assert "on error: go to cleanup" in out and "on error: continue" in out
    assert out.count("    v\n") == 4  # an arrow between each pair of steps


def test_visualize_text_dag_and_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["visualize", str(EXAMPLES / "parallel_steps.yaml")]) == 0
    out = capsys.readouterr().out
    assert "DAG" in out and "after: count_words, sum_numbers, shout" in out
    path = write(tmp_path, "flows.yaml", """\
        flows: {default: short, definitions: [{short: [a]}, {long: [a, b]}]}
        steps:
          - {name: a, task: echo, condition: "{{ args.go | default(true) }}"}
          - {name: b, task: echo}
        """)
    assert run_cli(["visualize", str(path)]) == 0
    out = capsys.readouterr().out
    assert "flow 'short'" in out and "not in this flow: b" in out and "if: {{ args.go" in out
    assert run_cli(["visualize", str(path), "--flow", "long"]) == 0
    assert "not in this flow" not in capsys.readouterr().out
    assert run_cli(["visualize", str(path), "--flow", "lnog"]) == 2
    assert "did you mean 'long'?" in capsys.readouterr().err


def test_visualize_mermaid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["visualize", str(EXAMPLES / "error_handling.yaml"), "--format", "mermaid"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"
    assert "    s0_flaky_step --> s1_optional_step" in lines
    assert "    s2_risky_step -. on error .-> s4_cleanup" in lines
    path = write(tmp_path, "odd.yaml", """\
        steps:
          - {name: "first step", task: echo}
          - {name: second-one, task: echo, depends_on: "first step", condition: '{{ "a" > "b" }}'}
        """)
    assert run_cli(["visualize", str(path), "--format", "mermaid"]) == 0
    out = capsys.readouterr().out
    assert "s0_first_step --> s1_second_one" in out
    # Node lines are `id["label"]` (or `id{{"label"}}` when conditional), quotes escaped inside.
    nodes = [line for line in out.splitlines()[1:] if "--" not in line]
    assert len(nodes) == 2
    for line in nodes:
        assert re.fullmatch(r'    s\d+_\w+(\["[^"]*"\]|\{\{"[^"]*"\}\})', line), line
    assert "#quot;a#quot; #gt; #quot;b#quot;" in out


# --- list -----------------------------------------------------------------------------


def test_list_finds_workflows_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "good.yaml", GOOD)
    write(tmp_path, "sub/broken.yml", BROKEN)
    write(tmp_path, "compose.yaml", "services:\n  web: {image: nginx}\n")
    write(tmp_path, "runs/good_run_1/copy.yaml", GOOD)
    write(tmp_path, ".hidden/h.yaml", GOOD)
    assert run_cli(["list", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "good.yaml: good (2 steps) - A good one"
    assert lines[1].startswith("sub/broken.yml: ERROR ") and "invalid YAML" in lines[1]
    assert len(lines) == 2

    assert run_cli(["list", str(tmp_path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["file"], r["valid"]) for r in rows] == [("good.yaml", True), ("sub/broken.yml", False)]


def test_list_defaults_to_workflows_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "top.yaml", GOOD)
    assert run_cli(["list"]) == 0
    assert "top.yaml" in capsys.readouterr().out
    write(tmp_path, "workflows/inner.yaml", GOOD)
    assert run_cli(["list"]) == 0
    out = capsys.readouterr().out
    assert "inner.yaml" in out and "top.yaml" not in out
    assert run_cli(["list", "nowhere"]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_list_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["list", "--tasks"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"shell", "python_code", "batch", "template", "http.request"} <= set(names)


# --- init -----------------------------------------------------------------------------


def test_init_copies_examples_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "wf"
    assert run_cli(["init", "--dir", str(target)]) == 0
    copied = sorted(p.name for p in target.iterdir())
    assert copied == sorted(f"{n}.yaml" for n in bundled_examples())
    assert f"next: yaml-workflow run {target / 'hello_world.yaml'}" in capsys.readouterr().out
    (target / "hello_world.yaml").write_text("mine")
    assert run_cli(["init", "--dir", str(target)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert (target / "hello_world.yaml").read_text() == "mine"
    assert run_cli(["init", "--dir", str(target), "--example", "hello_world", "--force"]) == 0
    assert (target / "hello_world.yaml").read_text() == (EXAMPLES / "hello_world.yaml").read_text()
    assert run_cli(["init", "--dir", str(target), "--example", "nope"]) == 2
    assert "examples: data_pipeline" in capsys.readouterr().err


def test_init_one_example(tmp_path: Path) -> None:
    assert run_cli(["init", "--dir", str(tmp_path), "--example", "data_pipeline.yaml"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["data_pipeline.yaml"]


# --- schema ---------------------------------------------------------------------------


def _schema(capsys: pytest.CaptureFixture[str]) -> dict:
    assert run_cli(["schema"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_schema_shape(capsys: pytest.CaptureFixture[str]) -> None:
    schema = _schema(capsys)
    assert schema["$schema"].startswith("http://json-schema.org/draft-07")
    assert schema["title"] == "yaml-workflow workflow"
    assert "source" not in schema["properties"] and "required" not in schema
    task = schema["$defs"]["Step"]["properties"]["task"]
    assert task["type"] == "string" and "shell" in task["examples"] and "shell" in task["description"]
    assert schema["$defs"]["StepInMapping"]["required"] == ["task"]


def test_schema_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deep" / "workflow.schema.json"
    assert run_cli(["schema", "--output", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(out.read_text())["title"] == "yaml-workflow workflow"


def test_schema_accepts_what_the_loader_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(_schema(capsys))
    documents = [yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))]
    documents.append(yaml.safe_load(dedent("""\
        params: {n: 3, names: [a, b], p: {type: integer, allowedValues: [1], min_length: 1}}
        secrets: TOKEN
        imports: other.yaml
        flows: {default: main, definitions: [{main: [a]}]}
        steps:
          a:
            task: my_plugin_task
            params: {x: 1}
            depends_on: b
            retry: 3
            on_error: continue
          b:
            task: echo
            retry: {max_attempts: 2, on_error: ConnectionError}
        """)))
    for doc in documents:
        assert list(validator.iter_errors(doc)) == []
    typo = {"steps": [{"name": "a", "task": "echo", "inptus": {}}]}
    assert list(validator.iter_errors(typo))
    assert list(validator.iter_errors({"stpes": []}))


# --- as users type them ---------------------------------------------------------------


def cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m yaml_workflow ARGV`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "yaml_workflow", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_subprocess_validate(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    done = cli("validate", str(good))
    assert done.returncode == 0 and done.stdout.startswith("VALID:")
    done = cli("validate", str(write(tmp_path, "dup.yaml", DUP)))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    done = cli("validate")
    assert done.returncode == 2 and "usage" not in done.stdout


def test_subprocess_init_list_visualize_schema(tmp_path: Path) -> None:
    assert cli("init", cwd=tmp_path).returncode == 0
    done = cli("list", cwd=tmp_path)
    assert done.returncode == 0 and "hello_world.yaml: hello_world (2 steps)" in done.stdout
    done = cli("visualize", "workflows/parallel_steps.yaml", "--format", "mermaid", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("flowchart TD")
    done = cli("schema", cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["$defs"]["Step"]
