"""Small inputs that ask for a lot: each ends quickly, in little memory, with one line.

Every payload runs ``yaml-workflow`` as a subprocess measured by ``os.wait4``: at most
5 s of CPU and 200 MB peak memory; a load-time payload exits 2 with one ``error:`` line,
a run-time one fails its step (exit 1) with a one-line reason.  ``validate`` of a
20,000-step workflow takes at most 3 s of CPU.
"""

from __future__ import annotations

import os
import re
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.support.measured import Measured, run_measured
from tests.support.redis_server import RedisServer

MAX_CPU = 5.0
MAX_PEAK_MB = 200.0


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def assert_bounded(result: Measured) -> None:
    assert result.cpu <= MAX_CPU, result.describe()
    assert result.peak_mb <= MAX_PEAK_MB, result.describe()
    assert "Traceback" not in result.err and "internal error" not in result.err, result.describe()


def assert_refused(result: Measured, *fragments: str) -> None:
    """Exit 2, one `error:` line on stderr naming what was wrong."""
    assert_bounded(result)
    assert result.code == 2, result.describe()
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.describe()
    for fragment in fragments:
        assert fragment in lines[0], result.describe()


def assert_step_failed(result: Measured, *fragments: str) -> None:
    """Exit 1: the step failed, with a one-line reason."""
    assert_bounded(result)
    assert result.code == 1, result.describe()
    fail_lines = [line for line in result.err.splitlines() if line.lstrip().startswith("FAIL")]
    assert len(fail_lines) == 1, result.describe()
    for fragment in fragments:
        assert fragment in fail_lines[0], result.describe()


