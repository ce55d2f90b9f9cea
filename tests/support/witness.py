"""Steps that leave witness lines, and what the fault tests read back from a fleet run.

Every step made by :func:`step` appends ``name start PID PPID TIME`` before its body and
``name end PID PPID TIME`` after it to ``$T/w``; the checks are made on those lines and
on the final state, never on timing alone.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support.workers import Fleet

MARK = 'echo "{n} {e} $$ $PPID $(date +%s.%N)" >> "$T/w"'


def step(name: str, body: str = "true", **extra: Any) -> str:
    """A shell step that leaves `name start` and `name end` witness lines around ``body``."""
    command = f'{MARK.format(n=name, e="start")}; {body}; {MARK.format(n=name, e="end")}'
    fields = "".join(f", {k}: {v}" for k, v in extra.items())
    return f"  - {{name: {name}, task: shell, inputs: {{command: {json.dumps(command)}}}{fields}}}\n"


def witness(tmp: Path) -> list[list[str]]:
    """Every witness line, split."""
    path = tmp / "w"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def count(tmp: Path, name: str, event: str) -> int:
    """How many times step ``name`` left ``event`` (start / end)."""
    return sum(1 for w in witness(tmp) if w[:2] == [name, event])


def submit(fleet: Fleet, tmp: Path, text: str, *extra: str) -> dict[str, Any]:
    """Submit a workflow (its JSON document from `submit --format json`)."""
    wf = tmp / "wf.yaml"
    wf.write_text(text)
    proc = fleet.cli("submit", str(wf), "--base-dir", str(tmp / "runs"), "--format", "json", *extra,
                     env={"T": str(tmp)}, cwd=tmp)
    assert proc.returncode in (0, 1), proc.stderr
    return dict(json.loads(proc.stdout))


def submit_waiting(fleet: Fleet, tmp: Path, text: str, *extra: str) -> subprocess.Popen[str]:
    """`submit --wait` in the background (its run id is the first line of its stdout)."""
    import sys

    wf = tmp / "wf.yaml"
    wf.write_text(text)
    env = {**fleet.env, "T": str(tmp)}
    return subprocess.Popen([sys.executable, "-m", "yaml_workflow", "submit", str(wf), "--base-dir",
                             str(tmp / "runs"), "--wait", "-q", *extra], env=env, cwd=tmp, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def state(doc: dict[str, Any]) -> dict[str, Any]:
    """The run's JSON state file."""
    return dict(json.loads((Path(doc["workspace"]) / ".workflow_metadata.json").read_text()))


def finished(doc: dict[str, Any]) -> str | None:
    """The run's final status, or None while it runs."""
    status = state(doc)["status"]
    return str(status) if status in ("completed", "failed", "cancelled") else None


def worker_of(fleet: Fleet, pid: int) -> int:
    """Which worker runs process ``pid`` (a pool process, or a step's shell): workers lead
    their own sessions, so the session id names the worker."""
    import os

    session = os.getsid(pid)
    return next(i for i, p in enumerate(fleet.procs) if p.pid == session)
