"""Test hooks at chosen points of the code, so fault tests force a window instead of
hoping for load.  Both are off unless a test sets them.

- ``YAML_WORKFLOW_TEST_PAUSE=POINT:DIR`` — at POINT, create ``DIR/reached`` and wait
  (at most two minutes) until ``DIR/release`` exists.
- ``YAML_WORKFLOW_TEST_FAULT=POINT:STEP`` — at POINT of STEP's commit, the process dies
  (once per run: a flag file in the workspace remembers it fired).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..settings import get_settings

PAUSE_LIMIT = 120.0


def pause_point(point: str) -> None:
    """Wait here while a test holds this point (see the module docstring)."""
    wanted = get_settings().test_pause
    if not wanted or not wanted.startswith(point + ":"):
        return
    folder = Path(wanted.split(":", 1)[1])
    (folder / "reached").touch()
    deadline = time.monotonic() + PAUSE_LIMIT
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def fault_point(point: str, step: str, workspace: Path) -> None:
    """Die here once, when a test asked for it (see the module docstring)."""
    if get_settings().test_fault != f"{point}:{step}":
        return
    flag = workspace / ".ywf" / f"fault-{point}-{step}"
    if flag.exists():
        return
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()
    os._exit(137)
