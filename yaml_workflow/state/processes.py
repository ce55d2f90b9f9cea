"""Processes we may have to recognise again later: by pid *and* start time.

A pid alone is not an identity: a dead process's pid is reused, and a killed process
whose parent has not reaped it (a zombie: wherever PID 1 is not an init, as in containers
without tini and on CI runners) still "exists" for ``kill(pid, 0)``.  So a process is
recorded with its start time (from ``/proc/<pid>/stat``, in clock ticks since boot) and
counts as alive only while a process with that pid, that start time and a state other
than zombie exists.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProcessRef:
    """A process (or the process group it leads) as recorded: pid and start time."""

    pid: int
    started: int | None = None  # clock ticks since boot; None where /proc is missing

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"pid": self.pid, "started": self.started}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessRef:
        """Back from JSON form."""
        started = data.get("started")
        return cls(int(data["pid"]), int(started) if started is not None else None)

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        """The process ``pid`` as it is now."""
        stat = _stat(pid)
        return cls(pid, stat[1] if stat else None)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of ``pid`` from /proc, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[0], int(fields[19])


def has_proc() -> bool:
    """True where /proc tells process states and start times (Linux)."""
    return os.path.isdir("/proc/self")


def is_alive(ref: ProcessRef) -> bool:
    """True while the recorded process runs: same pid, same start time, not a zombie."""
    if ref.pid <= 0:
        return False
    if not has_proc():
        try:
            os.kill(ref.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = _stat(ref.pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return ref.started is None or stat[1] == ref.started


def kill_group(ref: ProcessRef) -> bool:
    """SIGKILL the process group ``ref`` leads, if that very process still lives; True if sent.

    Also a group whose leader is gone but whose members remain (``sh -c 'sleep 300 &'``):
    the group id outlives its leader, and a group id is only reused once the group is empty.
    """
    if ref.pid <= 0:
        return False
    stat = _stat(ref.pid) if has_proc() else None
    if stat is not None and stat[0] not in ("Z", "X") and ref.started is not None and stat[1] != ref.started:
        return False  # the pid belongs to another process now: not ours to kill
    try:
        os.killpg(ref.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
