"""Acting on runs: ``cancel``, ``retry``, ``skip`` and ``resume_detached``, each read back after it is written.

A fleet run is handed back to the workers and the call returns.  A local run is
continued by a process: this one (``retry``/``skip``, until the run ends) or, with
``detach``, a new ``yaml-workflow`` process of its own, so that a caller that must stay
responsive (the dashboard) neither runs steps itself nor is stopped by a ``cancel``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..exceptions import ResumeRefused, StoreUnavailable, UsageError
from ..executors.control import cancel_run, repair_run
from ..state.locate import LocatedRun
from .inspect import locate, step_states
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


DETACHED_LOG = Path(".ywf") / "actions.log"  # in the workspace: what detached processes printed
_REFUSAL_WAIT = 5.0  # seconds a detached process has to be refused before the call returns


def _detach(located: LocatedRun, argv: list[str], action: str, done: str) -> ActionResult:
    """Continue a local run in a new ``yaml-workflow`` process; refusals come back as errors."""
    if located.workspace is None:
        raise UsageError(f"run {located.run_id} has no workspace on this machine to continue it in")
    log = located.workspace / DETACHED_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    start = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "yaml_workflow", *argv], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped when it ends
    before = located.doc.get("status")
    deadline = time.monotonic() + _REFUSAL_WAIT
    # A refusal (live lease, unknown step, changed steps) comes before any step runs.
    while time.monotonic() < deadline and proc.poll() is None:
        now = _read_back(str(located.workspace), None)
        if now == "running" and before != "running":
            break  # it took the run over
        time.sleep(0.05)
    if proc.poll() not in (None, 0):
        with open(log, "rb") as fh:
            fh.seek(start)
            lines = fh.read().decode(errors="replace").strip().splitlines()
        raise ResumeRefused(lines[-1].removeprefix("error: ") if lines else f"{action} exited {proc.returncode}")
    status = _read_back(str(located.workspace), None)
    return ActionResult(run_id=located.run_id, action=action, status=status,
                        message=f"run {located.run_id}: {done} in process {proc.pid}; the run is {status}")


def _repair(action: str, run: str, step: str, *, wait: bool, observer: Any,
            base_dir: str | Path | None, detach: bool = False) -> ActionResult:
    located = _writable(locate(run, base_dir=base_dir))
    verb = "runs again" if action == "retry" else "is skipped"
    if detach and located.doc.get("mode") != "fleet":
        names = [row.step for row in step_states(located.doc)]
        if step not in names:
            raise UsageError(f"run {located.run_id} has no step '{step}'",
                             hint=f"its steps: {', '.join(names[:20])}")
        return _detach(located, [action, str(located.workspace), "--step", step], action,
                       f"step '{step}' {verb}")
    result = repair_run(located, action, step, observer=observer or _quiet, wait=wait)
    status = result.status if result is not None else _read_back(run, base_dir)
    message = f"run {located.run_id}: step '{step}' {verb}; the run is {status}"
    return ActionResult(run_id=located.run_id, action=action, status=status, message=message,
                        result=result)


def retry(run: str, step: str, *, wait: bool = False, observer: Any = None,
          base_dir: str | Path | None = None, detach: bool = False) -> ActionResult:
    """Run ``step`` again (a batch: its failed items) and continue the run.

    With ``detach``, a local run goes on in a process of its own and the call returns.
    """
    return _repair("retry", run, step, wait=wait, observer=observer, base_dir=base_dir, detach=detach)


def skip(run: str, step: str, *, wait: bool = False, observer: Any = None,
         base_dir: str | Path | None = None, detach: bool = False) -> ActionResult:
    """Record ``step`` skipped and continue the run (``detach`` as for :func:`retry`)."""
    return _repair("skip", run, step, wait=wait, observer=observer, base_dir=base_dir, detach=detach)


def resume_detached(run: str, *, base_dir: str | Path | None = None) -> ActionResult:
    """Resume a failed, cancelled or interrupted run where it ran, without waiting for it.

    A fleet run goes back to the workers; a local run goes on in a process of its own.
    """
    located = _writable(locate(run, base_dir=base_dir))
    if located.doc.get("mode") == "fleet":
        from .start import resume

        resume(located.run_id, fleet=True, wait=False)
        status = _read_back(run, base_dir)
        return ActionResult(run_id=located.run_id, action="resume", status=status,
                            message=f"run {located.run_id} resumed on the fleet; the run is {status}")
    return _detach(located, ["run", "--resume", "--workspace", str(located.workspace)], "resume",
                   "resumed")
