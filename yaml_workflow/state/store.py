"""The Store interface: where a run's state lives, primitive by primitive.

Three implementations, chosen by URL (:func:`.stores.open_store`):

- ``memory://``  — a dict in this process (unit tests, eager mode);
- ``file://[ROOT]`` — the workspace's JSON mirror alone (the default of ``run``); ROOT is
  where runs are looked up by id;
- ``redis://`` / ``rediss://`` — Redis hashes, the fleet's source of truth.

A store records *transitions* (see :mod:`.document`); ``load`` returns the document in
the seed's structure whichever store holds it.
"""

from __future__ import annotations

import abc
from typing import Any

from .lease import Lease, lease_is_live


class Store(abc.ABC):
    """Where runs live.  Every method is safe to call from several threads."""

    url: str = ""
    #: True when the store is the workspace JSON itself (no separate mirror needed).
    is_mirror: bool = False

    @abc.abstractmethod
    def create_run(self, header: dict[str, Any]) -> None:
        """Record a new run from its ``run`` transition (``workflow_id`` inside)."""

    @abc.abstractmethod
    def record(self, run_id: str, event: dict[str, Any]) -> None:
        """Record one transition of a run, in one round trip."""

    def record_many(self, run_id: str, events: list[dict[str, Any]]) -> None:
        """Record several transitions (one round trip where the store allows)."""
        for event in events:
            self.record(run_id, event)

    @abc.abstractmethod
    def load(self, run_id: str) -> dict[str, Any]:
        """The run's whole document; :class:`RunNotFound` when there is none."""

    @abc.abstractmethod
    def exists(self, run_id: str) -> bool:
        """True when the store holds the run."""

    @abc.abstractmethod
    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Summaries of runs, newest first."""

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None:
        """Forget a run (its workspace files are the caller's business)."""

    def purge_run(self, run_id: str) -> None:
        """Forget a run and everything kept with it (in Redis: the fleet's keys too)."""
        self.delete_run(run_id)

    def recorded_workspace(self, run_id: str) -> str | None:
        """The workspace the store's record of the run names (None: no record of it)."""
        from ..exceptions import RunNotFound

        try:
            workspace = self.load(run_id).get("workspace")
        except RunNotFound:
            return None
        return str(workspace) if workspace else None

    def still_running(self, run_id: str) -> str | None:
        """Why the store says the run is still running (a live lease), or None."""
        if lease_is_live(self.lease_holder(run_id)):
            return "still running (its lease in the store is live)"
        return None

    @abc.abstractmethod
    def acquire_lease(self, run_id: str, lease: Lease) -> Lease | None:
        """Take the run's lease; None on success, else the live holder."""

    @abc.abstractmethod
    def renew_lease(self, run_id: str, lease: Lease) -> bool:
        """Extend a lease we hold; False when it was lost (expired and taken)."""

    @abc.abstractmethod
    def release_lease(self, run_id: str, token: str) -> None:
        """Give the lease back (only if we still hold it)."""

    @abc.abstractmethod
    def lease_holder(self, run_id: str) -> Lease | None:
        """The current holder, expired or not, or None."""

    def restore_run(self, doc: dict[str, Any]) -> None:
        """Recreate a whole run from its document (e.g. Redis rebuilt from the JSON mirror)."""
        from .document import run_header

        self.create_run(run_header(doc))
        self.record_many(str(doc["workflow_id"]), rebuild_events(doc))

    def flush(self, run_id: str) -> None:  # noqa: B027 - only buffered stores need it
        """Make everything recorded for the run durable and visible (the run stopped)."""

    def expire_finished(self, run_id: str, seconds: float | None) -> None:  # noqa: B027
        """Let a finished run's records expire after ``seconds`` (None: keep)."""

    def close(self) -> None:  # noqa: B027 - optional for stores without resources
        """Release connections."""


def rebuild_events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Transitions that take a fresh run (from ``run_header(doc)``) to ``doc``."""
    from .document import RETRYING, parse_iso

    state = doc.get("execution_state") or {}
    retry = state.get("retry_state") or {}
    events: list[dict[str, Any]] = []
    for name, record in (state.get("step_outputs") or {}).items():
        entry = retry.get(name)
        event = {**record, "t": "step", "step": name}
        if entry is not None:
            # Only a retrying transition writes retry_state; replay one for the entry.
            retrying = {"t": "step", "step": name, "status": RETRYING, "attempt": entry.get("attempt", 1),
                        "max_attempts": entry.get("max_attempts"), "next_delay": entry.get("next_delay"),
                        "error": entry.get("last_error")}
            if record.get("status") == RETRYING:
                event.update({k: v for k, v in retrying.items() if k in ("max_attempts", "next_delay")})
            else:
                events.append(retrying)
        events.append(event)
    events += [{"t": "flag", "flag": k, "value": v} for k, v in (doc.get("flags") or {}).items()]
    events += [{"t": "history", "entry": entry} for entry in doc.get("history") or []]
    final = {"t": "status", "status": doc.get("status"), "current_step": state.get("current_step"),
             "failed_step": state.get("failed_step")}
    moment = parse_iso(doc.get("last_updated"))
    if moment is not None:  # an odd timestamp: last_updated becomes the restore's start time
        final["at"] = moment
    events.append(final)
    return events
