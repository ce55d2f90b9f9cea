"""Manual intervention on a run, wherever it runs: cancel, retry a step, skip a step.

A local run is continued in this process (a resume with the step reset or skipped); a
fleet run is handed back to the workers.  Cancel records the `cancelled` status, which
every executor checks before it starts a step, and leaves a marker in the workspace so
a local run notices it without reading the store.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from ..engine.request import RunRequest, RunResult
from ..exceptions import ResumeRefused
from ..state.document import CANCELLED, FINISHED, status_event
from ..state.recorder import RunRecorder

CANCEL_MARKER = Path(".ywf") / "cancel"


def cancel_requested(workspace: Path) -> bool:
    """True once `cancel` has been asked for this workspace's run (one stat call)."""
    return (workspace / CANCEL_MARKER).exists()


def cancel_run(located: Any) -> None:
    """Record `cancelled` and tell the executors (marker file; revoke on the fleet)."""
    status = located.doc.get("status")
    if status in FINISHED:
        raise ResumeRefused(f"run {located.run_id} already {status}; there is nothing to cancel")
    if located.workspace is not None:
        marker = located.workspace / CANCEL_MARKER
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    recorder = RunRecorder(located.store, located.run_id, located.workspace)
    recorder.record(status_event(CANCELLED))
    recorder.close()
    if located.doc.get("mode") == "fleet":
        from .celery.control import revoke_run

        revoke_run(located.run_id)
    else:
        _stop_local_process(located)


def _stop_local_process(located: Any) -> None:
    """A local run alive on this host is told to stop now (SIGTERM: it cancels itself)."""
    from ..state.document import HOST
    from ..state.store import lease_is_live

    try:
        holder = located.store.lease_holder(located.run_id)
    except Exception:  # noqa: BLE001 - no lease to read: the marker and status still stop it
        return
    if holder is not None and holder.host == HOST and lease_is_live(holder):
        try:
            os.kill(holder.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def repair_run(located: Any, action: str, step: str, *, observer: Any, wait: bool) -> RunResult | None:
    """`retry`/`skip` STEP of a run and continue it; None when handed to the fleet unwaited."""
    if located.doc.get("mode") == "fleet":
        from .celery.submit import resume_fleet_run

        return resume_fleet_run(
            located.run_id,
            rerun_steps=[step] if action == "retry" else [],
            mark_skipped=[step] if action == "skip" else [],
            wait=wait, observer=observer,
        )
    from .local_run import resume_run

    if located.workspace is not None:
        (located.workspace / CANCEL_MARKER).unlink(missing_ok=True)
    request = RunRequest(
        workflow=None, workspace=located.workspace, observer=observer, resume=True,
        rerun_steps=[step] if action == "retry" else [],
        mark_skipped=[step] if action == "skip" else [],
    )
    return resume_run(request)
