"""Meeting points that python_code steps of a test workflow import, to prove concurrency.

Steps running in the same process (the local executor's thread pool) reach these by
name: ``from tests.support.rendezvous import meet; meet("key", 2)`` returns only when two
steps are inside it at once, and raises when the other never comes (steps run one by
one), so a test fails instead of hanging.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_BARRIERS: dict[str, threading.Barrier] = {}
_EVENTS: dict[str, threading.Event] = {}


def meet(key: str, parties: int, timeout: float = 10.0) -> str:
    """Wait until ``parties`` callers with ``key`` are here at once; "met" on success."""
    with _LOCK:
        barrier = _BARRIERS.setdefault(key, threading.Barrier(parties))
    barrier.wait(timeout)  # BrokenBarrierError when the others never arrive
    return "met"


def signal(key: str) -> None:
    """Mark ``key`` as happened."""
    with _LOCK:
        event = _EVENTS.setdefault(key, threading.Event())
    event.set()


def wait_for(key: str, timeout: float = 10.0) -> bool:
    """Wait until ``key`` is signalled; False when the timeout passes first."""
    with _LOCK:
        event = _EVENTS.setdefault(key, threading.Event())
    return event.wait(timeout)
