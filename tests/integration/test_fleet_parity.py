"""`submit --wait` on two real workers prints what `run` prints: the whole `--format json` document.

Every workflow here — a few written for this file, every example in examples/, and every
run of the acceptance sample (../shared/acceptance/cases) — runs once through each
executor, each in a directory of its own, and the two documents must be equal except for
the fields listed in :data:`MUST_DIFFER`.  One fleet serves the whole module.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.workers import Fleet

pytestmark = [pytest.mark.celery, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# The fields that must differ between two runs of one file, whoever runs them; they are
# dropped wherever they appear in the document (outputs included).  Nothing else is.
MUST_DIFFER = {
    "run_id": "a new id per run",
    "workspace": "each run has its own workspace (its path is replaced where it is quoted)",
    "host": "the machine or worker that ran a step",
    "hosts": "the same, for a run",
    "start_time": "when it ran",
    "started_at": "when it ran",
    "finished_at": "when it ran",
    "last_updated": "when it ran",
    "duration": "how long it took (a batch's stats.duration too)",
}


def normalize(value: Any, places: dict[str, str]) -> Any:
    """The document without :data:`MUST_DIFFER`; each path in ``places`` by its name."""
    if isinstance(value, dict):
        return {k: normalize(v, places) for k, v in value.items() if k not in MUST_DIFFER}
    if isinstance(value, list):
        return [normalize(v, places) for v in value]
    if isinstance(value, str):
        for path, name in places.items():
            value = value.replace(path, name)
    return value


def _acceptance_dir() -> Path | None:
    """The acceptance sample: $YWF_ACCEPTANCE_DIR, else shared/acceptance beside a parent."""
    if os.environ.get("YWF_ACCEPTANCE_DIR"):
        return Path(os.environ["YWF_ACCEPTANCE_DIR"])
    for parent in ROOT.parents:
        if (parent / "shared" / "acceptance" / "cases").is_dir():
            return parent / "shared" / "acceptance"
    return None


ACCEPTANCE = _acceptance_dir()


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """Two workers that, like a deployment, have the sample's helper modules installed."""
    paths = [str(p) for p in sorted((ACCEPTANCE / "cases").glob("*/helpers"))
             + sorted((ACCEPTANCE / "cases").glob("*/plugin"))] if ACCEPTANCE else []
    pythonpath = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    f = Fleet(workers=2, env={"PYTHONPATH": pythonpath} if pythonpath else None)
    try:
        f.start()
        yield f
    finally:
        f.stop()


class Outcome:
    """One invocation: exit code, the JSON document (if stdout held one), stderr."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code, self.stderr = proc.returncode, proc.stderr
        try:
            self.doc: Any = json.loads(proc.stdout) if proc.stdout.strip() else None
        except ValueError:
            pytest.fail(f"stdout is not one JSON document: {proc.stdout[:500]!r}\nstderr: {proc.stderr[-500:]}")

    def last_line(self, places: dict[str, str]) -> str:
        lines = self.stderr.strip().splitlines()
        return str(normalize(lines[-1], places)) if lines else ""


def _start(fleet: Fleet, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "yaml_workflow", *argv], env={**fleet.env, **env}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def _finish(proc: subprocess.Popen[str]) -> Outcome:
    stdout, stderr = proc.communicate(timeout=180)
    return Outcome(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))


def both(fleet: Fleet, tmp: Path, argv: list[str], *, env: dict[str, str] | None = None,
         setup: str | None = None, case: Path | None = None) -> tuple[Outcome, Outcome, dict[str, str]]:
    """``run ARGV`` and ``submit ARGV --wait``, each in a directory of its own, at once.

    In ``argv``, ``{tmp}``, ``{runs}`` and ``{case}`` stand for that directory, its
    ``runs`` folder and the case folder; ``env`` values may use them too.
    """
    started, places = [], {}
    for name, command in (("local", ["run"]), ("fleet", ["submit", "--wait"])):
        where = tmp / name
        where.mkdir(parents=True, exist_ok=True)
        marks = {"{tmp}": str(where), "{runs}": str(where / "runs"), "{case}": str(case or tmp)}

        def expand(text: str, marks: dict[str, str] = marks) -> str:
            for mark, value in marks.items():
                text = text.replace(mark, value)
            return text

        if setup:
            subprocess.run(["bash", "-c", expand(setup)], cwd=where, check=True, timeout=60)
        args = [expand(a) for a in argv]
        if "--format" not in args:
            args += ["--format", "json"]
        started.append(_start(fleet, [*command, *args], where, {k: expand(v) for k, v in (env or {}).items()}))
        places[str(where)] = "<tmp>"
    outcomes = [_finish(proc) for proc in started]
    local, remote = outcomes
    for outcome in outcomes:
        if isinstance(outcome.doc, dict) and outcome.doc.get("workspace"):
            places = {outcome.doc["workspace"]: "<workspace>", **places}
    return local, remote, places


def assert_same(local: Outcome, remote: Outcome, places: dict[str, str], label: str) -> None:
    """The two documents are equal but for MUST_DIFFER (step order of outputs included)."""
    assert remote.code == local.code, (
        f"{label}: run exited {local.code}, submit --wait {remote.code}\n"
        f"run: {local.stderr[-800:]}\nsubmit: {remote.stderr[-800:]}")
    if local.doc is None or remote.doc is None:
        # refused before anything ran: one line each, saying the same
        assert local.doc == remote.doc, f"{label}: only one printed a document"
        assert remote.last_line(places) == local.last_line(places), f"{label}: refusals differ"
        return
    mine, theirs = normalize(local.doc, places), normalize(remote.doc, places)
    assert list(theirs) == list(mine), f"{label}: the documents' fields differ"
    assert list(theirs.get("outputs") or {}) == list(mine.get("outputs") or {}), f"{label}: outputs in another order"
    assert theirs == mine, f"{label}: the documents differ\nrun:    {json.dumps(mine)[:3000]}\nsubmit: {json.dumps(theirs)[:3000]}"
    # and each workspace's state file records the same step statuses
    assert _states(remote.doc["workspace"]) == _states(local.doc["workspace"]), f"{label}: step statuses differ"


def _states(workspace: str) -> dict[str, Any]:
    doc = json.loads((Path(workspace) / ".workflow_metadata.json").read_text())
    steps = doc["execution_state"]["step_outputs"]
    return {"status": doc["status"], "steps": {k: v["status"] for k, v in steps.items()}}


# --- workflows of this file -----------------------------------------------------------

LINEAR = """
name: linear
params:
  who: {type: string, default: World}
  n: {type: integer, default: 2}
