"""Manual intervention on a run, wherever it runs: cancel, retry a step, skip a step.

The decisions are the same for every run; what differs is how the executor that runs it
is told.  Each executor offers that through :class:`Executor` (``stop`` a run just
recorded cancelled; ``repair`` a run: continue it with a step reset or skipped), and
this module picks one by the run's mode — it is the only module that knows both.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..engine.cancel import request_cancel
from ..engine.request import RunResult
from ..exceptions import ResumeRefused
from ..state.document import CANCELLED, FINISHED, status_event
from ..state.locate import LocatedRun
from ..state.recorder import RunRecorder


class Executor(Protocol):
    """What control needs of an executor."""

    def stop(self, located: LocatedRun) -> None:
        """Stop what runs the run now (its status already says cancelled)."""

    def repair(self, located: LocatedRun, *, rerun: list[str], skip: list[str], observer: Any,
               wait: bool) -> RunResult | None:
        """Continue the run with ``rerun`` steps reset and ``skip`` steps recorded skipped."""


def executor_for(located: LocatedRun) -> Executor:
    """The executor of a run: the fleet's for a fleet run, else this process's."""
    if located.doc.get("mode") == "fleet":
        from .celery.control import FleetExecutor

        return FleetExecutor()
    from .local_run import LocalExecutor

    return LocalExecutor()


def cancel_run(located: LocatedRun) -> None:
    """Record `cancelled` and tell the executor (marker file; SIGTERM locally, revoke on the fleet)."""
    status = located.doc.get("status")
    if status in FINISHED:
        raise ResumeRefused(f"run {located.run_id} already {status}; there is nothing to cancel")
    if located.workspace is not None:
        request_cancel(located.workspace)
    recorder = RunRecorder(located.store, located.run_id, located.workspace)
    recorder.record(status_event(CANCELLED))
    recorder.close()
    executor_for(located).stop(located)


def repair_run(located: LocatedRun, action: str, step: str, *, observer: Any, wait: bool) -> RunResult | None:
    """`retry`/`skip` STEP of a run and continue it; None when handed to the fleet unwaited."""
    return executor_for(located).repair(
        located, rerun=[step] if action == "retry" else [], skip=[step] if action == "skip" else [],
        observer=observer, wait=wait)
