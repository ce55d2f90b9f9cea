"""Fuzzing the loader and the command line: bad input is one line and exit 2, never a traceback.

Three generators, all run in-process through ``run_cli`` from a scratch directory:

- workflow files: the bundled examples (and a safe echo/noop/fail workflow) mutated line by
  line — lines deleted, duplicated, swapped, re-indented (tabs too), scalars replaced by
  text full of ``{{``, ``{%``, ``:``, ``- ``, tabs, YAML tags and unicode, random keys
  inserted — plus generated documents with wrong types everywhere, plus plain noise; fed
  to ``validate`` and ``run --dry-run``;
- the mutated safe workflow, when it still loads and cannot wait long, is also *run*;
- random ``k=v`` params and flag lists (real and bogus flags) on a fixed safe workflow.

Invariants: the exit code is 0, 1 or 2; never ``Traceback`` nor ``internal error``; exit 2
prints exactly one line on stderr, starting with ``error:``, and changes no file; exit 1
only when a step failed (the result names it and the state file records it); nothing is
written outside the scratch directory.  Seeds are fixed and printed; ``make soak`` runs
the ``soak`` variants with many more examples.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, seed, settings
from hypothesis import strategies as st

import yaml_workflow
from tests.support.cli import Outcome, cli
from yaml_workflow.engine.load import load_workflow
from yaml_workflow.exceptions import WorkflowError
from yaml_workflow.spec.models import STEP_KEYS, TOP_LEVEL_KEYS
from yaml_workflow.state.mirror import STATE_FILE

SEED = 8_2026
_ANNOUNCED: set[int] = set()


def announce(value: int) -> None:
    """Print the fixed Hypothesis seed once (shown with -s, and in the output of a failure)."""
    if value not in _ANNOUNCED:
        _ANNOUNCED.add(value)
        print(f"hypothesis seed {value}")


EXAMPLES = {p.name: p.read_text(encoding="utf-8")
            for p in sorted((Path(yaml_workflow.__file__).parent / "examples").glob("*.yaml"))}

# Only tasks that touch nothing: a mutated copy of this may be run for real.
SAFE = textwrap.dedent("""
    name: safe
    description: echo, noop and fail only
    params:
      who: {type: string, default: World}
      n: {type: integer, default: 2}
      loud: {type: boolean, default: false}
    settings:
      max_parallel: 2
    flows:
      default: main
      definitions:
        - main: [hello, count, maybe, jump, skipped, last]
        - short: [hello, last]
    steps:
      - name: hello
        task: echo
        inputs: {message: "Hello {{ args.who }}"}
      - name: count
        task: echo
        condition: "{{ args.n > 1 }}"
        inputs:
          message: "{% for i in range(args.n) %}{{ i }}{% endfor %}"
      - name: maybe
        task: fail
        condition: "{{ args.loud }}"
        retry: {max_attempts: 2, delay: 0.01, on_error: [FailTaskError]}
        inputs: {message: "loud failure for {{ args.who }}"}
      - name: jump
        task: fail
        on_error:
          action: next
          next: last
          message: "{{ error.step }} said {{ error.message }}"
        inputs: {message: planned}
      - name: skipped
        task: noop
        inputs: {never: true}
      - name: last
        task: noop
        inputs:
          who: "{{ args.who }}"
          hello: "{{ steps.hello.result }}"
""").lstrip()
SAFE_TASKS = {"echo", "noop", "fail"}

PARAMS_WF = textwrap.dedent("""
    name: fuzz_params
    params:
      who: {type: string, default: World, min_length: 1}
      count: {type: integer, default: 2}
      ratio: {type: number, default: 0.5}
      explode: {type: boolean, default: false}
      tags: {type: list, default: [a, b]}
      opts: {type: object, default: {k: 1}}
      level: {type: string, default: low, allowed_values: [low, high]}
      token: {required: true, description: any text}
    flows:
      default: main
      definitions:
        - main: [greet, count_up, maybe_fail, finish]
        - short: [greet, finish]
    steps:
      - name: greet
        task: echo
        inputs: {message: "Hello {{ args.who }} {{ args.token }}"}
      - name: count_up
        task: echo
        inputs:
          message: "{{ args.count + 1 }} {{ args.ratio * 2 }} {{ args.tags | length }} {{ args.opts | tojson }} {{ args.level }}"
      - name: maybe_fail
        task: fail
        condition: "{{ args.explode }}"
        inputs: {message: "exploded on request"}
      - name: finish
        task: noop
        inputs: {done: true}
