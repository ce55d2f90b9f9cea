"""A damaged state file is refused by name, exit 2, untouched, and nothing runs from it.

The file under test is the ``.workflow_metadata.json`` of a real failed run.  Each
example damages it — a truncation, byte flips, insertions or deletions, or a hand edit
of one field — and runs ``status WS`` and ``run --resume --workspace WS`` in-process.
The journal is removed first, so the snapshot alone is what is read.

The oracle (``structure_problem``) is written from the documented structure of the file
(DIALECT.md, "Runs, state and resume"), independently of the reader's own checks:

- every command, whatever the file holds: exit 0, 1 or 2, never a traceback nor an
  internal error; exit 2 means one ``error:`` line on stderr, the file's bytes unchanged
  and no step run (the witness file the steps append to did not grow);
- when the damaged document is not valid JSON of that structure: exit 2 and the line
  names the file.  A document that is still valid may legitimately be shown or resumed;
  the example is then discarded with ``assume`` after the first invariants held.

Seeds are fixed (printed by each test); ``make soak`` runs the 1000-example variants.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.support.cli import Outcome, cli
from tests.support.rounds import rounds
from yaml_workflow.engine.load import load_workflow
from yaml_workflow.engine.request import RunRequest
from yaml_workflow.executors.local_run import start_run
from yaml_workflow.spec.models import Workflow
from yaml_workflow.state.mirror import JOURNAL_DIR, STATE_FILE

SEED = 20251127
RUN_STATUSES = ("running", "completed", "failed", "cancelled")
STEP_STATUSES = ("pending", "running", "retrying", "completed", "failed", "skipped")

# first and second complete; boom fails (the run's failure); after never ran.  Every
# shell step appends to witness.txt, so a step that runs from a damaged file shows.
WORKFLOW = """
params:
  who: {type: string, default: World}
steps:
  - name: first
    task: shell
    inputs: {command: 'echo first >> witness.txt'}
  - name: second
    task: echo
    inputs: {message: "hi {{ args.who }}"}
  - name: boom
    task: shell
    inputs: {command: 'echo boom >> witness.txt; exit 3'}
  - name: after
    task: shell
    inputs: {command: 'echo after >> witness.txt'}
"""


# --- the failed run every example starts from --------------------------------------------


@dataclass(repr=False)
class FailedRun:
    """A workspace holding a failed run, kept pristine; ``fresh()`` makes a working copy."""

    root: Path
    workflow_file: Path
    workspace: Path  # where the run was made and where every copy goes (paths inside match)
    pristine: Path
    state: bytes  # the pristine state file
    journal: list[bytes]  # the pristine journal lines (header first)

    def __repr__(self) -> str:
        return f"FailedRun({self.workspace})"

    def fresh(self, *, journal: bool = False) -> Path:
        """A new copy of the failed run's workspace at its original path."""
        shutil.rmtree(self.workspace, ignore_errors=True)
        shutil.copytree(self.pristine, self.workspace, symlinks=True)
        if not journal:
            shutil.rmtree(self.workspace / JOURNAL_DIR, ignore_errors=True)
        return self.workspace


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> FailedRun:
    root = tmp_path_factory.mktemp("state-prop")
    workflow_file = root / "wf.yaml"
    workflow_file.write_text(textwrap.dedent(WORKFLOW).lstrip(), encoding="utf-8")
    workspace = root / "ws"
    result = start_run(RunRequest(workflow=load_workflow(workflow_file), workspace=workspace))
    assert result.status == "failed" and result.failed_step == "boom"
    (journal_file,) = (workspace / JOURNAL_DIR).iterdir()
    journal = journal_file.read_bytes().splitlines(keepends=True)
    assert len(journal) >= 6
    pristine = root / "pristine"
    shutil.copytree(workspace, pristine, symlinks=True)
    state = (workspace / STATE_FILE).read_bytes()
    assert structure_problem(state) is None and workflow_problem(json.loads(state)) is None
    return FailedRun(root, workflow_file, workspace, pristine, state, journal)


# --- the oracle: the documented structure, checked independently of the reader ----------


