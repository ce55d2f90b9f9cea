"""Command-line params: typed conversion, required/allowed/min-length checks, extras kept."""

from __future__ import annotations

from typing import Any

import pytest

from yaml_workflow.exceptions import EXIT_REFUSED, ParamError
from yaml_workflow.spec.models import Workflow
from yaml_workflow.spec.params import convert, parse_assignments, resolve_params


def workflow(params: dict[str, Any]) -> Workflow:
    """A workflow declaring ``params`` (each either a default or a Param mapping)."""
    return Workflow.model_validate({
        "name": "p",
        "params": {k: (v if isinstance(v, dict) else {"default": v}) for k, v in params.items()},
    })


def refused(wf: Workflow, given: dict[str, Any]) -> ParamError:
    with pytest.raises(ParamError) as caught:
        resolve_params(wf, given)
    assert caught.value.exit_code == EXIT_REFUSED
    return caught.value


# --- conversion of strings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("integer", "42", 42),
        ("integer", " -7 ", -7),
        ("number", "2.5", 2.5),
        ("number", "3", 3),
        ("number", "1e3", 1000.0),
        ("boolean", "yes", True),
        ("boolean", "no", False),
        ("boolean", "true", True),
        ("boolean", "TRUE", True),
        ("boolean", "false", False),
        ("boolean", "1", True),
        ("boolean", "0", False),
        ("list", "[1, 2, 3]", [1, 2, 3]),
        ("list", '["a", "b"]', ["a", "b"]),
        ("list", "a, b,c", ["a", "b", "c"]),
        ("list", "single", ["single"]),
        ("object", '{"k": 1, "n": [true]}', {"k": 1, "n": [True]}),
        ("string", "007", "007"),
    ],
)
def test_cli_strings_convert_to_the_declared_type(kind: str, text: str, expected: Any) -> None:
    # given a param declared with a type, when the command line gives a string
    args = resolve_params(workflow({"p": {"type": kind}}), {"p": text})
    # then args holds the converted value, of the right Python type
    assert args["p"] == expected
    assert type(args["p"]) is type(expected)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("integer", "forty"),
        ("integer", "4.5"),
        ("number", "abc"),
        ("boolean", "maybe"),
        ("list", '{"a": 1}'),
        ("object", "[1, 2]"),
        ("object", "not-json"),
    ],
)
def test_a_value_that_does_not_convert_names_the_param(kind: str, text: str) -> None:
    err = refused(workflow({"my_param": {"type": kind}}), {"my_param": text})
    line = err.one_line()
    assert "'my_param'" in line
    assert kind in line
    assert repr(text) in line


def test_object_error_reads_well() -> None:
    err = refused(workflow({"cfg": {"type": "object"}}), {"cfg": "[1]"})
    assert "must be an object" in err.one_line()


def test_defaults_are_converted_and_checked_too() -> None:
    wf = workflow({"count": {"type": "integer", "default": 3}, "ratio": {"type": "number", "default": 1}})
    assert resolve_params(wf, {}) == {"count": 3, "ratio": 1}
    bad = workflow({"count": {"type": "integer", "default": "three"}})
    assert "'count'" in refused(bad, {}).one_line()


def test_non_string_values_are_checked_against_the_type() -> None:
    # values that arrive typed (from a resume, or the Python API) are checked, not parsed
    assert convert("n", 5, "integer") == 5
    with pytest.raises(ParamError, match="'flag'"):
        convert("flag", 1, "boolean")
    with pytest.raises(ParamError, match="'n'"):
        convert("n", True, "integer")


# --- required, allowed values, min length -----------------------------------------------


def test_required_missing_names_the_param_and_its_description() -> None:
    wf = workflow({"target": {"type": "string", "required": True, "description": "where to deploy"}})
    line = refused(wf, {}).one_line()
    assert "required parameter 'target' is missing" in line
    assert "target=VALUE" in line
    assert "where to deploy" in line


def test_required_given_is_accepted() -> None:
    wf = workflow({"target": {"type": "string", "required": True}})
    assert resolve_params(wf, {"target": "prod"}) == {"target": "prod"}


@pytest.mark.parametrize("key", ["allowed_values", "allowedValues"])
def test_allowed_values_in_both_spellings(key: str) -> None:
    wf = workflow({"stage": {"type": "string", key: ["dev", "prod"]}})
    assert resolve_params(wf, {"stage": "prod"}) == {"stage": "prod"}
    line = refused(wf, {"stage": "test"}).one_line()
    assert "'stage'" in line
    assert "not allowed" in line
    assert "dev, prod" in line


def test_allowed_values_compare_after_conversion() -> None:
    wf = workflow({"level": {"type": "integer", "allowed_values": [1, 2, 3]}})
    assert resolve_params(wf, {"level": "2"}) == {"level": 2}
    assert "'level'" in refused(wf, {"level": "4"}).one_line()


@pytest.mark.parametrize("key", ["min_length", "minLength"])
def test_min_length_in_both_spellings(key: str) -> None:
    wf = workflow({"code": {"type": "string", key: 3}, "tags": {"type": "list", key: 2}})
    assert resolve_params(wf, {"code": "abc", "tags": "x,y"}) == {"code": "abc", "tags": ["x", "y"]}
    assert "'code' is shorter than 3" in refused(wf, {"code": "ab"}).one_line()
    assert "'tags' is shorter than 2" in refused(wf, {"tags": "[1]"}).one_line()


def test_undeclared_params_are_kept_as_given() -> None:
    wf = workflow({"who": "World"})
    assert resolve_params(wf, {"extra": "1", "flag": "yes"}) == {"who": "World", "extra": "1", "flag": "yes"}


def test_untyped_param_keeps_the_string() -> None:
    wf = workflow({"who": "World"})
    assert resolve_params(wf, {"who": "42"}) == {"who": "42"}


# --- parsing k=v --------------------------------------------------------------------------


def test_parse_assignments_accepts_both_forms_and_keeps_later_equals() -> None:
    assert parse_assignments(["a=1", "--b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}


@pytest.mark.parametrize("item", ["novalue", "=1", "--flag"])
def test_parse_assignments_refuses_what_is_not_k_eq_v(item: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_assignments([item])
    assert repr(item) in caught.value.one_line() or f"'{item}'" in caught.value.one_line()
