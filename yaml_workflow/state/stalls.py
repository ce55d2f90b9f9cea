"""Steps whose worker stopped answering: running in the record, their claim expired.

A fleet step's claim is renewed by its worker's guard every third of the claim TTL and
records the holder (worker, pid, last renewal).  A step still ``running`` whose claim is
gone has lost its worker: it is *stalled* until its message is delivered again.  Status
views show that instead of an ETA.
"""

from __future__ import annotations

import time
from typing import Any

from .locate import LocatedRun

_RUNNING = ("running", "retrying")


def stalled_steps(located: LocatedRun) -> dict[str, str]:
    """Step -> "stalled (worker W: no heartbeat for N s)" for a running fleet run's steps."""
    if located.doc.get("mode") != "fleet" or located.lost_by_store or located.warning:
        return {}
    records = located.doc["execution_state"]["step_outputs"]
    running = {name for name, r in records.items() if r.get("status") in _RUNNING}
    if not running:
        return {}
    try:
        from .stores.redis import FleetState

        holders = FleetState(located.store.url).holders(located.run_id)
    except Exception:  # noqa: BLE001 - no fleet keys to read: nothing to say
        return {}
    now = time.time()
    found: dict[str, str] = {}
    for name, (holder, live) in holders.items():
        step = name.split("#")[0]
        if step in running and not live and not found.get(step):
            found[step] = f"stalled (worker {holder.worker}: no heartbeat for {now - holder.renewed:.0f} s)"
    return found


def describe(stalled: dict[str, Any]) -> str:
    """One line naming the stalled steps (for live views)."""
    return "; ".join(f"{step}: {text}" for step, text in sorted(stalled.items()))
