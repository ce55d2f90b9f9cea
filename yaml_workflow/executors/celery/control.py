"""Stopping a fleet run's tasks: ``cancel RUN`` on a run that runs on the workers.

Cancel is the ``cancelled`` status in the store, which each step task reads before it
runs and before it enqueues a successor (``begin`` and ``commit`` both read it), so a
queued message stops by itself when it is delivered.  Revoking only shortens what is
already on a worker: a step running now is terminated, a message waiting there for its
countdown (a retry) is dropped.  Task ids are found by asking the workers (inspect
active/reserved/scheduled) rather than tracked at enqueue time, so no step pays for it.
"""

from __future__ import annotations

import logging
from typing import Any

from ...engine.request import RunResult
from ...state.locate import LocatedRun
from .app import default_app
from .resume import resume_fleet_run

log = logging.getLogger("yaml_workflow.fleet")

INSPECT_TIMEOUT = 1.0


def _of_run(entries: Any, run_id: str) -> list[tuple[str, bool]]:
    """(task id, is running) of the run's tasks in one inspect reply."""
    found = []
    for _worker, tasks in (entries or {}).items():
        for task in tasks or []:
            request = task.get("request", task)  # `scheduled` wraps the request
            args = request.get("args") or []
            if isinstance(args, (list, tuple)) and args and args[0] == run_id:
                found.append((str(request.get("id")), bool(request.get("time_start"))))
    return found


def revoke_run(run_id: str, app: Any = None) -> list[str]:
    """Revoke the run's tasks the workers hold now (running ones terminated); their ids."""
    app = app or default_app()
    try:
        inspect = app.control.inspect(timeout=INSPECT_TIMEOUT)
        found = (_of_run(inspect.active(), run_id)
                 + _of_run(inspect.reserved(), run_id) + _of_run(inspect.scheduled(), run_id))
    except Exception as err:  # noqa: BLE001 - the status alone still stops the run
        log.warning("could not ask the workers for run %s's tasks: %s", run_id, err)
        return []
    running = sorted({tid for tid, active in found if active})
    waiting = sorted({tid for tid, _ in found} - set(running))
    if running:
        # SIGTERM to the pool child: its claim goes back (runtime's handler), and the
        # message, requeued as a lost worker's, finds the run cancelled when it returns.
        app.control.revoke(running, terminate=True, signal="SIGTERM")
    if waiting:
        app.control.revoke(waiting)
    return running + waiting


class FleetExecutor:
    """Control of runs that run on the workers (see :mod:`...control`)."""

    def stop(self, located: LocatedRun) -> None:
        """Shorten what the workers hold of the run (its status already stops the rest)."""
        revoke_run(located.run_id)

    def repair(self, located: LocatedRun, *, rerun: list[str], skip: list[str], observer: Any,
               wait: bool) -> RunResult | None:
        """Hand the run back to the workers with the step reset or skipped."""
        return resume_fleet_run(located.run_id, rerun_steps=rerun, mark_skipped=skip,
                                wait=wait, observer=observer)