def _iso(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _num(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _obj(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _names(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


TOP: dict[str, Callable[[Any], bool]] = {
    "name": _str, "workflow_file": _str, "workspace": _str, "mode": _str,
    "start_time": _iso, "last_updated": _iso, "run_number": _int,
    "params": _obj, "env": _obj, "workflow": _obj,
    "variables": lambda v: isinstance(v, dict), "flags": lambda v: isinstance(v, dict),
    "fingerprints": lambda v: isinstance(v, dict) and all(_str(x) for x in v.values()),
    "history": lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
    "status": lambda v: v in RUN_STATUSES,
}
RECORD: dict[str, Callable[[Any], bool]] = {
    "status": lambda v: v in STEP_STATUSES,
    "attempt": _int, "pid": _int, "duration": _num, "started_at": _num, "finished_at": _num,
    "error": _str, "error_type": _str, "error_message": _str, "reason": _str,
    "fingerprint": _str, "host": _str, "resources": _obj,
    "items": lambda v: _obj(v) and all(isinstance(x, dict) for x in (v or {}).values()),
}


def _bad(checks: dict[str, Callable[[Any], bool]], mapping: dict[str, Any]) -> str | None:
    return next((key for key, ok in checks.items() if key in mapping and not ok(mapping[key])), None)


def structure_problem(raw: bytes) -> str | None:
    """Why ``raw`` is not a state document of the documented structure (None: it is one)."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not JSON"
    if not isinstance(doc, dict):
        return "not an object"
    if doc.get("schema_version", 1) != 1:
        return "schema_version"
    if not isinstance(doc.get("workflow_id"), str) or not doc["workflow_id"]:
        return "workflow_id"
    if _bad(TOP, doc):
        return str(_bad(TOP, doc))
    state = doc.get("execution_state")
    if not isinstance(state, dict):
        return "execution_state"
    if "status" in state and state["status"] not in RUN_STATUSES:
        return "execution_state.status"
    if not _str(state.get("current_step")):
        return "current_step"
    failed = state.get("failed_step")
    if failed is not None and not (isinstance(failed, dict) and all(
            _str(failed.get(k)) for k in ("step_name", "error", "failed_at"))):
        return "failed_step"
    outputs = state.get("step_outputs")
    if not isinstance(outputs, dict):
        return "step_outputs"
    for record in outputs.values():
        if not isinstance(record, dict) or _bad(RECORD, record):
            return "a step record"
    retry = state.get("retry_state")
    if not isinstance(retry, dict) or not all(isinstance(v, dict) for v in retry.values()):
        return "retry_state"
    plan = doc.get("plan")
    if plan is not None and not (isinstance(plan, dict) and _names(plan.get("order"))
                                 and _obj(plan.get("skipped")) and _obj(plan.get("deps"))
                                 and all(_names(v) for v in (plan.get("deps") or {}).values())):
        return "plan"
    options = doc.get("options")
    if options is not None and not (isinstance(options, dict) and _str(options.get("flow"))
                                    and _str(options.get("start_from"))
                                    and _names(options.get("skip_steps"))):
        return "options"
    mirror = doc.get("mirror")
    if mirror is not None and not (isinstance(mirror, dict) and isinstance(mirror.get("offsets"), dict)
                                   and all(_int(v) and v is not None and v >= 0
                                           for v in mirror["offsets"].values())):
        return "mirror"
    return None


def workflow_problem(doc: dict[str, Any]) -> str | None:
    """Why the workflow a run stored with itself cannot be run (resume without the file)."""
    try:
        workflow = Workflow.model_validate(doc.get("workflow"))
    except ValidationError:
        return "workflow"
    return None if len(set(workflow.step_names)) == len(workflow.step_names) else "duplicate steps"


# --- running the CLI in-process -------------------------------------------------------


def witness_size(workspace: Path) -> int:
    path = workspace / "witness.txt"
    return path.stat().st_size if path.exists() else 0


def check_command(outcome: Outcome, *, state: Path, before: bytes | None, witness: int,
                  workspace: Path) -> None:
    """What holds for any command on any state file."""
    text = outcome.out + outcome.err
    assert outcome.code in (0, 1, 2), outcome
    assert "Traceback" not in text, outcome
    assert "internal error" not in text, outcome
    if outcome.code == 2:
        lines = outcome.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), outcome
        assert witness_size(workspace) == witness, f"a step ran although refused: {outcome}"
        after = state.read_bytes() if state.exists() else None
        assert after == before, f"the state file changed although refused: {outcome}"


def exercise(run: FailedRun, damaged: bytes, *, with_file: bool = False, discard: bool = True) -> None:
    """status and run --resume on a workspace whose state file holds ``damaged``."""
    workspace = run.fresh()
    state = workspace / STATE_FILE
    state.write_bytes(damaged)
    witness = witness_size(workspace)
    problem = structure_problem(damaged)
    if problem is None and not with_file:
        problem = workflow_problem(json.loads(damaged))

    status = cli("status", str(workspace))
    check_command(status, state=state, before=damaged, witness=witness, workspace=workspace)
    if structure_problem(damaged) is not None:
        assert status.code == 2, status
        assert str(state) in status.err, status

    resume_argv = ["run", "--resume", "--workspace", str(workspace)]
    if with_file:
        resume_argv.insert(1, str(run.workflow_file))
    resume = cli(*resume_argv)
    check_command(resume, state=state, before=damaged, witness=witness, workspace=workspace)
    if problem is not None:
        assert resume.code == 2, (problem, resume)
        assert str(state) in resume.err, (problem, resume)
    if discard:
        assume(problem is not None)  # a document still valid may be resumed: nothing more to check


# --- damage -------------------------------------------------------------------------------

FLIP_BYTES = st.sampled_from(list(b'{}[]":,\\ \n0123456789aefnlrstuxz-.\x00\xff\xc3'))


@st.composite
def byte_damage(draw: st.DrawFn, original: bytes) -> bytes:
    """1-4 flips, insertions or deletions at any offsets (sometimes after a truncation)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "bitflip", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(FLIP_BYTES)
        elif kind == "bitflip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = bytes([draw(FLIP_BYTES)])
        elif data:
            del data[at]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**12), st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["completed", "failed", "running", "skipped", "pending", "garbage",
                     "2026-13-45T99:99:99Z", "", "{{ 7*7 }}", "../../etc/passwd"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def hand_edit(draw: st.DrawFn, original: bytes) -> bytes:
    """One field (anywhere in the tree) deleted, or replaced by a value of any type."""
    doc = json.loads(original)
    paths = [p for p in _paths(doc) if p]
    path = draw(st.sampled_from(paths))
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return json.dumps(doc, indent=draw(st.sampled_from([None, 2]))).encode()


_ANNOUNCED: set[int] = set()


def announce(value: int) -> None:
    """Print the fixed Hypothesis seed once per session (shown with -s or on failure)."""
    if value not in _ANNOUNCED:
        _ANNOUNCED.add(value)
        print(f"hypothesis seed {value}")


SETTINGS = dict(deadline=None, derandomize=False, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])


# --- the property tests ---------------------------------------------------------------------


def test_every_truncation_of_the_file_is_refused_untouched(failed_run: FailedRun) -> None:
    # Every 97th offset plus both ends and the last few bytes: ~60 truncations, all refused.
    size = len(failed_run.state)
    offsets = sorted({0, 1, 2, size - 3, size - 2, size - 1, *range(0, size, max(1, size // 60))})
    for offset in offsets:
        damaged = failed_run.state[:offset]
        assert structure_problem(damaged) is not None
        try:
            exercise(failed_run, damaged, discard=False)
        except Exception as err:
            raise AssertionError(f"truncation at byte {offset} of {size}") from err


@seed(SEED)
@settings(max_examples=60, **SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_byte_damage_is_refused_by_name_and_nothing_runs(failed_run: FailedRun, data: st.DataObject) -> None:
    announce(SEED)
    exercise(failed_run, data.draw(byte_damage(failed_run.state)))


@seed(SEED)
@settings(max_examples=rounds(20, 60), **SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_hand_edits_are_refused_by_name_or_run_as_edited(failed_run: FailedRun, data: st.DataObject) -> None:
    announce(SEED)
    exercise(failed_run, data.draw(hand_edit(failed_run.state)), with_file=data.draw(st.booleans()))


@pytest.mark.soak
@seed(SEED + 1)
@settings(max_examples=1000, **SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_soak_damage_of_every_kind(failed_run: FailedRun, data: st.DataObject) -> None:
    announce(SEED + 1)
    damage = data.draw(st.sampled_from([byte_damage, hand_edit]))
    exercise(failed_run, data.draw(damage(failed_run.state)), with_file=data.draw(st.booleans()))


# --- the hand edits the issue names ---------------------------------------------------------


def _edited(original: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(original)
    change(doc)
    return json.dumps(doc, indent=2).encode()


HAND_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "execution_state is a string": lambda d: d.update(execution_state="failed"),
    "execution_state is a list": lambda d: d.update(execution_state=[]),
    "step_outputs is a list": lambda d: d["execution_state"].update(step_outputs=[]),
    "a step record is a string": lambda d: d["execution_state"]["step_outputs"].update(first="ok"),
    "a step status is unknown": lambda d: d["execution_state"]["step_outputs"]["first"].update(status="done"),
    "schema_version 99": lambda d: d.update(schema_version=99),
    "missing workflow_id": lambda d: d.pop("workflow_id"),
    "workflow_id is a number": lambda d: d.update(workflow_id=7),
    "run status unknown": lambda d: d.update(status="paused"),
    "failed_step is a string": lambda d: d["execution_state"].update(failed_step="boom"),
    "retry_state is a list": lambda d: d["execution_state"].update(retry_state=[]),
    "history holds a number": lambda d: d.update(history=[1]),
    "plan order is a string": lambda d: d.update(plan={"order": "first"}),
    "start_time is not a time": lambda d: d.update(start_time="yesterday"),
    "attempt is a string": lambda d: d["execution_state"]["step_outputs"]["boom"].update(attempt="2"),
    "mirror offsets are text": lambda d: d.update(mirror={"offsets": "x"}),
    "stored workflow lost its steps' names": lambda d: [s.pop("name") for s in d["workflow"]["steps"]],
    "stored workflow is a list": lambda d: d.update(workflow=[]),
    "stored workflow names an unknown task": lambda d: d["workflow"]["steps"][2].update(task="nope"),
    "the top level is a list": lambda d: None,
}


@pytest.mark.parametrize("edit", list(HAND_EDITS))
def test_named_hand_edits_are_refused_by_name(failed_run: FailedRun, edit: str) -> None:
    damaged = b"[1, 2]" if edit == "the top level is a list" else _edited(failed_run.state, HAND_EDITS[edit])
    workspace = failed_run.fresh()
    state = workspace / STATE_FILE
    state.write_bytes(damaged)
    witness = witness_size(workspace)
    commands = [("run", "--resume", "--workspace", str(workspace))]
    if not edit.startswith("stored workflow"):  # status shows the state; the workflow copy is not used
        commands.append(("status", str(workspace)))
        commands.append(("run", str(failed_run.workflow_file), "--resume", "--workspace", str(workspace)))
    for argv in commands:
        outcome = cli(*argv)
        check_command(outcome, state=state, before=damaged, witness=witness, workspace=workspace)
        assert outcome.code == 2, (argv, outcome)
        assert str(state) in outcome.err, (argv, outcome)


def test_the_pristine_run_resumes_and_runs_the_failed_step_again(failed_run: FailedRun) -> None:
    # The control case: the same copy, undamaged, resumes (boom fails again: exit 1).
    workspace = failed_run.fresh()
    before = witness_size(workspace)
    outcome = cli("run", "--resume", "--workspace", str(workspace), "-q")
    assert outcome.code == 1, outcome
    assert witness_size(workspace) > before
    assert cli("status", str(workspace)).code == 0
    # The pristine copy next to it (same run id, same root) was neither read nor written:
    # resume --workspace WS records into WS, not into whichever copy the run id finds first.
    assert (failed_run.pristine / STATE_FILE).read_bytes() == failed_run.state
    assert witness_size(failed_run.pristine) == len(b"first\nboom\n")
    assert "resume" in (workspace / STATE_FILE).read_text()


def test_a_damaged_file_through_the_real_command_line(failed_run: FailedRun) -> None:
    workspace = failed_run.fresh()
    state = workspace / STATE_FILE
    damaged = failed_run.state[: len(failed_run.state) // 2]
    state.write_bytes(damaged)
    environ = {k: v for k, v in os.environ.items() if k != "YAML_WORKFLOW_STATE_URL"}
    for argv in (["run", "--resume", "--workspace", str(workspace)], ["status", str(workspace)]):
        proc = subprocess.run([sys.executable, "-m", "yaml_workflow", *argv], cwd=failed_run.root,
                              env=environ, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc
        assert "Traceback" not in proc.stdout + proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith("error: ") and str(state) in line
        assert "truncated or corrupted" in line
    assert state.read_bytes() == damaged
    assert witness_size(workspace) == len(b"first\nboom\n")


# --- a damaged journal (no snapshot: the journal alone is the state) -------------------------

JOURNAL_JUNK = [
    b"[1, 2]\n", b"42\n", b"null\n", b'"step"\n', b"{}\n", b'{"t": 5}\n',
    b'{"t": "step"}\n', b'{"t": "step", "step": "boom", "status": "exploded"}\n',
    b'{"t": "step", "step": ["boom"], "status": "failed"}\n',
    b'{"t": "status", "status": "failed", "at": "yesterday"}\n',
    b'{"t": "status"}\n', b'{"t": "items", "step": "boom", "items": [1]}\n',
    b'{"t": "reset", "steps": "boom"}\n', b'{"t": "var", "key": {"k": 1}, "value": 1}\n',
    b'{"t": "history", "entry": 3}\n', b'{"t": "params", "params": [1]}\n',
    b'{"t": "step", "step": "first", "status": "completed", "attempt": "x"}\n',
    b'{"t": "run"}\n', b'{"t": "run", "workflow_id": 12}\n',
    b"\xff\xfe not even text\n", b'{"t": "step", "step": "first", "status": "complet\n',
]


def exercise_journal(run: FailedRun, lines: list[bytes]) -> None:
    workspace = run.fresh(journal=True)
    (workspace / STATE_FILE).unlink()
    (journal,) = (workspace / JOURNAL_DIR).iterdir()
    journal.write_bytes(b"".join(lines))
    witness = witness_size(workspace)
    for argv in (("status", str(workspace)), ("run", "--resume", "--workspace", str(workspace), "-q")):
        outcome = cli(*argv)
        assert outcome.code in (0, 1, 2), outcome
        text = outcome.out + outcome.err
        assert "Traceback" not in text and "internal error" not in text, outcome
        if outcome.code == 2:
            (line,) = outcome.err.strip().splitlines()
            assert line.startswith("error: ")
            assert witness_size(workspace) == witness
            assert journal.read_bytes() == b"".join(lines)


@pytest.mark.parametrize("junk", JOURNAL_JUNK, ids=[j[:30].decode(errors="replace") for j in JOURNAL_JUNK])
def test_a_junk_line_in_the_middle_of_the_journal_is_skipped_or_refused(
    failed_run: FailedRun, junk: bytes
) -> None:
    lines = list(failed_run.journal)
    middle = len(lines) // 2
    exercise_journal(failed_run, [*lines[:middle], junk, *lines[middle + 1:]])


@seed(SEED)
@settings(max_examples=40, **SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_byte_damage_in_a_middle_journal_line_never_crashes(failed_run: FailedRun, data: st.DataObject) -> None:
    announce(SEED)
    lines = list(failed_run.journal)
    index = data.draw(st.integers(0, len(lines) - 2), label="line")  # never the last line
    line = bytearray(lines[index])
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(line) - 2))  # keep the newline: a middle line stays one
        line[at] = data.draw(FLIP_BYTES.filter(lambda b: b != ord("\n")))
    lines[index] = bytes(line)
    exercise_journal(failed_run, lines)
