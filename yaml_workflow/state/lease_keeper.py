"""Holding a run's lease while it runs: taken at start, renewed by a heartbeat thread."""

from __future__ import annotations

import os
import threading
import time
import uuid

from ..exceptions import LeaseHeld
from ..settings import get_settings
from .document import HOST
from .lease import Lease
from .processes import ProcessRef
from .store import Store


class LeaseKeeper:
    """Takes a run's lease and renews it every ttl/3 seconds until released."""

    def __init__(self, store: Store, run_id: str, ttl: float | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.ttl = get_settings().lease_ttl if ttl is None else ttl
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._me = ProcessRef.of(os.getpid())
        self.lost = False

    def _lease(self) -> Lease:
        return Lease(self.token, HOST, self._me.pid, time.time() + self.ttl, self._me.started)

    def acquire(self) -> None:
        """Take the lease or raise LeaseHeld naming the live holder."""
        holder = self.store.acquire_lease(self.run_id, self._lease())
        if holder is not None:
            raise LeaseHeld(
                f"run {self.run_id} is already running on {holder.host} pid {holder.pid}",
                hint="wait for it to finish, or cancel it first",
            )
        self._thread = threading.Thread(target=self._beat, name="ywf-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.store.renew_lease(self.run_id, self._lease()):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a missed beat is retried; expiry is the guard
                continue

    def release(self) -> None:
        """Stop renewing and give the lease back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.release_lease(self.run_id, self.token)
        except Exception:  # noqa: BLE001 - the lease expires by itself
            pass