steps:
  - name: greet
    task: echo
    inputs: {message: "Hello, {{ args.who }}"}
  - name: count
    task: python_code
    inputs:
      code: "result = {'double': args['n'] * 2, 'greeting': steps['greet']['result']}"
  - name: maybe
    task: echo
    condition: "{{ args.n > 10 }}"
    inputs: {message: never}
  - name: shell
    task: shell
    inputs: {command: "printf '%s' '{{ steps.count.result.double }}' > out.txt; cat out.txt"}
  - name: soft_fail
    task: shell
    on_error: continue
    inputs: {command: "exit 3"}
  - name: last
    task: template
    inputs: {template: "{{ steps.shell.result.stdout }}-{{ steps.soft_fail.status }}", output_file: last.txt}
"""

DAG = """
name: dag
steps:
  - name: root
    task: echo
    inputs: {message: r}
  - name: left
    task: python_code
    depends_on: [root]
    inputs: {code: "result = steps['root']['result'] + 'L'"}
  - name: right
    task: python_code
    depends_on: root
    inputs: {code: "result = steps['root']['result'] + 'R'"}
  - name: mid
    task: echo
    depends_on: [left]
    inputs: {message: "{{ steps.left.result }}M"}
  - name: join
    task: python_code
    depends_on: [mid, right]
    inputs: {code: "result = steps['mid']['result'] + '+' + steps['right']['result']"}
"""

BATCH = """
name: batchy
params:
  colors: {type: list, default: [red, green, blue, cyan, magenta, yellow, black]}
steps:
  - name: prep
    task: echo
    inputs: {message: go}
  - name: shout
    task: batch
    inputs:
      items: "{{ args.colors }}"
      chunk_size: 3
      max_workers: 2
      task:
        task: python_code
        inputs:
          code: |
            if item == 'black':
                raise ValueError('no black')
            result = f"{batch.index}:{item.upper()}/{batch.total}@{batch.chunk_index}"
  - name: summary
    task: python_code
    inputs:
      code: "result = [len(steps['shout']['result']['processed']), steps['shout']['result']['stats']['failed']]"
"""

# Top-level keys whose values reach templates: env, settings, params, the workflow's name.
TOP_LEVEL = """
name: toplevel
description: every top-level key a template can read
env:
  GREETING: hello
  TARGET: "{{ args.who }}"
settings:
  retries: 3
params:
  who: {type: string, default: fleet}
