"""``memory://``: runs in a dict of this process, for unit tests and eager mode."""

from __future__ import annotations

import copy
import threading
from typing import Any

from ...exceptions import RunNotFound
from ..document import apply, new_document, summary
from ..lease import Lease, lease_is_live
from ..store import Store


class MemoryStore(Store):
    """Every run's document in memory; transitions applied as they come."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._docs: dict[str, dict[str, Any]] = {}
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def create_run(self, header: dict[str, Any]) -> None:
        with self._lock:
            self._docs[header["workflow_id"]] = new_document(header)

    def record(self, run_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            doc = self._docs.get(run_id)
            if doc is None:
                raise RunNotFound(f"run '{run_id}' is not in {self.url}")
            apply(doc, copy.deepcopy(event))

    def load(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            doc = self._docs.get(run_id)
            if doc is None:
                raise RunNotFound(f"run '{run_id}' is not in {self.url}")
            return copy.deepcopy(doc)

    def exists(self, run_id: str) -> bool:
        return run_id in self._docs

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = [summary(doc) for doc in self._docs.values()]
        rows.sort(key=lambda r: r.get("start_time") or "", reverse=True)
        return rows[:limit] if limit else rows

    def delete_run(self, run_id: str) -> None:
        with self._lock:
            self._docs.pop(run_id, None)
            self._leases.pop(run_id, None)

    def acquire_lease(self, run_id: str, lease: Lease) -> Lease | None:
        with self._lock:
            holder = self._leases.get(run_id)
            if holder is not None and holder.token != lease.token and lease_is_live(holder):
                return holder
            self._leases[run_id] = lease
            return None

    def renew_lease(self, run_id: str, lease: Lease) -> bool:
        with self._lock:
            holder = self._leases.get(run_id)
            if holder is not None and holder.token != lease.token:
                return False
            self._leases[run_id] = lease
            return True

    def release_lease(self, run_id: str, token: str) -> None:
        with self._lock:
            holder = self._leases.get(run_id)
            if holder is not None and holder.token == token:
                del self._leases[run_id]

    def lease_holder(self, run_id: str) -> Lease | None:
        return self._leases.get(run_id)
