"""Progress of a run, derived from its document: done/total, percent, elapsed, ETA, errors.

Nothing here is stored twice: the figures come from the step records and the plan, so a
run started elsewhere (`status --watch`) shows the same as the live display of `run`.
"""

from __future__ import annotations

import time
from typing import Any

from .document import parse_iso

DONE = ("completed", "skipped", "failed")


def _seconds(iso: str | None) -> float | None:
    return parse_iso(iso)


def _step_left(record: dict[str, Any], now: float) -> float | None:
    """Seconds a running step still needs at its rate so far (None without progress)."""
    info = record.get("progress")
    started = record.get("started_at")
    if not isinstance(info, dict) or not isinstance(started, (int, float)):
        return None
    done, total = info.get("done"), info.get("total")
    if not isinstance(done, (int, float)) or not isinstance(total, (int, float)) or done <= 0:
        return None
    return max(0.0, (now - started) * (total - done) / done)


def run_progress(doc: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Steps done/total, percent, elapsed and ETA (mean step time so far), errors, retries."""
    now = now if now is not None else time.time()
    records: dict[str, Any] = doc["execution_state"]["step_outputs"]
    order = (doc.get("plan") or {}).get("order") or list(records)
    total = len(order)
    done = sum(1 for name in order if records.get(name, {}).get("status") in DONE)
    durations = [r["duration"] for r in records.values() if isinstance(r.get("duration"), (int, float))]
    started = _seconds(doc.get("start_time"))
    finished = doc.get("status") in ("completed", "failed", "cancelled")
    end = _seconds(doc.get("last_updated")) if finished else now
    elapsed = (end - started) if (started and end) else None
    remaining = total - done
    eta = None
    if not finished and remaining:
        # A running step that reports progress says how far it is: its own rate gives
        # its time left; every other step left is counted at the mean step time so far.
        own = [_step_left(r, now) for r in records.values() if r.get("status") in ("running", "retrying")]
        known = [left for left in own if left is not None]
        if durations or known:
            mean = sum(durations) / len(durations) if durations else 0.0
            eta = round((max(known) if known else 0.0) + mean * max(0, remaining - len(known)), 3)
    running = [
        {"step": name, "progress": r.get("progress")}
        for name, r in records.items() if r.get("status") in ("running", "retrying")
    ]
    return {
        "done": done,
        "total": total,
        "percent": round(100.0 * done / total, 1) if total else 100.0,
        "elapsed": round(elapsed, 3) if elapsed is not None else None,
        "eta": eta,
        "errors": sum(1 for r in records.values() if r.get("status") == "failed"),
        "retries": sum(max(0, int(r.get("attempt") or 1) - 1) for r in records.values())
        + len(doc["execution_state"].get("retry_state") or {}),
        "running": running,
    }