""").lstrip()


# --- running the CLI in-process ---------------------------------------------------------


def check(outcome: Outcome, allowed: tuple[int, ...] = (0, 1, 2)) -> None:
    """Exit code in ``allowed``; no traceback; a refusal is exactly one ``error:`` line."""
    text = outcome.out + outcome.err
    assert outcome.code in allowed, outcome
    assert "Traceback" not in text, outcome
    assert "internal error" not in text, outcome
    if outcome.code == 2:
        lines = outcome.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), outcome


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: what "nothing changed" compares."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory the fuzzed commands run in; the repository is checked to be untouched."""
    repo = Path.cwd()
    # What a stray command would leave where pytest runs (other files may change meanwhile).
    traces = ("runs", "PWNED", "workflows", STATE_FILE, ".ywf", "out.json", "afile")

    def left_in_repo() -> dict[str, Any]:
        return {name: tree(repo / name) if (repo / name).is_dir() else (repo / name).exists()
                for name in traces}

    before = left_in_repo()
    root = Path(tempfile.mkdtemp(prefix="ywf-fuzz-"))
    old = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(old)
        shutil.rmtree(root, ignore_errors=True)
    assert left_in_repo() == before, "a fuzzed command wrote outside its scratch dir"


@contextlib.contextmanager
def fresh_dir(root: Path, name: str) -> Iterator[Path]:
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- generators -----------------------------------------------------------------------------


def laughs(levels: int = 8) -> list[Any]:
    """A list holding one list 9 times, holding one list 9 times...: 9**levels leaves, and
    yaml.safe_dump writes it with anchors and aliases in a few hundred bytes."""
    node: list[Any] = ["lol"] * 9
    for _ in range(levels):
        node = [node] * 9
    return node


# An alias bomb as YAML text, and numbers past Python's int-to-text limit.
BOMB = yaml.safe_dump(laughs(), default_flow_style=True, width=10**6).strip()
HUGE_NUMBERS = ["9" * 5000, "-" + "1" * 5000, "1_" * 3000 + "1", "0x" + "f" * 5000, "1:" * 3000 + "1"]

TOKENS = [
    "{{", "}}", "{%", "%}", "{#", "#}", ":", ": ", "- ", "-", "\t", "#", "&a ", "*a", "!", "!!str ",
    "!!python/object/apply:os.system ['touch PWNED'] ", "|", ">", '"', "'", "[", "]", "{", "}", ",",
    "é", "☃", "𝔘", "\u2028", "\ufeff", "null", "~", "yes", "no", "1e309", "-1", "0x1F", ".inf",
    "args.who", "steps.", "__class__", "{{ args.who }}", "{{ ''.__class__.__mro__ }}",
    "{% for x in y %}", "{% endfor %}", "{{ 7*7 }", " ", "\n", "=", "%", "@", "`", "$(touch PWNED)",
    "<<: *a", "? ", "---", "...", "\\", "0", "3.5", "true", "task", "name", "steps", "echo",
    BOMB, "&a [*a]", *HUGE_NUMBERS,
]
NOISE = st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=8).map("".join)
KEYS = [*TOP_LEVEL_KEYS, *STEP_KEYS, "stpes", "task_type", "inputz", "on-error", "retries", "",
        "1", "null", "<<", "next", "action", "max_attempts", "default", "type", "definitions"]


