"""A run's lease: which process may record its transitions, and whether it still lives.

A second ``resume`` of a live run is refused ("already running on HOST pid N").  On the
same host the owner is checked directly — by pid *and* process start time, so a zombie
or a reused pid counts as dead at once; on another host the lease counts until it
expires (the owner renews it every ttl/3 seconds: :class:`.lease_keeper.LeaseKeeper`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from .document import HOST
from .processes import ProcessRef, is_alive


@dataclass(frozen=True)
class Lease:
    """Who holds a run: the process that may record its transitions."""

    token: str
    host: str
    pid: int
    expires_at: float  # time.time()
    started: int | None = None  # the owner's process start time (clock ticks since boot)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"token": self.token, "host": self.host, "pid": self.pid,
                "expires_at": self.expires_at, "started": self.started}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lease:
        """Back from JSON form (leases written before start times were recorded included)."""
        started = data.get("started")
        return cls(str(data["token"]), str(data["host"]), int(data["pid"]), float(data["expires_at"]),
                   int(started) if started is not None else None)

    @property
    def owner(self) -> ProcessRef:
        """The owning process."""
        return ProcessRef(self.pid, self.started)


def lease_is_live(lease: Lease | None) -> bool:
    """A lease counts while unexpired, except that a dead owner on this host frees it at once."""
    if lease is None:
        return False
    if lease.host == HOST and lease.pid != os.getpid() and not is_alive(lease.owner):
        return False
    return lease.expires_at > time.time()