# --- YAML aliases ---------------------------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> list[str]:
    """The lines of a "billion laughs": each anchor lists the previous one `width` times."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return lines


def bomb_workflow() -> str:
    body = "\n".join("      " + line for line in alias_bomb())
    return (f"params:\n  bomb:\n    default:\n{body}\n"
            "steps:\n  - name: s\n    task: echo\n    inputs: {message: '{{ args.bomb }}'}\n")


@pytest.mark.parametrize("command", ["validate", "run", "visualize"])
def test_an_alias_bomb_in_a_workflow_file_is_refused(tmp_path: Path, command: str) -> None:
    wf = tmp_path / "bomb.yaml"
    wf.write_text(bomb_workflow(), encoding="utf-8")
    assert len(wf.read_bytes()) < 700  # a few hundred bytes that stand for 10**9 nodes
    extra = ["--base-dir", str(tmp_path / "runs")] if command == "run" else []
    result = run_measured([command, str(wf), *extra], cwd=tmp_path)
    assert_refused(result, "aliases expand this document")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kind", ["object", "list"])
def test_an_alias_bomb_in_a_param_value_is_refused(tmp_path: Path, kind: str) -> None:
    wf = write(tmp_path / "wf.yaml", f"""
        params:
          p: {{type: {kind}}}
        steps:
          - name: s
            task: echo
            inputs: {{message: "{{{{ args.p }}}}"}}
    """)
    lines = alias_bomb()
    value = "{" + ", ".join(lines) + "}" if kind == "object" else "[" + ", ".join(
        line.split(": ", 1)[1] for line in lines) + "]"
    assert len(value) < 500
    result = run_measured(["run", str(wf), f"p={value}", "--base-dir", str(tmp_path / "runs")], cwd=tmp_path)
    assert_refused(result, "parameter 'p'", "aliases expand")


def test_an_alias_that_contains_itself_is_refused(tmp_path: Path) -> None:
    wf = write(tmp_path / "wf.yaml", """
        params:
          loop:
            default: &me [1, *me]
        steps:
          - {name: s, task: noop}
    """)
    assert_refused(run_measured(["validate", str(wf)], cwd=tmp_path), "aliases")


def test_anchors_used_as_intended_still_load(tmp_path: Path) -> None:
    # One anchor merged into 3,000 steps: aliases add far more than 10,000 nodes here, but
    # no more than the file's own size allows.
    steps = "\n".join(f"  - {{<<: *defaults, name: s{i}}}" for i in range(3000))
    wf = tmp_path / "wf.yaml"
    wf.write_text("params:\n  d:\n    default: &defaults {task: echo, inputs: {message: hi, level: info}}\n"
                  f"steps:\n{steps}\n", encoding="utf-8")
    result = run_measured(["validate", str(wf)], cwd=tmp_path)
    assert result.code == 0, result.describe()


# --- numbers --------------------------------------------------------------------------------

HUGE = "9" * 100_000


@pytest.mark.parametrize("where", ["file_default", "integer_param", "number_param", "object_param",
                                   "list_param"])
def test_a_100000_digit_number_is_one_line(tmp_path: Path, where: str) -> None:
    default = f" default: {HUGE}" if where == "file_default" else ""
    kind = {"file_default": "integer", "integer_param": "integer", "number_param": "number",
            "object_param": "object", "list_param": "list"}[where]
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"params:\n  n: {{type: {kind},{default}}}\n"
                  "steps:\n  - name: s\n    task: echo\n    inputs: {message: '{{ args.n }}'}\n", encoding="utf-8")
    value = {"file_default": None, "integer_param": HUGE, "number_param": HUGE,
             "object_param": "{a: " + HUGE + "}", "list_param": "[" + HUGE + "]"}[where]
    argv = ["run", str(wf), "--base-dir", str(tmp_path / "runs"), "-q"]
    if value is not None:
        argv.append(f"n={value}")
    result = run_measured(argv, cwd=tmp_path)
    if where == "number_param":  # a float: read as a (huge) float, the run goes on
        assert_bounded(result)
        assert result.code == 0, result.describe()
        return
    assert_refused(result)
    assert len(result.err) < 400, "the value is not echoed in full"


# --- templates: folded at compile time, or built at run time --------------------------------

RUN_TIME_PAYLOADS = {
    "power": "x{{ 10 ** 1000000000 }}",
    "power_alone": "{{ 10 ** 1000000000 }}",
    "repeat": "{{ 'a' * 10**9 }}",
    "repeat_literal": "{{ 'a' * 1000000000 }}",
    "center": "{{ 'a' | center(10**9) }}",
    "center_literal": "{{ 'a' | center(1000000000) }}",
    "center_method": "{{ 'a'.center(10**9) }}",
    "indent": "{{ 'a' | indent(10**9) }}",
    "percent_width": "{{ '%0999999999d' % 1 }}",
    "format_width": "{{ '{:>999999999}'.format(1) }}",
    "format_filter": "{{ '%0999999999d' | format(1) }}",
    "replace_chain": "{{ 'a' | replace('a', 'b' * 1000000) | replace('b', 'c' * 1000) }}",
    "join_separator": "{{ range(100000) | join('x' * 1000000) }}",
    "doubling": "{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "number_growth": "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
    "nested_loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "output_size": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "list_repeat": "{{ ([1] * 1000) * 1000000 }}",
    "batch_fill": "{{ [1] | batch(1000000000, 'x') | list }}",
    "lipsum": "{{ lipsum(1000000) }}",
    "to_bytes": "{{ (1).to_bytes(1000000000, 'big') }}",
    "macro_fork": "{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}",
}


def test_validate_computes_none_of_the_template_payloads(tmp_path: Path) -> None:
    # Jinja folds constant expressions when it compiles: `validate` must not compute them.
    steps = "".join(f"  - name: {name}\n    task: echo\n    inputs:\n      message: {payload!r}\n"
                    for name, payload in sorted(RUN_TIME_PAYLOADS.items()))
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"steps:\n{steps}", encoding="utf-8")
    checked = run_measured(["validate", str(wf)], cwd=tmp_path)
    assert_bounded(checked)
    assert checked.code == 0, checked.describe()


@pytest.mark.parametrize("name", sorted(RUN_TIME_PAYLOADS))
def test_a_template_that_asks_for_too_much_fails_its_step(tmp_path: Path, name: str) -> None:
    payload = RUN_TIME_PAYLOADS[name]
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"steps:\n  - name: greedy\n    task: echo\n    inputs:\n      message: {payload!r}\n",
                  encoding="utf-8")
    result = run_measured(["run", str(wf), "--base-dir", str(tmp_path / "runs")], cwd=tmp_path)
    assert_step_failed(result, "greedy")


def test_a_template_in_the_workflow_env_is_refused_before_any_step(tmp_path: Path) -> None:
    wf = write(tmp_path / "wf.yaml", """
        env:
          BIG: "{{ 'a' * 10**9 }}"
        steps:
          - {name: s, task: noop}
    """)
    result = run_measured(["run", str(wf), "--base-dir", str(tmp_path / "runs")], cwd=tmp_path)
    assert_refused(result, "env:", "refused")


def test_80_nested_parentheses_are_a_syntax_error(tmp_path: Path) -> None:
    deep = "{{ " + "(" * 80 + "1" + ")" * 80 + " }}"
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"steps:\n  - name: s\n    task: echo\n    inputs: {{message: {deep!r}}}\n", encoding="utf-8")
    for command in (["validate", str(wf)], ["run", str(wf), "--base-dir", str(tmp_path / "runs")]):
        assert_refused(run_measured(command, cwd=tmp_path), "nests too deeply")


# --- validate is linear ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["sequence", "dag"])
def test_validate_of_20000_steps_takes_at_most_3_seconds(tmp_path: Path, shape: str) -> None:
    lines = ["name: big", "params:", "  who: {type: string, default: x}", "steps:"]
    for i in range(20_000):
        depends = f"\n    depends_on: [s{i - 1}]" if shape == "dag" and i else ""
        previous = f"s{i - 1}" if i else "s1"
        lines.append(f"  - name: s{i}\n    task: echo{depends}\n    inputs:\n"
                     f"      message: \"{{{{ args.who }}}} {{{{ steps.{previous}.result }}}} {i}\"")
    wf = tmp_path / "big.yaml"
    wf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # CPU time, not wall time, and the best of three tries: other tests share the machine
    # (two cores), and a busy machine slows a process's own CPU time too.
    tries = []
    for _ in range(3):
        result = run_measured(["validate", str(wf)], cwd=tmp_path)
        assert result.code == 0 and "VALID" in result.out, result.describe()
        assert result.err.count("warning:") == 1  # s0 reads s1, which runs after it
        tries.append(result)
        if result.cpu <= 3.0:
            break
    print("validate of 20,000 steps:", [f"{t.cpu:.2f}s cpu / {t.wall:.2f}s wall" for t in tries])
    assert min(t.cpu for t in tries) <= 3.0, [t.describe() for t in tries]


# --- files that are not workflows -----------------------------------------------------------

NOT_YAML = {
    "shadow": "root:$y$j9T$Q8fakeHashOfTheRootPassword:19000:0:99999:7:::\n"
              "daemon:*:19000:0:99999:7:::\n",
    "env_file": "DB_PASSWORD=hunter2-not-a-key\nAPI_TOKEN=tok-1234567890\n",
    "binary": "\x00\x01\x02ELF-ish binary content\x00",
    "alias_like": "*secretAliasName and more\n",
    "tagged": "!secretTagName value\n",
    "ini": "[section]\npassword = s3cr3t-value\n",
}


def _fragments(text: str) -> list[str]:
    """Pieces of a file's content that must not appear in an error about it."""
    return [part for part in re.split(r"[\s:=*!\[\]$]+", text) if len(part) >= 4]


