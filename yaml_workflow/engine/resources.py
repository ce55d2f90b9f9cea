"""What a step cost: CPU time of its thread and of child processes, peak memory.

CPU of the step's own thread is exact (``time.thread_time`` in the thread that ran the
task).  Child processes are counted through ``RUSAGE_CHILDREN``, which is per process:
when steps run in parallel threads their children's figures are shared, and so is the
worker process's peak memory — both are marked ``shared`` in the record.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Usage:
    """A snapshot to subtract from."""

    thread_cpu: float
    children_cpu: float

    @classmethod
    def now(cls) -> Usage:
        """Snapshot of this thread's CPU time and the finished children's."""
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(time.thread_time(), kids.ru_utime + kids.ru_stime)


def measure(before: Usage, thread_cpu: float | None = None) -> dict[str, Any]:
    """Resource figures of a step since ``before`` (thread CPU may come from another thread)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_seconds": round(thread_cpu if thread_cpu is not None else time.thread_time() - before.thread_cpu, 6),
        "children_cpu_seconds": round(kids.ru_utime + kids.ru_stime - before.children_cpu, 6),
        "children_max_rss_kb": kids.ru_maxrss,
        "process_max_rss_kb": own.ru_maxrss,
        "shared": ["children_max_rss_kb", "process_max_rss_kb"],
    }
