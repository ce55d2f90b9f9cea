"""A run's stored workflow and params are data, not code: whoever can write its workspace
cannot make a resume or a retry run commands the author never wrote.

Each test fails a run, tampers with what it stored (the state file, a journal line), and
checks that `run --resume` / `retry` refuse with one line and exit 2 and run nothing, and
that giving the workflow file again (or new params) lets the resume go on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = """
name: signed
params:
  who: {type: string, default: world}
steps:
  - name: a
    task: shell
    inputs: {command: "echo a >> ran.log"}
  - name: b
    task: shell
    inputs: {command: "test -f open && echo b-{{ args.who }} >> ran.log"}
"""
EVIL = "touch pwned"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yaml_workflow", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.fixture()
def failed(tmp_path: Path) -> tuple[Path, Path]:
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    ws = tmp_path / "ws"
    proc = cli("run", str(wf), "--workspace", str(ws), "-q", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    (ws / "open").touch()
    return wf, ws


def _edit_state(ws: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = ws / ".workflow_metadata.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _evil_workflow(doc: dict) -> None:  # type: ignore[type-arg]
    doc["workflow"]["steps"][1]["inputs"]["command"] = EVIL


def _refused(proc: subprocess.CompletedProcess[str], ws: Path, says: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert says in proc.stderr, proc.stderr
    assert not (ws / "pwned").exists(), "the tampered command ran"


def test_an_edited_state_file_is_refused_by_resume_and_by_retry(failed: tuple[Path, Path], tmp_path: Path) -> None:
    wf, ws = failed
    _edit_state(ws, _evil_workflow)
    _refused(cli("run", "--resume", "--workspace", str(ws), cwd=tmp_path), ws, ".workflow_metadata.json")
    _refused(cli("retry", str(ws), "--step", "b", cwd=tmp_path), ws, "does not match its digest")
    # given the workflow file again (its steps are the ones that ran), the resume goes on
    proc = cli("run", str(wf), "--resume", "--workspace", str(ws), "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (ws / "ran.log").read_text().split() == ["a", "b-world"] and not (ws / "pwned").exists()


def test_a_forged_run_line_appended_to_a_journal_is_refused(failed: tuple[Path, Path], tmp_path: Path) -> None:
    _, ws = failed
    doc = json.loads((ws / ".workflow_metadata.json").read_text())
    forged = {"t": "run", "at": 1e10, "workflow_id": doc["workflow_id"], "name": "signed",
              "status": "failed", "params": doc["params"], "workflow": doc["workflow"],
              "workflow_digest": doc["workflow_digest"], "params_digest": doc["params_digest"]}
    _evil_workflow(forged)
    journal = ws / ".ywf" / "journal"
    journal.mkdir(parents=True, exist_ok=True)
    with open(journal / "intruder.jsonl", "a") as fh:
        fh.write(json.dumps(forged) + "\n")
    _refused(cli("run", "--resume", "--workspace", str(ws), cwd=tmp_path), ws, "does not match its digest")


def test_edited_params_are_refused_unless_given_again(failed: tuple[Path, Path], tmp_path: Path) -> None:
    wf, ws = failed

    def evil_params(doc: dict) -> None:  # type: ignore[type-arg]
        doc["params"]["who"] = "$(touch pwned)"

    _edit_state(ws, evil_params)
    _refused(cli("run", "--resume", "--workspace", str(ws), cwd=tmp_path), ws, "--override-params")
    proc = cli("run", str(wf), "--resume", "--workspace", str(ws), "--override-params", "who=again", "-q",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (ws / "ran.log").read_text().split() == ["a", "b-again"]


def test_a_run_signed_with_another_key_needs_its_file(failed: tuple[Path, Path], tmp_path: Path) -> None:
    # a workspace moved to a machine (or user) with another key: the stored workflow
    # cannot be checked there, so only the file given again is run
    wf, ws = failed
    other = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", "--resume", "--workspace", str(ws)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, stdin=subprocess.DEVNULL,
                           env={**os.environ, "YAML_WORKFLOW_FLEET_KEY": "another-key-entirely"})
    assert other.returncode == 2 and "signed with another key" in other.stderr, other.stderr