@pytest.mark.parametrize("name", sorted(NOT_YAML))
def test_importing_a_file_that_is_not_yaml_never_echoes_its_content(tmp_path: Path, name: str) -> None:
    target = tmp_path / f"{name}.txt"
    target.write_bytes(NOT_YAML[name].encode("utf-8"))
    wf = write(tmp_path / "wf.yaml", f"""
        imports: ["{target}"]
        steps:
          - {{name: s, task: noop}}
    """)
    for command in ("validate", "run"):
        result = run_measured([command, str(wf), "--base-dir", str(tmp_path / "runs")]
                              if command == "run" else [command, str(wf)], cwd=tmp_path)
        assert_refused(result)
        leaked = [part for part in _fragments(NOT_YAML[name]) if part in result.err and part not in str(target)]
        assert not leaked, (leaked, result.err)


@pytest.mark.skipif(not os.access("/etc/shadow", os.R_OK), reason="/etc/shadow is not readable here")
def test_importing_etc_shadow_never_echoes_it(tmp_path: Path) -> None:
    wf = write(tmp_path / "wf.yaml", """
        imports: ["/etc/shadow"]
        steps:
          - {name: s, task: noop}
    """)
    result = run_measured(["validate", str(wf)], cwd=tmp_path)
    assert_refused(result)
    content = Path("/etc/shadow").read_text(errors="replace")
    leaked = [part for part in _fragments(content) if part in result.err and part not in str(wf)]
    assert not leaked, (leaked, result.err)


