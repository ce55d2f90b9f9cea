"""What ``clean`` removes, and removing it: runs only, never anything else.

A folder is removed only when it is a run workspace *by our own record*: its state file
reads, names a run id, and names this folder as the run's workspace (or a folder of
the same name: a base dir that was moved).  A folder whose state cannot be read, or a
state file copied or forged into some other folder, is kept and said so.

A run's records in the store (Redis: the run's hashes, its lease, the fleet's spec,
counters and event stream, its entry in the run index) go with it only when the store's
own record of that run id names the same workspace: a state file that carries another
run's id cannot make ``clean`` delete that run's keys.  A run that the store says is
still running (a live lease, steps queued or running on the fleet) is never touched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import WorkflowError
from ..settings import get_settings
from .cleanup import UNKNOWN, RunEntry, remove_workspace, select
from .store import Store
from .stores import open_store


@dataclass
class Decision:
    """What ``clean`` did (or, in a dry run, would do) with one workspace."""

    entry: RunEntry
    action: str  # "removed", "kept" or "failed"
    reason: str = ""  # why kept or failed
    records: str = ""  # what happened to the run's records in the store


@dataclass
class CleanReport:
    """Every decision of one ``clean``, in order."""

    decisions: list[Decision] = field(default_factory=list)

    def of(self, action: str) -> list[Decision]:
        """The decisions with this action."""
        return [d for d in self.decisions if d.action == action]


def records_store() -> Store | None:
    """The store whose records go with the workspaces: the state Redis when one is configured.

    The same Redis that ``status`` and ``runs`` read (:attr:`Settings.redis_state_url`): a
    ``redis://`` broker URL alone counts, so the fleet's keys go with their workspaces.
    """
    url = get_settings().redis_state_url
    return open_store(url) if url else None


def _same_place(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def not_a_run_workspace(entry: RunEntry) -> str | None:
    """Why ``entry`` is not a run workspace by its own record (None when it is)."""
    if entry.status == UNKNOWN or not entry.run_id:
        return "its state cannot be read, so it is not a run workspace by our record"
    recorded = entry.recorded_workspace
    if not recorded:
        return "its state names no workspace, so it is not a run workspace by our record"
    if _same_place(recorded, entry.path) or Path(recorded).name == entry.path.name:
        return None
    return f"its state belongs to the run workspace {recorded}, not to this folder"


def records_problem(store: Store, entry: RunEntry) -> str | None:
    """Why the store's records of ``entry.run_id`` are not this workspace's (None: they are)."""
    assert entry.run_id is not None
    recorded = store.recorded_workspace(entry.run_id)
    if recorded is None:
        return "the store holds no record of it"
    if not _same_place(recorded, entry.path):
        return f"the store's run {entry.run_id} belongs to the workspace {recorded}"
    return None


def clean_runs(
    entries: Iterable[RunEntry],
    *,
    older_than: float | None = None,
    statuses: Iterable[str] = (),
    run_ids: Iterable[str] = (),
    store: Store | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> CleanReport:
    """Remove (or, with ``dry_run``, decide) the runs that match; see the module docstring."""
    now = time.time() if now is None else now
    chosen = select(entries, older_than=older_than, statuses=statuses, run_ids=run_ids, now=now)
    report = CleanReport()
    for entry, reason in chosen.kept:
        report.decisions.append(Decision(entry, "kept", reason))
    asking = [e for e in chosen.remove if _holder(e, store) is not None and e.run_id]
    if store is not None and asking:
        # A store that cannot be reached is one error (StoreUnavailable, exit 3) before
        # anything is removed, not one failure per run.
        store.exists(str(asking[0].run_id))
    for entry in chosen.remove:
        report.decisions.append(_decide(entry, store, dry_run))
    return report


def _holder(entry: RunEntry, store: Store | None) -> Store | None:
    """The store that may hold ``entry``'s records.

    Set by the broker URL alone, the Redis holds fleet runs only: `run` keeps its runs in
    their workspaces unless YAML_WORKFLOW_STATE_URL names a store, so a local run's
    workspace goes without asking a Redis that may be down.
    """
    if store is not None and entry.mode != "fleet" and not get_settings().state_url:
        return None
    return store


def _decide(entry: RunEntry, store: Store | None, dry_run: bool) -> Decision:
    store = _holder(entry, store)
    problem = not_a_run_workspace(entry)
    if problem:
        return Decision(entry, "kept", problem)
    assert entry.run_id is not None
    try:
        # The lease in the workspace is not the only sign of life: a run recorded in Redis
        # holds its lease there, and a fleet run holds none while its steps wait.
        live = store.still_running(entry.run_id) if store is not None else None
        if live:
            return Decision(entry, "kept", live)
        records = ""
        own_records = False
        if store is not None:
            problem = records_problem(store, entry)
            own_records = problem is None
            records = "its records in the store go too" if own_records else f"store records left: {problem}"
        if not dry_run:
            # --status running asked for interrupted runs by name: that is the force.
            remove_workspace(entry, force=True)
            if store is not None and own_records:
                store.purge_run(entry.run_id)
        return Decision(entry, "removed", records=records)
    except (WorkflowError, OSError) as err:
        text = err.one_line() if isinstance(err, WorkflowError) else str(err)
        return Decision(entry, "failed", text)
