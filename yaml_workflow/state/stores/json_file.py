"""``file://[ROOT]``: the workspace's JSON mirror is the whole store (the local default).

A run is found by its workspace path, or by id under ROOT (``file:///srv/runs``; without
a path: ``$YAML_WORKFLOW_WORKSPACE_ROOT``, else ``runs``), by reading the head of each
``<ROOT>/*/.workflow_metadata.json``.  The run's lease is a small JSON file in the
workspace, written under ``flock``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ...exceptions import RunNotFound, StateFileError
from ...settings import get_settings
from ..document import summary
from ..lease import Lease, lease_is_live
from ..mirror import STATE_FILE, Mirror, read_state, write_atomically
from ..store import Store

LEASE_FILE = Path(".ywf") / "lease.json"
_ID_RE = re.compile(rb'"workflow_id"\s*:\s*"([^"]+)"')


def default_root() -> Path:
    """Where runs are looked up by id when the URL names no directory."""
    return Path(get_settings().workspace_root)


def find_workspaces(root: Path) -> Iterator[Path]:
    """Every directory under ``root`` (one level, and root itself) holding a state file."""
    if (root / STATE_FILE).is_file():
        yield root
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir() and os.path.isfile(os.path.join(entry.path, STATE_FILE)):
            yield Path(entry.path)


def workspace_run_id(workspace: Path) -> str | None:
    """The workflow_id of a workspace, read from the head of its state file."""
    try:
        with open(workspace / STATE_FILE, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    match = _ID_RE.search(head)
    return match.group(1).decode() if match else None


def find_run_workspace(run_id: str, roots: list[Path]) -> Path | None:
    """The workspace whose state file has ``workflow_id`` == run_id, under any root."""
    for root in roots:
        for workspace in find_workspaces(root):
            if workspace_run_id(workspace) == run_id:
                return workspace
    return None


class JsonFileStore(Store):
    """Runs as workspaces: transitions go to the journal, the file is compacted from it."""

    is_mirror = True

    def __init__(self, url: str = "file://", *, root: str | os.PathLike[str] | None = None) -> None:
        self.url = url
        path = unquote(urlparse(url).path)
        self.root = Path(root) if root else (Path(path) if path else default_root())
        self._workspaces: dict[str, Path] = {}
        self._mirrors: dict[str, Mirror] = {}
        self._lock = threading.Lock()

    # --- locating runs ---------------------------------------------------------------

    def workspace_of(self, run_id: str) -> Path:
        """The workspace holding the run (a workspace path is accepted as the id)."""
        known = self._workspaces.get(run_id)
        if known is not None:
            return known
        as_path = Path(run_id)
        if (as_path / STATE_FILE).is_file() or (as_path / ".ywf" / "journal").is_dir():
            return as_path
        found = find_run_workspace(run_id, [self.root])
        if found is None:
            raise RunNotFound(
                f"no run '{run_id}' under {self.root}",
                hint="pass the run's workspace path, or set YAML_WORKFLOW_WORKSPACE_ROOT",
            )
        self._workspaces[run_id] = found
        return found

    def use_workspace(self, run_id: str, workspace: Path) -> None:
        """Pin the run to ``workspace`` (a copy of it elsewhere under the root is not it)."""
        self._workspaces[run_id] = Path(workspace)

    def mirror(self, run_id: str) -> Mirror:
        """The journal writer of a run in this process."""
        with self._lock:
            mirror = self._mirrors.get(run_id)
            if mirror is None or mirror.closed:
                mirror = Mirror(self.workspace_of(run_id))
                self._mirrors[run_id] = mirror
            return mirror

    # --- Store -----------------------------------------------------------------------

    def create_run(self, header: dict[str, Any]) -> None:
        workspace = Path(header["workspace"])
        self._workspaces[header["workflow_id"]] = workspace
        self.mirror(header["workflow_id"]).write_header(header)

    def record(self, run_id: str, event: dict[str, Any]) -> None:
        self.mirror(run_id).append(event)

    def flush(self, run_id: str) -> None:
        with self._lock:
            mirror = self._mirrors.pop(run_id, None)
        if mirror is not None:
            mirror.close()

    def load(self, run_id: str) -> dict[str, Any]:
        return read_state(self.workspace_of(run_id))

    def exists(self, run_id: str) -> bool:
        try:
            self.workspace_of(run_id)
        except RunNotFound:
            return False
        return True

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        rows = []
        for workspace in find_workspaces(self.root):
            try:
                rows.append(summary(read_state(workspace)))
            except StateFileError:
                continue
        rows.sort(key=lambda r: r.get("start_time") or "", reverse=True)
        return rows[:limit] if limit else rows

    def delete_run(self, run_id: str) -> None:
        workspace = self.workspace_of(run_id)
        self.flush(run_id)
        shutil.rmtree(workspace, ignore_errors=True)
        self._workspaces.pop(run_id, None)

    # --- leases: a JSON file in the workspace, changed under flock --------------------

    def _with_lease_file(self, run_id: str, change: Any) -> Any:
        path = self.workspace_of(run_id) / LEASE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a+") as lock_fh:
            fcntl.flock(lock_fh, fcntl.LOCK_EX)
            try:
                try:
                    holder = Lease.from_dict(json.loads(path.read_text()))
                except (OSError, ValueError, KeyError, TypeError):
                    holder = None
                return change(path, holder)
            finally:
                fcntl.flock(lock_fh, fcntl.LOCK_UN)

    def acquire_lease(self, run_id: str, lease: Lease) -> Lease | None:
        def change(path: Path, holder: Lease | None) -> Lease | None:
            if holder is not None and holder.token != lease.token and lease_is_live(holder):
                return holder
            write_atomically(path, json.dumps(lease.to_dict()))
            return None

        return self._with_lease_file(run_id, change)  # type: ignore[no-any-return]

    def renew_lease(self, run_id: str, lease: Lease) -> bool:
        def change(path: Path, holder: Lease | None) -> bool:
            if holder is not None and holder.token != lease.token:
                return False
            write_atomically(path, json.dumps(lease.to_dict()))
            return True

        return self._with_lease_file(run_id, change)  # type: ignore[no-any-return]

    def release_lease(self, run_id: str, token: str) -> None:
        def change(path: Path, holder: Lease | None) -> None:
            if holder is not None and holder.token == token:
                path.unlink(missing_ok=True)

        self._with_lease_file(run_id, change)

    def lease_holder(self, run_id: str) -> Lease | None:
        return self._with_lease_file(run_id, lambda _path, holder: holder)  # type: ignore[no-any-return]
