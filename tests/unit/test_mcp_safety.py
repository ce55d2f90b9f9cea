"""What `serve-mcp` sends back and what it accepts: redaction and the workflows directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yaml_workflow.client import RunResult, SubmitResult
from yaml_workflow.mcp_server.redaction import RESULT_LIMIT, STRING_LIMIT, Redactor, cut
from yaml_workflow.mcp_server.workflow_dir import OutsideDirectory, WorkflowDir

SECRET = "s3cret-value-42"


def test_a_cut_text_with_its_note_fits_the_limit_and_a_second_cut_changes_nothing() -> None:
    text = "y" * 10_000_000
    once = cut(text, STRING_LIMIT, "see the workspace")
    assert len(once) <= STRING_LIMIT
    assert once.endswith("[truncated: 10,000,000 characters, the first "
                         f"{once.index(chr(10)):,} shown; see the workspace]")
    assert cut(once, STRING_LIMIT, "see the workspace") == once
    assert cut("short", STRING_LIMIT, "x") == "short"


def test_a_secret_across_the_cut_is_masked_whole_first() -> None:
    text = "a" * (STRING_LIMIT - 300) + SECRET + "b" * STRING_LIMIT
    shown = Redactor([SECRET]).text(text)
    assert SECRET[:4] not in shown.replace("a", "").replace("b", "")
    assert "***" in shown


def test_masking_reaches_every_string_of_a_nested_value() -> None:
    value = {"list": [SECRET, {"deep": f"x{SECRET}y"}], "n": 3, "none": None}
    assert json.dumps(Redactor([SECRET]).value(value)).count(SECRET) == 0
    assert Redactor([SECRET]).value(value)["n"] == 3


def test_a_large_free_form_value_becomes_a_bounded_preview() -> None:
    many = [{"i": i, "text": "z" * 100} for i in range(10_000)]  # ~1.2 MB of small strings
    shown = Redactor().value(many)
    assert isinstance(shown, str) and len(shown) <= 64_000 and "truncated:" in shown


def test_outputs_past_the_result_limit_are_left_out_with_a_note() -> None:
    outputs = {f"step{i}": "o" * 10_000 for i in range(100)}  # 1 MB in all
    shown = Redactor().mapping(outputs)
    assert len(json.dumps(shown)) <= RESULT_LIMIT + 100 * 200
    assert shown["step0"] == "o" * 10_000
    assert shown["step99"].startswith("[left out: the result is over")


def test_a_model_keeps_its_type_and_bounds_nested_outputs() -> None:
    result = RunResult(run_id="r1", status="completed", workflow="w", workspace="/ws",
                       outputs={"big": "x" * 10_000_000, "secret": SECRET}, error=f"bad {SECRET}")
    submitted = SubmitResult(run_id="r1", workflow="w", workspace="/ws", result=result)
    shown = Redactor([SECRET]).model(submitted, free=["result.outputs"])
    assert isinstance(shown, SubmitResult) and shown.result is not None
    assert len(shown.result.outputs["big"]) <= STRING_LIMIT
    assert shown.result.outputs["secret"] == "***" and shown.result.error == "bad ***"


@pytest.fixture()
def served(tmp_path: Path) -> WorkflowDir:
    root = tmp_path / "workflows"
    (root / "sub").mkdir(parents=True)
    (root / "ok.yaml").write_text("steps: []\n")
    (root / "sub" / "deep.yml").write_text("steps: []\n")
    (tmp_path / "evil.yaml").write_text("steps: []\n")
    (root / "out.yaml").symlink_to(tmp_path / "evil.yaml")
    (root / "up").symlink_to(tmp_path, target_is_directory=True)
    return WorkflowDir(root)


@pytest.mark.parametrize("name", ["ok.yaml", "sub/deep.yml", "./ok.yaml", "sub//deep.yml"])
def test_names_under_the_directory_are_served(served: WorkflowDir, name: str) -> None:
    assert served.resolve(name).is_relative_to(served.root)


@pytest.mark.parametrize(("name", "why"), [
    ("", "empty"),
    ("ok\x00.yaml", "NUL"),
    ("../evil.yaml", "'..'"),
    ("sub/../../evil.yaml", "'..'"),
    ("..\\evil.yaml", "'..'"),
    ("/etc/passwd", "absolute"),
    ("C:\\evil.yaml", "absolute"),
    ("~/evil.yaml", "absolute"),
    ("out.yaml", "outside"),
    ("up/evil.yaml", "outside"),
    ("sub", "no workflow file"),
    ("missing.yaml", "no workflow file"),
])
def test_every_other_name_is_refused_saying_why(served: WorkflowDir, name: str, why: str) -> None:
    with pytest.raises(OutsideDirectory, match=why):
        served.resolve(name)
