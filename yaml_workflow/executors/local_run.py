"""Start or resume a run in this process: params, secrets, workspace, state, lease, plan.

Everything that can refuse the run (params, secrets, plan options, resume checks, a
live lease) happens before the first step, so a refused command changes nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from ..engine.cancel import clear_cancel
from ..engine.context import RunContext
from ..engine.hooks import pause_point
from ..engine.integrity import sign
from ..engine.lifecycle import (
    check_params,
    fresh_workspace,
    new_run_id,
    resume_events,
    reusable_items,
    run_header,
    trusted_workflow,
    workflow_env,
)
from ..engine.plan import Plan, build_plan
from ..engine.request import RunRequest, RunResult
from ..engine.resume import decide
from ..engine.secrets import Masker, check_secrets
from ..engine.workspace import latest_workspace
from ..exceptions import (
    LeaseHeld,
    ResumeRefused,
    RunNotFound,
    StateFileError,
    UsageError,
    WorkflowError,
)
from ..settings import get_settings
from ..spec.models import Workflow
from ..spec.params import resolve_params
from ..state.document import HOST, history_event, now_iso
from ..state.lease import lease_is_live
from ..state.lease_keeper import LeaseKeeper
from ..state.locate import LocatedRun
from ..state.mirror import JOURNAL_DIR, STATE_FILE, read_state
from ..state.processes import ProcessRef, kill_group
from ..state.recorder import RunRecorder
from ..state.store import Store
from ..state.stores import open_store
from ..state.stores.json_file import JsonFileStore
from .local import execute_plan, finish_run, outputs_of


def _store_for(request: RunRequest, base_dir: Path) -> Store:
    return open_store(request.state_url or get_settings().state_url, root=str(base_dir))


def _environment(workflow: Workflow, request: RunRequest) -> tuple[dict[str, str], Masker]:
    secrets = check_secrets(workflow.secrets, request.environ)
    return dict(request.environ), Masker(secrets)


def _options(request: RunRequest) -> dict[str, Any]:
    return {"flow": request.flow, "start_from": request.start_from, "skip_steps": list(request.skip_steps)}


def start_run(request: RunRequest) -> RunResult:
    """A fresh run of ``request.workflow``."""
    workflow = request.workflow
    if workflow is None:
        raise UsageError("a workflow file is needed to start a run")
    environ, masker = _environment(workflow, request)
    args = resolve_params(workflow, request.params, masker.values)  # no error quotes a secret
    environ = workflow_env(workflow, args, environ)
    plan = build_plan(workflow, flow=request.flow, start_from=request.start_from,
                      skip_steps=request.skip_steps)
    workspace, number = fresh_workspace(workflow, workspace=request.workspace,
                                        base_dir=request.base_dir or Path("runs"))
    run_id = new_run_id()
    store = _store_for(request, workspace.parent)
    recorder = RunRecorder(store, run_id, workspace)
    rc = RunContext(workflow, run_id, workspace, args, recorder, run_number=number,
                    environ=environ, masker=masker, timestamp=now_iso(), observer=request.observer,
                    trigger=request.trigger)
    header = run_header(workflow, run_id=run_id, workspace=workspace, run_number=number, params=args,
                        plan=plan, mode="local", options=_options(request), trigger=request.trigger)
    recorder.start(sign(masker.event(header)))
    lease = LeaseKeeper(store, run_id)
    lease.acquire()
    return _drive(rc, plan, lease, set(), [history_event("start")])


def _stop_on_sigterm(rc: RunContext) -> Any:
    """SIGTERM (what `cancel` sends a local run) cancels the run: no further step starts,
    the running step's subprocesses are killed, and the run ends `cancelled`, recorded."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def cancel(signum: int, frame: Any) -> None:
        rc.cancelled.set()
        from ..tasks.builtin.shell import terminate_running

        terminate_running()

    return signal.signal(signal.SIGTERM, cancel)


def _drive(rc: RunContext, plan: Plan, lease: LeaseKeeper, done: set[str],
           opening: list[dict[str, Any]]) -> RunResult:
    """Run the plan under a lease we already hold; always release it and close the state."""
    previous = _stop_on_sigterm(rc)
    try:
        for event in opening:
            rc.record(event)
        failure = execute_plan(rc, plan, done)
        status = finish_run(rc, failure, len(plan.order))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        lease.release()
        rc.recorder.close()
    return RunResult(
        run_id=rc.run_id, status=status, workflow=rc.workflow.name, workspace=str(rc.workspace),
        outputs=outputs_of(rc, plan.order), error=failure.error, failed_step=failure.step,
    )


