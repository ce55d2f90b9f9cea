"""Acting on runs: ``cancel``, ``retry`` and ``skip``, each read back after it is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..exceptions import StoreUnavailable
from ..executors.control import cancel_run, repair_run
from ..state.locate import LocatedRun
from .inspect import locate
from .models import ActionResult


def _quiet(kind: str, info: dict[str, Any]) -> None:
    return None


def _writable(located: LocatedRun) -> LocatedRun:
    """A fleet run must be changed where the fleet reads it, never in a stand-in file."""
    if located.warning and located.doc.get("mode") == "fleet":
        raise StoreUnavailable(located.warning, hint="the run lives in Redis; start it or fix the URL, then retry")
    return located


def _read_back(run: str, base_dir: str | Path | None) -> str | None:
    return locate(run, base_dir=base_dir).doc.get("status")


def cancel(run: str, *, base_dir: str | Path | None = None) -> ActionResult:
    """Record the run cancelled and stop what runs it; the status as read back."""
    located = _writable(locate(run, base_dir=base_dir))
    cancel_run(located)
    status = _read_back(run, base_dir)
    message = (f"run {located.run_id} cancelled" if status == "cancelled"
               else f"run {located.run_id} is {status}: it ended before the cancel took effect")
    return ActionResult(run_id=located.run_id, action="cancel", status=status, message=message)


def _repair(action: str, run: str, step: str, *, wait: bool, observer: Any,
            base_dir: str | Path | None) -> ActionResult:
    located = _writable(locate(run, base_dir=base_dir))
    result = repair_run(located, action, step, observer=observer or _quiet, wait=wait)
    status = result.status if result is not None else _read_back(run, base_dir)
    verb = "runs again" if action == "retry" else "is skipped"
    message = f"run {located.run_id}: step '{step}' {verb}; the run is {status}"
    return ActionResult(run_id=located.run_id, action=action, status=status, message=message,
                        result=result)


def retry(run: str, step: str, *, wait: bool = False, observer: Any = None,
          base_dir: str | Path | None = None) -> ActionResult:
    """Run ``step`` again (a batch: its failed items) and continue the run."""
    return _repair("retry", run, step, wait=wait, observer=observer, base_dir=base_dir)


def skip(run: str, step: str, *, wait: bool = False, observer: Any = None,
         base_dir: str | Path | None = None) -> ActionResult:
    """Record ``step`` skipped and continue the run."""
    return _repair("skip", run, step, wait=wait, observer=observer, base_dir=base_dir)
