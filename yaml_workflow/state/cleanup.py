"""Finding and removing old run workspaces: what `workspace clean`, `workspace remove` and
`clean` share.

A workspace is a directory under a base dir holding a run's state file (or, for a run
that has only just started, its journal).  Selection is by age (``last_updated`` of the
run, else the directory's mtime), run status and run id.  A run whose status is
``running`` and whose lease is live is never removed: its process is still writing there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import LeaseHeld, StateFileError, UsageError
from .document import FINISHED, RUN_STATUSES, RUNNING, parse_iso
from .lease import Lease, lease_is_live
from .mirror import JOURNAL_DIR, STATE_FILE, read_state
from .stores.json_file import LEASE_FILE

UNKNOWN = "unknown"  # the state file cannot be read
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str | float | int) -> float:
    """``"30d"`` -> seconds; units s, m, h, d, w; a bare number means days (as the public CLI)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) * 86400
    match = _AGE.match(str(text))
    if not match:
        raise UsageError(
            f"cannot read the age '{text}'",
            hint="write a number and a unit: 90s, 30m, 12h, 30d, 2w (a bare number is days)",
        )
    return float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "d").lower()]


@dataclass
class RunEntry:
    """One workspace as the cleanup sees it."""

    path: Path
    run_id: str | None
    workflow: str | None
    status: str  # a run status, or "unknown" when the state file cannot be read
    updated: float  # epoch seconds of the last recorded change
    size: int  # bytes on disk
    live: bool  # running, with a lease some process still renews
    problem: str | None = None  # why the state file could not be read
    recorded_workspace: str | None = None  # the workspace the run's own state names
    run_number: int | None = None
    mode: str | None = None  # "fleet" for a run submitted to workers

    @property
    def name(self) -> str:
        """The workspace folder name (``<workflow>_run_<n>``)."""
        return self.path.name

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``--format json``."""
        return {
            "name": self.name, "path": str(self.path), "run_id": self.run_id,
            "workflow": self.workflow, "status": self.status, "updated": self.updated,
            "size": self.size, "live": self.live, "problem": self.problem,
        }


def dir_size(path: Path) -> int:
    """Bytes of the files below ``path`` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # a file removed while we walk
    return total


def lease_live(workspace: Path) -> bool:
    """True when the workspace's lease file names a holder that is still alive."""
    try:
        holder = Lease.from_dict(json.loads((workspace / LEASE_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return lease_is_live(holder)


def is_workspace(path: Path) -> bool:
    """A run workspace: a state file, or the journal of a run not yet compacted."""
    return (path / STATE_FILE).is_file() or (path / JOURNAL_DIR).is_dir()


def inspect_workspace(path: Path) -> RunEntry:
    """Read what the cleanup needs from one workspace; an unreadable state is ``unknown``."""
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    try:
        doc = read_state(path)
    except StateFileError as err:
        return RunEntry(path, None, None, UNKNOWN, mtime, dir_size(path), lease_live(path),
                        problem=err.one_line())
    status = str(doc.get("status") or RUNNING)
    updated = parse_iso(doc.get("last_updated")) or parse_iso(doc.get("start_time")) or mtime
    # Only a run that says it is running can have a writer to protect.
    live = status == RUNNING and lease_live(path)
    run_number = doc.get("run_number")
    return RunEntry(path, doc.get("workflow_id"), doc.get("name"), status, updated,
                    dir_size(path), live, recorded_workspace=doc.get("workspace"),
                    run_number=run_number if isinstance(run_number, int) else None,
                    mode=str(doc["mode"]) if doc.get("mode") else None)


def scan_workspaces(base_dir: str | os.PathLike[str]) -> list[RunEntry]:
    """Every workspace directly under ``base_dir``, sorted by name."""
    base = Path(base_dir)
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    # A link to a folder elsewhere is not a workspace of this base dir, whatever it holds.
    return [inspect_workspace(Path(e.path)) for e in entries
            if e.is_dir(follow_symlinks=False) and is_workspace(Path(e.path))]


def check_statuses(statuses: Iterable[str]) -> set[str]:
    """Validate ``--status`` values (comma-separated allowed): run statuses only."""
    wanted = {s.strip() for value in statuses for s in str(value).split(",") if s.strip()}
    if UNKNOWN in wanted:
        # A folder whose state cannot be read is not a run by our record: clean never takes it.
        raise UsageError(
            "clean never removes a workspace whose state cannot be read (status 'unknown')",
            hint="look at it, then remove it by hand or with `yaml-workflow workspace remove PATH --force`",
        )
    bad = sorted(wanted - set(RUN_STATUSES))
    if bad:
        shown = bad[0] if len(bad[0]) <= 40 else bad[0][:37] + "..."
        raise UsageError(f"unknown run status {shown!r}", hint=f"use one of: {', '.join(RUN_STATUSES)}")
    return wanted


@dataclass
class Selection:
    """What a clean would remove, and what matched but is kept (with the reason)."""

    remove: list[RunEntry]
    kept: list[tuple[RunEntry, str]]


def select(
    entries: Iterable[RunEntry],
    *,
    older_than: float | None = None,
    statuses: Iterable[str] = (),
    run_ids: Iterable[str] = (),
    now: float | None = None,
) -> Selection:
    """Entries matching every filter; without ``statuses``, finished runs only.

    An interrupted run (``running``, lease dead) may still be resumed, so it is taken only
    when ``running`` is asked for; a live run and an unreadable state are always kept.
    """
    now = time.time() if now is None else now
    wanted = check_statuses(statuses) or set(FINISHED)
    ids = set(run_ids)
    chosen = Selection([], [])
    for entry in entries:
        if older_than is not None and now - entry.updated < older_than:
            continue
        if entry.status not in wanted:
            continue
        if ids and entry.run_id not in ids:
            continue
        if entry.live:
            chosen.kept.append((entry, "still running (its lease is live)"))
        else:
            chosen.remove.append(entry)
    return chosen


def remove_workspace(entry: RunEntry, *, force: bool = False) -> None:
    """Delete one workspace; refuse a live run always, an interrupted one or one whose state
    cannot be read without ``force``."""
    # Look again right before deleting: the run may have been resumed since the scan.
    if lease_live(entry.path):
        raise LeaseHeld(
            f"workspace {entry.path} belongs to a run that is still running",
            hint="wait for it to finish, or cancel it first",
        )
    if entry.status == RUNNING and not force:
        raise UsageError(
            f"workspace {entry.path} holds an interrupted run that can still be resumed",
            hint="pass --force to remove it anyway",
        )
    if entry.status == UNKNOWN and not force:
        raise UsageError(
            f"{entry.path}: its state cannot be read, so it may not be a run workspace",
            hint="look at it; pass --force to remove it anyway",
        )
    if entry.path.is_symlink():
        raise UsageError(f"{entry.path} is a link, not a workspace", hint="remove the link by hand")
    shutil.rmtree(entry.path)