@st.composite
def mutated(draw: st.DrawFn, bases: dict[str, str], most: int = 4) -> str:
    """One of ``bases`` with 1 to ``most`` line mutations."""
    lines = draw(st.sampled_from(sorted(bases.items())))[1].splitlines()
    for _ in range(draw(st.integers(1, most))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "scalar", "key", "noise"]))
        line = lines[i]
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            change = draw(st.sampled_from(["  ", " ", "    ", "\t", "-1", "-2", "-4", "all"]))
            if change == "all":
                lines[i] = line.lstrip()
            elif change.startswith("-"):
                cut = int(change[1:])
                lines[i] = line[cut:] if line[:cut].strip() == "" else line
            else:
                lines[i] = change + line
        elif op == "scalar":
            head, sep, _value = line.partition(": ")
            if not sep:
                head, sep, _value = line.partition("- ")
            lines[i] = (head + sep if sep else line[: len(line) // 2]) + draw(NOISE)
        elif op == "key":
            indent = draw(st.sampled_from(["", "  ", "    ", "      ", "\t"]))
            lines.insert(i, f"{indent}{draw(st.sampled_from(KEYS))}: {draw(NOISE)}")
        else:
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(NOISE) + line[at:]
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n\t"]))


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), NOISE,
    st.sampled_from(["echo", "shell", "noop", "fail", "nope", "a", "b", "continue", "next",
                     "retry", "{{ args.x }}", "{{ steps.a.result }}", "string", "integer", "list"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS) | NOISE, inner, max_size=3), max_leaves=8)
# Shared structures: yaml.safe_dump writes them with anchors and aliases.
VALUES = VALUES | st.integers(1, 9).map(laughs)


@st.composite
def structured(draw: st.DrawFn) -> str:
    """A document of the right outline with wrong types and names in it."""
    steps = []
    for index in range(draw(st.integers(0, 4))):
        step: dict[Any, Any] = {"name": draw(st.sampled_from(["a", "b", "c", f"s{index}"]) | SCALARS),
                                "task": draw(st.sampled_from(sorted(SAFE_TASKS)) | SCALARS)}
        for key in draw(st.lists(st.sampled_from(KEYS), max_size=4)):
            step[key] = draw(VALUES)
        steps.append(step)
    doc: dict[Any, Any] = {"steps": draw(st.just(steps) | VALUES)}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4)):
        doc[key] = draw(VALUES)
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:  # pragma: no cover - safe_dump takes all of these
        return "steps: []\n"


WORKFLOW_TEXT = st.one_of(mutated({**EXAMPLES, "safe.yaml": SAFE}), structured(), NOISE)

SETTINGS = dict(deadline=None, derandomize=False, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much, HealthCheck.data_too_large])


# --- 1. any text as a workflow file: validate and run --dry-run -----------------------------


def validate_and_dry_run(root: Path, text: str) -> Outcome:
    wf = root / "wf.yaml"
    wf.write_text(text, encoding="utf-8")
    base = root / "dry-base"
    shutil.rmtree(base, ignore_errors=True)
    before = tree(root)

    validated = cli("validate", str(wf))
    check(validated, (0, 2))
    as_json = cli("validate", str(wf), "--format", "json")
    assert as_json.code in (0, 2) and as_json.err == "", as_json  # the verdict is the document
    report = json.loads(as_json.out)
    assert report["valid"] is (as_json.code == 0) and (validated.code == as_json.code), (validated, as_json)

    dry = cli("run", str(wf), "--dry-run", "--base-dir", str(base), "--format",
              random.Random(len(text)).choice(["text", "json", "yaml"]))
    check(dry, (0, 2))
    if validated.code == 2:
        assert dry.code == 2, (validated, dry)  # the same loader refuses the same file
    assert not base.exists(), "a dry run wrote its base dir"
    assert tree(root) == before, "validate or a dry run changed a file"
    assert not (root / "PWNED").exists()
    return validated


@seed(SEED)
@settings(max_examples=150, **SETTINGS)  # type: ignore[arg-type]
@given(text=WORKFLOW_TEXT)
def test_any_workflow_text_is_valid_or_refused_in_one_line(scratch: Path, text: str) -> None:
    announce(SEED)
    event(f"validate exit {validate_and_dry_run(scratch, text).code}")


@pytest.mark.soak
@seed(SEED + 1)
@settings(max_examples=3000, **SETTINGS)  # type: ignore[arg-type]
@given(text=WORKFLOW_TEXT)
def test_soak_any_workflow_text(scratch: Path, text: str) -> None:
    announce(SEED + 1)
    validate_and_dry_run(scratch, text)


