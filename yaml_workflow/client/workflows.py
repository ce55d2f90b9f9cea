"""Workflow files in a directory: what `list` prints and the MCP server offers."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..exceptions import UsageError, WorkflowError
from .models import WorkflowFile

# Never descended into: run workspaces hold copies, not workflows to run.
_SKIP_DIRS = {"runs", "__pycache__", "node_modules", "site-packages"}
_HAS_STEPS = re.compile(r"^steps\s*:", re.MULTILINE)


def _worth_entering(folder: Path) -> bool:
    if folder.name.startswith(".") or folder.name in _SKIP_DIRS:
        return False
    # Virtualenvs and run workspaces (whatever their base dir is called) hold no workflows.
    return not ((folder / "pyvenv.cfg").exists() or (folder / ".workflow_metadata.json").exists())


def find_workflow_files(root: Path) -> list[Path]:
    """YAML files under ``root`` with a top-level ``steps:``, skipping runs/ and hidden dirs."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if _worth_entering(Path(folder) / d))
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")) or name.startswith("."):
                continue
            path = Path(folder) / name
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            # A cheap test keeps compose files, CI configs and the like out of the list.
            if _HAS_STEPS.search(text):
                found.append(path)
    return found


def list_workflows(directory: str | Path) -> list[WorkflowFile]:
    """Every workflow file under ``directory`` (paths relative to it), loaded and checked."""
    from ..engine.load import load_workflow

    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"no such directory: {root}", hint="name a directory that holds workflow files")
    rows = []
    for path in find_workflow_files(root):
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        try:
            wf = load_workflow(path)
        except WorkflowError as err:
            rows.append(WorkflowFile(file=shown, valid=False, error=err.one_line()))
            continue
        rows.append(WorkflowFile(file=shown, valid=True, name=wf.name, description=wf.description,
                                 steps=len(wf.steps), params=sorted(wf.params)))
    return rows