def find_resumable(request: RunRequest, store: Store) -> tuple[str, Path]:
    """The run a `run --resume` means: --workspace, else the latest under --base-dir."""
    if request.workspace is not None:
        workspace = request.workspace.absolute()
    else:
        workflow = request.workflow
        base = request.base_dir or Path("runs")
        found = latest_workspace(base, workflow.name) if workflow else None
        if found is None:
            raise ResumeRefused(
                f"no run of '{workflow.name if workflow else '?'}' under {base} to resume",
                hint="pass --workspace DIR, or --base-dir where the runs are",
            )
        workspace = found.absolute()
    if not (workspace / STATE_FILE).exists() and not (workspace / JOURNAL_DIR).exists():
        raise ResumeRefused(f"{workspace} holds no run state ({STATE_FILE})",
                            hint="pass the workspace of the run to resume")
    doc = read_state(workspace)
    return str(doc["workflow_id"]), workspace


def resume_run(request: RunRequest) -> RunResult:
    """Continue a failed or interrupted run in its workspace.

    The lease is taken first and the run's state read after it: two resumes of one run
    cannot both decide on the same state — the second finds the lease held, or, once
    the first has finished, a run that no longer needs resuming.
    """
    file_store = open_store("file://", root=str(request.base_dir or "runs"))
    run_id, workspace = find_resumable(request, file_store)
    store = _store_for(request, workspace.parent)
    if isinstance(store, JsonFileStore):
        # The run id alone could find a copy of this workspace under the same root.
        store.use_workspace(run_id, workspace)
    lease = LeaseKeeper(store, run_id)
    pause_point("resume_before_lease")
    try:
        lease.acquire()
    except LeaseHeld as err:
        raise ResumeRefused(err.message, hint=err.hint) from None
    try:
        pause_point("resume_after_lease")
        rc, plan, done, opening = _prepare_resume(request, store, run_id, workspace)
    except BaseException:
        lease.release()
        raise
    return _drive(rc, plan, lease, done, opening)


def _prepare_resume(request: RunRequest, store: Store, run_id: str,
                    workspace: Path) -> tuple[RunContext, Plan, set[str], list[dict[str, Any]]]:
    """Under the lease: read the run, decide what runs again, stop what outlived its owner."""
    try:
        doc = store.load(run_id)
    except (RunNotFound, StateFileError):
        if store.is_mirror:
            raise
        doc = read_state(workspace)  # the store lost it: the mirror has it all
        store.restore_run(doc)
    where = str(workspace / STATE_FILE) if store.is_mirror else f"run {run_id}"
    workflow = trusted_workflow(doc, where, request.workflow)
    check_params(doc, where, override=request.override_params)
    options = doc.get("options") or {}
    plan = build_plan(workflow, flow=options.get("flow"), skip_steps=options.get("skip_steps") or [])
    environ, masker = _environment(workflow, request)
    # Params stored as references to secrets get their values from this environment.
    decision = decide(workflow, plan, doc, given=request.params,
                      override_params=request.override_params,
                      from_step=request.from_step, force=request.force,
                      rerun=request.rerun_steps, mark_skipped=request.mark_skipped,
                      secrets=masker.by_name)
    environ = workflow_env(workflow, decision.args, environ)
    records = doc["execution_state"]["step_outputs"]
    stop_survivors(records)
    recorder = RunRecorder(store, run_id, workspace)
    rc = RunContext(workflow, run_id, workspace, decision.args, recorder,
                    run_number=doc.get("run_number"), environ=environ, masker=masker,
                    timestamp=now_iso(), observer=request.observer, trigger=doc.get("trigger"))
    rc.load_steps({n: r for n, r in records.items() if n in decision.done})
    rc.prior_items = reusable_items(plan, decision, records)
    clear_cancel(workspace)  # resuming a cancelled run undoes the cancel
    opening = resume_events(doc, decision, request.mark_skipped, masker=masker)
    for name in request.mark_skipped:
        rc.set_step(name, {"status": "skipped", "result": None})
    return rc, plan, decision.done, opening


def stop_survivors(records: dict[str, Any]) -> list[str]:
    """Kill the subprocesses of steps that were running when their run's process died
    (we hold the lease, so that process is gone) and outlived it; the steps concerned."""
    stopped = []
    for name, record in records.items():
        proc = record.get("proc")
        if record.get("status") in ("running", "retrying") and proc and proc.get("host") == HOST:
            if kill_group(ProcessRef.from_dict(proc)):
                stopped.append(name)
    return stopped


class LocalExecutor:
    """Control of runs that run in a process of this host (see :mod:`.control`)."""

    def stop(self, located: LocatedRun) -> None:
        """A local run alive on this host is told to stop now (SIGTERM: it cancels itself)."""
        try:
            holder = located.store.lease_holder(located.run_id)
        except WorkflowError:
            return  # no lease to read: the marker and the status still stop it
        if holder is not None and holder.host == HOST and lease_is_live(holder):
            try:
                os.kill(holder.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def repair(self, located: LocatedRun, *, rerun: list[str], skip: list[str], observer: Any,
               wait: bool) -> RunResult:
        """Continue the run here, now, with the step reset or skipped."""
        if located.workspace is not None:
            clear_cancel(located.workspace)
        request = RunRequest(workflow=None, workspace=located.workspace, observer=observer, resume=True,
                             rerun_steps=rerun, mark_skipped=skip)
        return resume_run(request)