def test_the_bundled_examples_themselves_validate(scratch: Path) -> None:
    for name, text in {**EXAMPLES, "safe.yaml": SAFE}.items():
        assert validate_and_dry_run(scratch, text).code == 0, name


# --- 2. mutated safe workflows that still load are run for real -----------------------------


def runnable_quickly(path: Path) -> bool:
    """True when the workflow loads, uses only echo/noop/fail, and cannot wait long."""
    try:
        workflow = load_workflow(path)
    except WorkflowError:
        return False
    for step in workflow.steps:
        if step.task not in SAFE_TASKS:
            return False
        if step.retry is not None:
            waits = [step.retry.delay * step.retry.backoff ** n for n in range(step.retry.max_attempts - 1)]
            if step.retry.max_attempts > 5 or sum(min(w, step.retry.max_delay or w) for w in waits) > 1:
                return False
        if step.on_error is not None and (step.on_error.retry > 3 or step.on_error.delay > 0.2):
            return False
    return True


def run_for_real(root: Path, text: str, extra: list[str]) -> Outcome:
    wf = root / "run.yaml"
    wf.write_text(text, encoding="utf-8")
    with fresh_dir(root, "run-base") as base:
        before = tree(root)
        outcome = cli("run", str(wf), "--base-dir", str(base), "--format", "json", *extra)
        check(outcome)
        if outcome.code == 2:
            assert tree(root) == before, f"a refused run changed files: {outcome}"
            assert outcome.out == "", outcome
            return outcome
        result = json.loads(outcome.out)
        (workspace,) = base.iterdir()
        state = json.loads((workspace / STATE_FILE).read_text())
        if outcome.code == 1:
            failed = result["failed_step"]
            assert result["status"] == "failed" and failed, outcome
            assert state["execution_state"]["step_outputs"][failed]["status"] == "failed", outcome
        else:
            assert result["status"] == "success" and state["status"] == "completed", outcome
        return outcome


@seed(SEED)
@settings(max_examples=60, **SETTINGS)  # type: ignore[arg-type]
@given(text=mutated({"safe.yaml": SAFE}, most=2),
       extra=st.lists(st.sampled_from(["loud=true", "n=0", "n=5", "who={{x}}", "--flow=short"]), max_size=2))
def test_mutated_safe_workflows_run_with_exit_0_or_1_or_are_refused(
    scratch: Path, text: str, extra: list[str]
) -> None:
    announce(SEED)
    (scratch / "probe.yaml").write_text(text, encoding="utf-8")
    assume(runnable_quickly(scratch / "probe.yaml"))
    event(f"run exit {run_for_real(scratch, text, extra).code}")


def test_the_safe_workflow_runs_and_fails_on_request(scratch: Path) -> None:
    assert run_for_real(scratch, SAFE, []).code == 0
    assert run_for_real(scratch, SAFE, ["loud=true"]).code == 1
    assert run_for_real(scratch, SAFE, ["n=many"]).code == 2


# --- 3. random params and flags on a fixed safe workflow ------------------------------------

STEPS = ["greet", "count_up", "maybe_fail", "finish"]
PARAM_VALUES = st.one_of(
    NOISE, st.text(max_size=6),
    st.sampled_from(["1", "-5", "1.5", "1e3", "nan", "inf", "1_000", "99999999999999999999", "true",
                     "yes", "off", "[1,2]", "[", '{"a": 1}', "{a: [1", "a,b", "", " ", "high", "low",
                     "HIGH", "{{ 7*7 }}", "$(touch PWNED)", "`touch PWNED`", "x; touch PWNED"]),
    st.sampled_from([BOMB, "{a: " + BOMB + "}", "[&a [*a]]", "{a: &a {b: *a}}", *HUGE_NUMBERS,
                     "[" + HUGE_NUMBERS[0] + "]", "{n: " + HUGE_NUMBERS[0] + "}"]),
)
PARAM_NAMES = st.sampled_from(["who", "count", "ratio", "explode", "tags", "opts", "level", "token",
                               "undeclared", "ünï", "a b", "", "-", "=", "x=y"])
