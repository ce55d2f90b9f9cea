"""Follow a fleet run with an observer, the way ``run`` feeds its display.

``wait_for_run`` reads the run's event stream (step transitions and recorded progress);
this adds what the local executor tells its observer around them: the plan first (so a
display knows how many steps there are and which are already done) and the run's final
status last.
"""

from __future__ import annotations

from typing import Any

from ...engine.request import RunResult
from ...state.document import FINISHED
from . import config
from .submit import wait_for_run


def follow_run(run_id: str, *, observer: Any, timeout: float | None = None,
               state_url: str | None = None, app: Any = None) -> RunResult:
    """Tell ``observer`` the plan, every streamed event, then the status; the run's result."""
    from .fleet_state import FleetState

    fs = FleetState(state_url or config.state_url())
    spec = fs.spec(run_id) or {}
    order = list((spec.get("plan") or {}).get("order") or [])
    # No step counts as done yet: the stream is read from its start, so every step that
    # finished before we came is replayed to the observer.
    observer("plan", {"order": order, "done": []})
    result = wait_for_run(run_id, timeout=timeout, observer=observer, app=app, state_url=state_url)
    if result.status in FINISHED:
        observer("status", {"status": result.status})
    return result
