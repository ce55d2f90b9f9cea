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

from ..exceptions import RunNotFound
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


def _is_workspace(path: Path) -> bool:
    return (path / STATE_FILE).is_file() or (path / JOURNAL_DIR).is_dir()


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
