"""Finding a run from what a user types: a run id or a workspace path.

With a Redis state URL the run is read from Redis; when Redis no longer has it (flushed,
restarted without persistence, expired) its workspace's JSON mirror is found by
searching the workspace roots, and the caller is told that the fleet lost it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import RunNotFound, UsageError
from .mirror import JOURNAL_DIR, STATE_FILE, read_state
from .store import Store, default_state_url, open_store
from .stores.json_file import JsonFileStore, default_root, find_run_workspace


@dataclass
class LocatedRun:
    """A run's document, the store that holds it, and its workspace."""

    run_id: str
    doc: dict[str, Any]
    store: Store
    workspace: Path | None
    # True when the configured store (Redis) lost the run and the mirror stands in.
    lost_by_store: bool = False


# A run id is 16 hex digits, a workspace path at most PATH_MAX (4096 bytes on Linux).
MAX_RUN_REFERENCE = 4096


def check_run_reference(run: str) -> None:
    """Refuse what cannot be a run id or a workspace path (too long, a NUL byte, empty)."""
    if not run:
        problem = "an empty name"
    elif len(run) > MAX_RUN_REFERENCE:
        problem = f"a name of {len(run):,} characters"
    elif "\x00" in run:
        problem = "a name with a NUL byte in it"
    else:
        return
    raise UsageError(
        f"{problem} is neither a run id nor a workspace path",
        hint="give a run id (16 hex digits, from `yaml-workflow runs`) or a workspace path",
    )


def _is_workspace(path: Path) -> bool:
    try:
        return (path / STATE_FILE).is_file() or (path / JOURNAL_DIR).is_dir()
    except OSError:  # a name too long for the file system: not a workspace
        return False


def workspace_roots(extra: list[Path] | None = None) -> list[Path]:
    """Where workspaces are searched: given dirs, $YAML_WORKFLOW_WORKSPACE_ROOT, ./runs."""
    roots = list(extra or [])
    env_root = os.environ.get("YAML_WORKFLOW_WORKSPACE_ROOT")
    if env_root:
        roots.append(Path(env_root))
    roots.append(default_root())
    return roots


def locate_run(run: str, *, state_url: str | None = None, roots: list[Path] | None = None) -> LocatedRun:
    """The run named by ``run`` (an id or a workspace path); RunNotFound when nowhere."""
    check_run_reference(run)
    url = state_url or default_state_url()
    path = Path(run)
    if _is_workspace(path):
        doc = read_state(path)
        run_id = str(doc["workflow_id"])
        if url and not url.startswith("file:"):
            store = open_store(url)
            if store.exists(run_id):
                return LocatedRun(run_id, store.load(run_id), store, path.absolute())
            return LocatedRun(run_id, doc, store, path.absolute(), lost_by_store=True)
        store = JsonFileStore(root=path.parent)
        store.use_workspace(run_id, path.absolute())  # not a copy of it under the same root
        return LocatedRun(run_id, doc, store, path.absolute())
    search = workspace_roots(roots)
    if url and not url.startswith("file:"):
        store = open_store(url)
        if store.exists(run):
            doc = store.load(run)
            workspace = Path(doc["workspace"]) if doc.get("workspace") else None
            return LocatedRun(run, doc, store, workspace)
        found = find_run_workspace(run, search)
        if found is not None:
            return LocatedRun(run, read_state(found), store, found, lost_by_store=True)
        raise RunNotFound(
            f"run '{run}' is neither in {store.url.split('@')[-1]} nor in a workspace under "
            f"{', '.join(str(r) for r in search)}",
            hint="pass the run's workspace path, or set YAML_WORKFLOW_WORKSPACE_ROOT",
        )
    found = find_run_workspace(run, search)
    if found is None:
        raise RunNotFound(
            f"no run '{run}' in a workspace under {', '.join(str(r) for r in search)}",
            hint="pass the run's workspace path, --base-dir, or set YAML_WORKFLOW_STATE_URL",
        )
    store = JsonFileStore(root=found.parent)
    store.use_workspace(run, found)
    return LocatedRun(run, read_state(found), store, found)
