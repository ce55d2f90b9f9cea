"""Running ``yaml-workflow`` as a subprocess and measuring what it cost: CPU time and peak memory.

The numbers come from ``os.wait4`` on that one child, so other processes of the test run
(or of other test runs on the machine) do not count.  A hard address-space limit keeps a
regression from taking the machine with it: the child dies of MemoryError instead.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# The child may not map more than this: far above the 200 MB it is allowed to use, far
# below what would disturb the machine.
ADDRESS_SPACE_LIMIT = 2 * 1024**3


@dataclass
class Measured:
    """One finished command: exit code, streams, CPU seconds, wall seconds, peak RSS in MB."""

    argv: list[str]
    code: int
    out: str
    err: str
    cpu: float
    wall: float
    peak_mb: float

    def describe(self) -> str:
        """A summary for assertion messages."""
        return (f"{' '.join(self.argv)[:200]} -> rc {self.code}, cpu {self.cpu:.2f}s, wall {self.wall:.2f}s, "
                f"peak {self.peak_mb:.0f} MB, stderr {self.err[-500:]!r}")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def run_measured(args: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
                 kill_after: float = 60.0) -> Measured:
    """``python -m yaml_workflow ARGS`` in ``cwd``; killed after ``kill_after`` seconds."""
    argv = [sys.executable, "-m", "yaml_workflow", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env or dict(os.environ),
                                stdin=subprocess.DEVNULL, preexec_fn=_limit_memory)
        timer = threading.Timer(kill_after, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Measured(
            argv=[str(a) for a in args], code=proc.returncode,
            out=out.read().decode("utf-8", "replace"), err=err.read().decode("utf-8", "replace"),
            cpu=usage.ru_utime + usage.ru_stime, wall=wall, peak_mb=usage.ru_maxrss / 1024,
        )