steps:
  - name: read
    task: python_code
    inputs:
      code: 'result = [env["GREETING"], env["TARGET"]]'
  - name: templ
    task: echo
    inputs:
      message: "{{ env.GREETING }} {{ env.TARGET }} {{ settings.retries }} {{ workflow.name }} {{ workflow.run_number }} {{ args.who }}"
  - name: shell_env
    task: shell
    inputs: {command: 'printf "%s %s" "$GREETING" "$TARGET"'}
"""

FAILING = """
name: failing
steps:
  - {name: a, task: echo, inputs: {message: x}}
  - {name: boom, task: fail, inputs: {message: kaput}}
  - {name: never, task: echo, inputs: {message: y}}
"""

OWN = {"linear": LINEAR, "dag": DAG, "batch": BATCH, "toplevel": TOP_LEVEL, "failing": FAILING}


@pytest.mark.parametrize("name", sorted(OWN))
def test_submit_wait_prints_the_document_run_prints(fleet: Fleet, tmp_path: Path, name: str) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(OWN[name])
    local, remote, places = both(fleet, tmp_path, [str(wf), "--base-dir", "{runs}"])
    assert_same(local, remote, places, name)
    assert local.code == (1 if name == "failing" else 0), local.stderr


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.yaml")))
def test_every_example_prints_the_same_document_on_both_executors(fleet: Fleet, tmp_path: Path, name: str) -> None:
    local, remote, places = both(fleet, tmp_path, [str(EXAMPLES / f"{name}.yaml"), "--base-dir", "{runs}"])
    assert_same(local, remote, places, f"examples/{name}.yaml")


def _acceptance_runs() -> list[Any]:
    """Each `run` invocation of the sample that a fleet can take (not --resume, --dry-run)."""
    if ACCEPTANCE is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason="no acceptance sample on this machine"))]
    found = []
    for case in sorted((ACCEPTANCE / "cases").iterdir()):
        spec = json.loads((case / "case.json").read_text())
        for number, step in enumerate(spec["steps"], 1):
            argv = step["argv"]
            if argv[0] == "run" and not {"--resume", "--dry-run"} & set(argv):
                found.append(pytest.param(case, number, id=f"{case.name}-{number}"))
    return found


@pytest.mark.parametrize(("case", "number"), _acceptance_runs())
def test_every_acceptance_run_prints_the_same_document_on_both_executors(
        fleet: Fleet, tmp_path: Path, case: Path, number: int) -> None:
    spec = json.loads((case / "case.json").read_text())
    step = spec["steps"][number - 1]
    env = {**spec.get("env", {}), **step.get("env", {})}
    shutil.copytree(case, tmp_path / "case")  # a case may write beside its workflow
    local, remote, places = both(fleet, tmp_path, step["argv"][1:], env=env, setup=spec.get("setup"),
                                 case=tmp_path / "case")
    assert_same(local, remote, places, f"{case.name} step {number}")


def test_a_batch_with_failed_items_says_so_on_both_executors(fleet: Fleet, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("""
name: scores
steps:
  - name: score
    task: batch
    inputs:
      items: "{{ range(50) | list }}"
      chunk_size: 10
      task:
        task: python_code
        inputs:
          code: |
            if item in (3, 17):
                raise ValueError('bad')
            result = item
""")
    for command in (["run"], ["submit", "--wait"]):
        proc = fleet.cli(*command, str(wf), "--base-dir", str(tmp_path / command[0]), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "  ok    score (2 of 50 items failed) (" in proc.stderr, (command, proc.stderr)


def test_text_output_first_line_is_the_run_id(fleet: Fleet, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(DAG)
    proc = fleet.cli("submit", str(wf), "--wait", "--base-dir", "rel", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.splitlines()[0]
    assert run_id.isalnum() and len(run_id) == 16
    assert "ok    join" in proc.stderr  # each step as it finishes, on stderr
    # A relative --base-dir is made absolute by submit: workers have another cwd.
    assert list((tmp_path / "rel").glob("dag_run_1/.workflow_metadata.json"))
    status = json.loads((tmp_path / "rel/dag_run_1/.workflow_metadata.json").read_text())
    assert status["workflow_id"] == run_id and status["status"] == "completed"


def test_failed_run_exits_1(fleet: Fleet, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(FAILING)
    proc = fleet.cli("submit", str(wf), "--wait", "--format", "json", "--base-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed" and doc["failed_step"] == "boom"
    state = json.loads((Path(doc["workspace"]) / ".workflow_metadata.json").read_text())
    assert state["execution_state"]["failed_step"]["step_name"] == "boom"
    assert "never" not in state["execution_state"]["step_outputs"]