VALUE_FLAGS = ["--flow", "--start-from", "--skip-steps", "--from-step", "--format", "--output",
               "--workspace", "--base-dir"]
SWITCHES = ["--resume", "--override-params", "--force", "--dry-run", "--quiet", "-q", "--nope",
            "-x", "--", "-", "--debug", "--format=xml", "--flow=", "--resume=1", "--base-dir"]


GOOD_VALUES = {
    "who": st.text(min_size=1, max_size=8) | st.sampled_from(["{{ 7*7 }}", "$(touch PWNED)", "a; b"]),
    "count": st.integers(-3, 50).map(str), "ratio": st.sampled_from(["0", "1.5", "-2", "1e3"]),
    "explode": st.sampled_from(["true", "false", "yes", "no", "0", "1"]),
    "tags": st.sampled_from(["[]", "[1, 2]", "a,b", "x"]), "opts": st.sampled_from(["{}", '{"a": [1]}']),
    "level": st.sampled_from(["low", "high"]), "token": st.text(max_size=8),
}


@st.composite
def command_line(draw: st.DrawFn, root: Path) -> list[str]:
    """``run WF`` followed by shuffled params, flags and values (half the time nonsense)."""
    paths = [str(root / "p-base"), str(root / "p-ws"), str(root / "afile"), str(root / "out.json"),
             str(root / "missing" / "out.json"), "", "."]
    values = {
        "--flow": st.sampled_from(["main", "short", "all", "nope", ""]),
        "--start-from": st.sampled_from([*STEPS, "nope"]),
        "--from-step": st.sampled_from([*STEPS, "nope"]),
        "--skip-steps": st.sampled_from(["greet", "maybe_fail,finish", "nope", ",", ""]),
        "--format": st.sampled_from(["text", "json", "yaml", "xml"]),
    }
    sane = draw(st.booleans())
    parts: list[list[str]] = []
    if sane or draw(st.booleans()):
        parts.append([f"token={draw(PARAM_VALUES)}"])
    for _ in range(draw(st.integers(0, 4))):
        if sane:
            name = draw(st.sampled_from(sorted(GOOD_VALUES)))
            parts.append([draw(st.sampled_from(["", "--"])) + f"{name}={draw(GOOD_VALUES[name])}"])
            continue
        name, value = draw(PARAM_NAMES), draw(PARAM_VALUES)
        parts.append([draw(st.sampled_from([f"{name}={value}", f"--{name}={value}", name, f"={value}"]))])
    flags = ["--flow", "--start-from", "--skip-steps", "--format", "--quiet"] if sane else VALUE_FLAGS + SWITCHES
    for flag in draw(st.lists(st.sampled_from(flags), max_size=4, unique=sane)):
        if flag in values:
            parts.append([flag, draw(values[flag].filter(lambda v: not sane or v not in ("nope", "xml", "")))])
        elif flag in VALUE_FLAGS:
            parts.append([flag, draw(st.sampled_from(paths))])
        else:
            parts.append([flag])
    parts = draw(st.permutations(parts))
    return ["run", str(root / "params.yaml"), *[token for part in parts for token in part]]


def run_command_line(root: Path, argv: list[str]) -> Outcome:
    before = tree(root)
    outcome = cli(*argv)
    check(outcome)
    assert not (root / "PWNED").exists(), outcome
    if outcome.code == 2:
        assert tree(root) == before, f"a refused command changed files: {outcome}"
    elif outcome.code == 1:
        # Only a failed step makes exit 1: the result line (text) or document (json/yaml) names it.
        assert "failed at step" in outcome.err or "failed_step: " in outcome.out or (
            '"failed_step": "' in outcome.out), outcome
    return outcome


@pytest.fixture(scope="module")
def params_root(scratch: Path) -> Path:
    root = scratch / "params"
    root.mkdir()
    (root / "params.yaml").write_text(PARAMS_WF, encoding="utf-8")
    (root / "afile").write_text("a plain file, not a directory\n")
    return root