def test_dev_zero_as_the_workflow_file_is_refused(tmp_path: Path) -> None:
    for command in (["validate", "/dev/zero"], ["run", "/dev/zero", "--base-dir", str(tmp_path / "runs")]):
        assert_refused(run_measured(command, cwd=tmp_path), "larger than")
    assert not (tmp_path / "runs").exists()


# --- run ids, --output, --timeout ----------------------------------------------------------

LONG_ID = "a" * 5000


@pytest.mark.parametrize("command", [["status"], ["logs"], ["cancel"], ["retry", "--step", "x"],
                                     ["skip", "--step", "x"], ["submit", "--resume"]])
def test_a_5000_character_run_id_is_one_line(tmp_path: Path, command: list[str]) -> None:
    argv = [*command[:1], LONG_ID, *command[1:]] if command[0] != "submit" else [*command, LONG_ID]
    result = run_measured(argv, cwd=tmp_path)
    assert_refused(result, "is not a run id or a workspace path")
    assert len(result.err) < 400


def _tiny_workflow(tmp_path: Path) -> Path:
    return write(tmp_path / "wf.yaml", """
        steps:
          - {name: s, task: echo, inputs: {message: hi}}
    """)


@pytest.mark.parametrize("target", ["directory", "/dev/full"])
def test_output_to_a_directory_or_dev_full_is_refused_before_the_run(tmp_path: Path, target: str) -> None:
    output = str(tmp_path) if target == "directory" else target
    wf = _tiny_workflow(tmp_path)
    for command in ("run", "submit"):
        argv = [command, str(wf), "--output", output, "--base-dir", str(tmp_path / "runs")]
        result = run_measured(argv, cwd=tmp_path)
        assert_refused(result, "--output")
    assert not (tmp_path / "runs").exists(), "a step ran"


@pytest.mark.redis
@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "0", "-inf", "soon"])
def test_submit_wait_timeout_must_be_a_positive_number_and_nothing_is_enqueued(
    tmp_path: Path, redis_server: RedisServer, timeout: str
) -> None:
    import redis

    prefix = f"ywfto{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "YAML_WORKFLOW_BROKER_URL": redis_server.url,
           "YAML_WORKFLOW_STATE_URL": redis_server.url, "YAML_WORKFLOW_KEY_PREFIX": prefix}
    client = redis.Redis.from_url(redis_server.url)
    before = client.llen("celery")
    wf = _tiny_workflow(tmp_path)
    result = run_measured(["submit", str(wf), "--wait", "--timeout", timeout,
                           "--base-dir", str(tmp_path / "runs")], cwd=tmp_path, env=env)
    assert_refused(result, "--timeout")
    assert client.llen("celery") == before, "a message was enqueued"
    assert not list(client.scan_iter(match=f"{prefix}:*")), "a run was created"
    assert not (tmp_path / "runs").exists()
    client.close()


# --- control characters in values reach the terminal escaped --------------------------------

ESCAPES = "\x1b]0;pwned-title\x07\x1b[2J\x1b[31mred\u202eevil\x9b"


def test_escape_sequences_in_values_are_shown_not_obeyed(tmp_path: Path) -> None:
    wf = write(tmp_path / "wf.yaml", """
        params:
          x: {type: string}
          n: {type: integer, default: 1}
        steps:
          - {name: boom, task: fail, inputs: {message: "failed with {{ args.x }}"}}
    """)
    failed = run_measured(["run", str(wf), f"x={ESCAPES}", "--base-dir", str(tmp_path / "runs")], cwd=tmp_path)
    assert failed.code == 1, failed.describe()
    refused = run_measured(["run", str(wf), f"n={ESCAPES}", "--base-dir", str(tmp_path / "r2")], cwd=tmp_path)
    assert_refused(refused, "parameter 'n'")
    bad_flag = run_measured(["run", str(wf), "--flow", ESCAPES], cwd=tmp_path)
    assert bad_flag.code == 2, bad_flag.describe()
    for result in (failed, refused, bad_flag):
        for char in ("\x1b", "\x07", "\u202e", "\x9b"):
            assert char not in result.err, (char, result.err)
    fail_line = next(line for line in failed.err.splitlines() if "FAIL" in line)
    assert "\\x1b]0;pwned-title\\x07" in fail_line and "\\u202e" in fail_line, fail_line
    assert "\\x1b" in refused.err or "not shown" in refused.err or "..." in refused.err
