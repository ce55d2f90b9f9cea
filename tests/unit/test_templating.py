"""The one sandboxed, strict Jinja2 environment: messages, native values, filters, sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from yaml_workflow.exceptions import TemplateError, TemplateSyntaxProblem
from yaml_workflow.templating import (
    Namespace,
    check_syntax,
    render_string,
    render_text,
    render_value,
    truthy,
)


def scope(**steps: Any) -> dict[str, Any]:
    return {
        "args": Namespace("args", {"name": "World", "count": 3, "items": [1, 2]}),
        "env": Namespace("env", {"HOME": "/home/u"}),
        "steps": Namespace("steps", steps),
        "workflow": Namespace("workflow", {"name": "wf", "run_id": "abc123"}),
    }


def fails(template: str, namespaces: dict[str, Any] | None = None) -> str:
    with pytest.raises(TemplateError) as caught:
        render_string(template, namespaces if namespaces is not None else scope())
    return caught.value.one_line()


# --- strict undefined ---------------------------------------------------------------------


def test_undefined_attribute_names_it_and_lists_the_namespace() -> None:
    line = fails("Hello {{ args.nope }}")
    assert "'args.nope' is undefined" in line
    assert "count, items, name" in line  # what args does hold


def test_undefined_in_a_single_expression_too() -> None:
    line = fails("{{ args.nope }}")
    assert "'args.nope' is undefined" in line
    assert "name" in line


def test_undefined_step_lists_the_steps_that_exist() -> None:
    line = fails("{{ steps.missing.result }}", scope(first={"result": 1}))
    assert "'steps.missing' is undefined" in line
    assert "first" in line


def test_unknown_top_level_name_lists_the_namespaces() -> None:
    line = fails("{{ argz.name }}")
    assert "'argz' is undefined" in line
    assert "available names: args, env, steps, workflow" in line


def test_undefined_used_in_a_test_or_loop_still_fails() -> None:
    with pytest.raises(TemplateError, match="args.nope"):
        render_text("{% if args.nope %}yes{% endif %}", scope())
    with pytest.raises(TemplateError, match="args.nope"):
        render_text("{% for x in args.nope %}{{ x }}{% endfor %}", scope())


def test_default_filter_and_is_defined_still_work() -> None:
    assert render_string("{{ args.nope | default('fallback') }}", scope()) == "fallback"
    assert render_string("{{ args.nope is defined }}", scope()) is False
    assert render_string("{% if steps.zz is defined %}y{% else %}n{% endif %}", scope()) == "n"


# --- native values and text ---------------------------------------------------------------


def test_single_expression_yields_native_values() -> None:
    ns = scope(fetch={"result": {"rows": [1, 2, 3]}})
    assert render_string("{{ args.items }}", ns) == [1, 2]
    assert render_string("{{ args.count * 2 }}", ns) == 6
    assert render_string("{{ steps.fetch.result }}", ns) == {"rows": [1, 2, 3]}
    assert render_string("  {{ steps.fetch.result.rows | length }}  ", ns) == 3
    assert render_string("{{ args.count > 2 }}", ns) is True


def test_a_key_named_like_a_dict_method_is_the_key() -> None:
    # `items`, `keys`, `values` are common param and field names; the key is meant
    ns = scope(fetch={"result": {"items": ["a"], "values": {"v": 1}}})
    assert render_string("{{ args.items }}", ns) == [1, 2]
    assert render_string("{{ steps.fetch.result.items }}", ns) == ["a"]
    assert render_string("n={{ steps.fetch.result.values.v }}", ns) == "n=1"
    # a dict without such a key still fails cleanly (no method leaks out)
    with pytest.raises(TemplateError):
        render_string("{{ steps.fetch.result.keys }}", ns)


def test_mixed_text_yields_a_string() -> None:
    assert render_string("n={{ args.count }}", scope()) == "n=3"
    assert render_string("{{ args.count }}{{ args.count }}", scope()) == "33"
    assert render_string("{{ args.items }} items", scope()) == "[1, 2] items"


def test_plain_strings_are_returned_untouched() -> None:
    text = "no markup here, just } and { braces"
    assert render_string(text, scope()) is text


def test_trailing_newline_is_kept() -> None:
    assert render_string("Hello {{ args.name }}\n", scope()) == "Hello World\n"
    assert render_text("line\n\n", scope()) == "line\n\n"
    # a block scalar holding one expression: text keeps its newline, data stays data
    assert render_string("{{ args.name }}\n", scope()) == "World\n"
    assert render_string("  {{ args.name }}\n\n", scope()) == "  World\n\n"
    assert render_string("{{ args.items }}\n", scope()) == [1, 2]


def test_render_value_walks_dicts_and_lists() -> None:
    rendered = render_value({"a": ["{{ args.count }}", "x{{ args.name }}"], "b": 5}, scope())
    assert rendered == {"a": [3, "xWorld"], "b": 5}


# --- filters ------------------------------------------------------------------------------


def test_shquote_filter_quotes_for_the_shell() -> None:
    ns = {"args": Namespace("args", {"v": "it's; rm -rf /"})}
    assert render_string("echo {{ args.v | shquote }}", ns) == "echo 'it'\"'\"'s; rm -rf /'"


def test_tojson_filter() -> None:
    assert render_string("{{ args.items | tojson }}", scope()) == "[1, 2]"
    assert render_string("{{ {'k': 'é'} | tojson }}", scope()) == '{"k": "é"}'


def test_basename_and_dirname_filters() -> None:
    ns = {"args": Namespace("args", {"p": "/data/in/file.csv"})}
    assert render_string("{{ args.p | basename }}", ns) == "file.csv"
    assert render_string("{{ args.p | dirname }}", ns) == "/data/in"


# --- sandbox ------------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ (''|attr('__class__')).__mro__ }}",
    "{{ '{0.__class__}'.format(args) }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "x {{ '{a.__class__}'.format_map({'a': args}) }}",
    "{{ ('{0.__cl' ~ 'ass__}').format(args) }}",
    "{{ ('{0.__class__}'|attr('format'))(args) }}",
    "{% set f = '{0.__globals__}'.format %}{{ f(lipsum) }}",
    "{{ 'a'.format_map }}",
    "{{ 'a'.format }}",
    "text {{ ''.format_map }}",
    "{{ cycler }}",
    "{{ args.name.upper }}",
    "{{ '%s'|format(args.__class__) }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_sandbox_escapes_fail_with_template_error(payload: str) -> None:
    # when a template tries to reach Python internals
    with pytest.raises(TemplateError) as caught:
        value = render_string(payload, scope())
        pytest.fail(f"rendered to {value!r}")  # pragma: no cover - only on a leak
    line = caught.value.one_line()
    # then it fails as a template error and leaks nothing of what it reached
    assert "<class" not in line
    assert "<function" not in line
    assert "__builtins__" not in line
    assert "subclasses" not in line.split("(in ")[0]


def test_sandbox_also_guards_render_text() -> None:
    with pytest.raises(TemplateError, match="sandbox"):
        render_text("{{ ''.__class__ }}", scope())


# --- rendered once ------------------------------------------------------------------------


def test_a_value_holding_markup_is_not_rendered_again() -> None:
    # given a step whose result itself contains template markup
    ns = scope(fetch={"result": "{{ args.name }} and {{ args.nope }}"})
    # when a later template uses it, alone or within text
    alone = render_string("{{ steps.fetch.result }}", ns)
    inside = render_string("got: {{ steps.fetch.result }}", ns)
    # then the markup arrives verbatim: not rendered, and no undefined error
    assert alone == "{{ args.name }} and {{ args.nope }}"
    assert inside == "got: {{ args.name }} and {{ args.nope }}"


def test_render_value_renders_each_string_once() -> None:
    ns = {"args": Namespace("args", {"t": "{{ args.t }}"})}
    assert render_value(["{{ args.t }}", {"k": "<{{ args.t }}>"}], ns) == ["{{ args.t }}", {"k": "<{{ args.t }}>"}]


# --- syntax, truthiness -------------------------------------------------------------------


def test_syntax_errors_are_syntax_problems() -> None:
    assert check_syntax("{{ args.name }}") is None
    assert check_syntax("a {% if x %}b{% endif %}") is None
    problem = check_syntax("{{ args.x + }}")
    assert problem is not None and problem.startswith("template syntax error")
    assert check_syntax("{% if x %}never closed") is not None
    with pytest.raises(TemplateSyntaxProblem):
        render_text("{% for %}", scope())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("True", True), ("true", True), ("yes", True), ("1", True), ("anything", True),
        ("False", False), ("false", False), ("no", False), ("0", False), ("", False),
        ("None", False), (" false\n", False), (None, False), (0, False), ([], False),
        ([0], True), (1, True), (True, True), (False, False),
    ],
)
def test_condition_truthiness(value: Any, expected: bool) -> None:
    assert truthy(value) is expected