@seed(SEED)
@settings(max_examples=80, **SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_random_params_and_flags_are_run_or_refused_in_one_line(
    params_root: Path, data: st.DataObject
) -> None:
    announce(SEED)
    event(f"exit {run_command_line(params_root, data.draw(command_line(params_root))).code}")


@pytest.mark.soak
@seed(SEED + 1)
@settings(max_examples=2000, **SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_soak_random_params_and_flags(params_root: Path, data: st.DataObject) -> None:
    announce(SEED + 1)
    run_command_line(params_root, data.draw(command_line(params_root)))


@pytest.mark.parametrize("argv", [
    ["token=t"],
    ["token=t", "explode=yes"],
    ["token=t", "count=two"],
    ["token=t", "level=HIGH"],
    ["token=t", "opts=[1"],
    ["token=t", "who="],
    ["count=1"],
    ["token=t", "--flow", "nope"],
    ["token=t", "--start-from", "nope"],
    ["token=t", "--from-step", "greet"],
    ["token=t", "--format", "xml"],
    ["token=t", "--output", "missing/out.json"],
    ["token=t", "--workspace", "afile"],
    ["token=t", "=v"],
    ["token=t", "-x"],
])
def test_named_command_lines(params_root: Path, argv: list[str]) -> None:
    expected = 0 if argv == ["token=t"] else 1 if "explode=yes" in argv else 2
    full = ["run", str(params_root / "params.yaml"),
            *[str(params_root / a) if a in ("missing/out.json", "afile") else a for a in argv]]
    outcome = run_command_line(params_root, full)
    assert outcome.code == expected, outcome


# --- what the fuzzing found (kept as plain regression tests) --------------------------------

FOUND = {
    "params is a scalar": "params: true\nsteps: []\n",
    "params is a list": "params: [a, b]\nsteps: []\n",
    "a step name with a carriage return": 'steps:\n  - name: "a\\rb"\n',
    "a line separator in a key": "steps: []\n\"na\u2028me\": x\n",
    "nesting deeper than the parser's stack": "steps:\n  - name: a\n    task: echo\n    inputs:\n      message: "
    + "[" * 400 + "]" * 400 + "\n",
    "nesting past libyaml's limit": "steps: " + "[" * 5000 + "]" * 5000 + "\n",
    "a python tag": "steps: !!python/object/apply:os.system ['touch PWNED']\n",
}


@pytest.mark.parametrize("case", list(FOUND))
def test_found_workflow_files_are_refused_in_one_line(scratch: Path, case: str) -> None:
    assert validate_and_dry_run(scratch, FOUND[case]).code == 2


def test_an_env_template_that_fails_refuses_the_run_before_its_workspace(scratch: Path) -> None:
    # It used to exit 1 ("a step failed") with no step run and an empty workspace left behind.
    wf = scratch / "env.yaml"
    wf.write_text('env:\n  X: "{{ args.nope }}"\nsteps:\n  - {name: a, task: echo}\n', encoding="utf-8")
    base = scratch / "env-runs"
    outcome = cli("run", str(wf), "--base-dir", str(base))
    check(outcome, (2,))
    assert "env" in outcome.err and "args.nope" in outcome.err
    assert not base.exists()
    assert cli("run", str(wf), "--base-dir", str(base), "nope=1", "-q").code == 0


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_example_previews_in_every_format(scratch: Path, fmt: str) -> None:
    # `run --dry-run --format yaml` could not write the inputs of a step as written (a
    # dict subclass from the loader): an internal error on the bundled data_pipeline.
    for name, text in EXAMPLES.items():
        wf = scratch / name
        wf.write_text(text, encoding="utf-8")
        outcome = cli("run", str(wf), "--dry-run", "--format", fmt, "--base-dir", str(scratch / "none"))
        check(outcome, (0,))
        document = json.loads(outcome.out) if fmt == "json" else yaml.safe_load(outcome.out)
        assert document["dry_run"] is True and document["steps"], name


def test_a_deeply_nested_param_value_is_refused_in_one_line(scratch: Path) -> None:
    (scratch / "deep.yaml").write_text("params:\n  l: {type: list}\nsteps:\n  - {name: a, task: noop}\n")
    outcome = cli("run", str(scratch / "deep.yaml"), "l=" + "[" * 100000 + "]" * 100000, "--dry-run")
    check(outcome, (2,))
    assert "parameter 'l'" in outcome.err


# --- 4. secrets of every shape: masked in every form, or refused when too short -------------

SECRET_WF = textwrap.dedent("""
    name: fuzz_secret
    secrets: [YWF_FUZZ_SECRET]
    params:
      given: {type: string, default: none}
    steps:
      - name: forms
        task: python_code
        inputs:
          code: |
            import json
            s = env["YWF_FUZZ_SECRET"]
            result = {s: [s, json.dumps(s), json.dumps({"k": s}), repr({"k": s}), "x" + s + "y"],
                      "given": args["given"] == s}
            if s.isdigit():
                result["number"] = int(s)
      - name: templated
        task: echo
        inputs: {message: "{{ env.YWF_FUZZ_SECRET | tojson }} {{ env.YWF_FUZZ_SECRET | shquote }}"}
      - name: fails
        task: fail
        on_error: continue
        inputs: {message: "refused {{ env.YWF_FUZZ_SECRET }}"}
""").lstrip()

# Quotes, backslashes, unicode, controls, digits: the characters serialisers escape.
SECRET_PIECES = st.text(alphabet=st.sampled_from(list("\"'\\/{}[]:,$`\t ") + ["é", "☃", "𝔘", "\u2028", "\x1b", "%"])
                        | st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
# Each long secret ends with random letters and digits, so that it cannot also be a piece
# of the JSON structure or of our own fields; numbers are 12+ digits (no pid or time has them).
LONG_SECRETS = st.builds(lambda piece, tail: piece + tail, SECRET_PIECES,
                         st.text(alphabet="ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789", min_size=6, max_size=10))
NUMERIC_SECRETS = st.integers(900_000_000_000, 999_999_999_999_999).map(str)
SHORT_SECRETS = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        min_size=1, max_size=5)


def run_with_secret(root: Path, secret: str) -> None:
    import shlex

    wf = root / "secret.yaml"
    wf.write_text(SECRET_WF, encoding="utf-8")
    with fresh_dir(root, "secret-base") as base:
        saved = os.environ.get("YWF_FUZZ_SECRET")
        os.environ["YWF_FUZZ_SECRET"] = secret
        try:
            outcome = cli("run", str(wf), "--base-dir", str(base), "--format", "json", f"given={secret}")
        finally:
            if saved is None:
                del os.environ["YWF_FUZZ_SECRET"]
            else:
                os.environ["YWF_FUZZ_SECRET"] = saved
        if len(secret) < 6:
            check(outcome, (2,))
            assert "YWF_FUZZ_SECRET" in outcome.err and not any(base.iterdir())
            return
        check(outcome, (0,))
        result = json.loads(outcome.out)
        assert result["outputs"]["forms"]["given"] is True  # the step had the real value
        texts = {"stdout": outcome.out, "stderr": outcome.err}
        for path in base.rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
        forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                 repr(secret)[1:-1], shlex.quote(secret)}
        leaks = [(where, form) for where, text in texts.items() for form in forms if form in text]
        assert not leaks, (secret, leaks)


@seed(SEED)
@settings(max_examples=30, **SETTINGS)  # type: ignore[arg-type]
@given(secret=st.one_of(LONG_SECRETS, NUMERIC_SECRETS, SHORT_SECRETS))
def test_any_secret_is_masked_in_every_form_or_refused_when_short(scratch: Path, secret: str) -> None:
    announce(SEED)
    event("short" if len(secret) < 6 else "numeric" if secret.isdigit() else "text")
    run_with_secret(scratch, secret)


@pytest.mark.soak
@seed(SEED + 1)
@settings(max_examples=500, **SETTINGS)  # type: ignore[arg-type]
@given(secret=st.one_of(LONG_SECRETS, NUMERIC_SECRETS, SHORT_SECRETS))
def test_soak_any_secret(scratch: Path, secret: str) -> None:
    announce(SEED + 1)
    run_with_secret(scratch, secret)
