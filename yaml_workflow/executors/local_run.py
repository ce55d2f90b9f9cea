"""Start or resume a run in this process: params, secrets, workspace, state, lease, plan.

Everything that can refuse the run (params, secrets, plan options, resume checks, a
live lease) happens before the first step, so a refused command changes nothing.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..engine.context import RunContext
from ..engine.plan import Plan, build_plan
from ..engine.request import RunRequest, RunResult
from ..engine.resume import decide
from ..engine.secrets import Masker, check_secrets
from ..engine.workspace import create_workspace, latest_workspace, prepare, run_number_of
from ..exceptions import (
    LeaseHeld,
    ResumeRefused,
    RunNotFound,
    SpecError,
    StateFileError,
    TemplateError,
    UsageError,
    WorkflowError,
)
from ..settings import get_settings
from ..spec.models import Workflow
from ..spec.params import resolve_params
from ..state.document import RUNNING, history_event, now_iso, status_event, step_event
from ..state.lease import LeaseKeeper
from ..state.mirror import JOURNAL_DIR, STATE_FILE, read_state
from ..state.recorder import RunRecorder
from ..state.store import Store, open_store
from ..state.stores.json_file import JsonFileStore
from .control import CANCEL_MARKER
from .local import execute_plan, finish_run, outputs_of


def new_run_id() -> str:
    """A unique run id (also the `<id>` of Redis keys and `workflow.run_id`)."""
    return uuid.uuid4().hex[:16]


def _store_for(request: RunRequest, base_dir: Path) -> Store:
    return open_store(request.state_url or get_settings().state_url, root=str(base_dir))


def _environment(workflow: Workflow, request: RunRequest) -> tuple[dict[str, str], Masker]:
    secrets = check_secrets(workflow.secrets, request.environ)
    return dict(request.environ), Masker(secrets.values())


def workflow_env(workflow: Workflow, args: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with the workflow's ``env:`` rendered; a value that does not render
    refuses the run before its workspace or state is touched (exit 2)."""
    probe = RunContext(workflow, "", Path("."), args, None, environ=dict(environ))
    try:
        probe.render_env()
    except TemplateError as err:
        raise SpecError(
            f"env: {err.message}", file=workflow.source,
            hint="the workflow's env: values are rendered with args before any step runs",
        ) from None
    return probe.environ


def _fresh_workspace(request: RunRequest, workflow: Workflow) -> tuple[Path, int]:
    if request.workspace is not None:
        path = request.workspace.absolute()
        if (path / STATE_FILE).exists() or (path / JOURNAL_DIR).exists():
            # A new run in a used workspace starts a new state; the old journal must not
            # be merged into it.
            (path / STATE_FILE).unlink(missing_ok=True)
            shutil.rmtree(path / ".ywf", ignore_errors=True)
        prepare(path)
        return path, run_number_of(path) or 1
    base = request.base_dir or Path("runs")
    return create_workspace(base, workflow.name)


def _header(rc: RunContext, plan: Plan, request: RunRequest) -> dict[str, Any]:
    workflow = rc.workflow
    return {
        "t": "run",
        "at": time.time(),
        "workflow_id": rc.run_id,
        "name": workflow.name,
        "start_time": now_iso(),
        "status": RUNNING,
        "workflow_file": workflow.source,
        "workspace": str(rc.workspace),
        "run_number": rc.run_number,
        "params": rc.args,
        "fingerprints": {},
        "workflow": workflow.model_dump(mode="json"),
        "plan": plan.to_dict(),
        "mode": "local",
        "options": {"flow": request.flow, "start_from": request.start_from,
                    "skip_steps": list(request.skip_steps)},
    }


def start_run(request: RunRequest) -> RunResult:
    """A fresh run of ``request.workflow``."""
    workflow = request.workflow
    if workflow is None:
        raise UsageError("a workflow file is needed to start a run")
    args = resolve_params(workflow, request.params)
    environ, masker = _environment(workflow, request)
    environ = workflow_env(workflow, args, environ)
    plan = build_plan(workflow, flow=request.flow, start_from=request.start_from,
                      skip_steps=request.skip_steps)
    try:
        workspace, number = _fresh_workspace(request, workflow)
    except OSError as err:  # e.g. --workspace/--base-dir names a file, or a read-only place
        where = request.workspace or request.base_dir or Path("runs")
        raise UsageError(
            f"cannot create the run workspace under {where}: {err.strerror or err}",
            hint="--workspace/--base-dir must be a directory you can write to",
        ) from None
    run_id = new_run_id()
    store = _store_for(request, workspace.parent)
    recorder = RunRecorder(store, run_id, workspace)
    rc = RunContext(workflow, run_id, workspace, args, recorder, run_number=number,
                    environ=environ, masker=masker, timestamp=now_iso(), observer=request.observer)
    recorder.start(masker.value(_header(rc, plan, request)))
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
        outputs=outputs_of(rc), error=failure.error, failed_step=failure.step,
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


def reusable_items(plan: Plan, decision: Any, records: dict[str, Any]) -> dict[str, Any]:
    """Batch item records a resume may reuse: not for changed steps or a --from-step re-run."""
    fresh = set(decision.changed)
    if decision.from_step is not None:
        fresh |= set(plan.order[plan.order.index(decision.from_step):])
    return {
        name: records[name]["items"]
        for name in decision.rerun
        if name not in fresh and (records.get(name) or {}).get("items")
    }


def stored_workflow(doc: dict[str, Any], where: str) -> Workflow:
    """The workflow a run stored with itself, checked as strictly as a workflow file."""
    from pydantic import ValidationError

    from ..engine.load import check_workflow
    from ..spec.loader import check_references

    try:
        workflow = Workflow.model_validate(doc.get("workflow"))
        names = workflow.step_names
        if len(set(names)) != len(names):
            raise ValueError("a step name is used twice")
        check_references(workflow)
        check_workflow(workflow)
    except (ValidationError, ValueError, WorkflowError) as err:
        problem = err.one_line() if isinstance(err, WorkflowError) else " ".join(str(err).split())
        raise StateFileError(
            where, f"holds a workflow that does not validate ({problem[:200]}); pass the workflow file"
        ) from None
    return workflow


def resume_run(request: RunRequest) -> RunResult:
    """Continue a failed or interrupted run in its workspace."""
    workflow = request.workflow
    file_store = open_store("file://", root=str(request.base_dir or "runs"))
    run_id, workspace = find_resumable(request, file_store)
    store = _store_for(request, workspace.parent)
    if isinstance(store, JsonFileStore):
        # The run id alone could find a copy of this workspace under the same root.
        store.use_workspace(run_id, workspace)
    try:
        doc = store.load(run_id)
    except (RunNotFound, StateFileError):
        if store.is_mirror:
            raise
        doc = read_state(workspace)  # the store lost it: the mirror has it all
        store.restore_run(doc)
    if workflow is None:
        workflow = stored_workflow(doc, str(workspace / STATE_FILE) if store.is_mirror else f"run {run_id}")
    options = doc.get("options") or {}
    plan = build_plan(workflow, flow=options.get("flow"), skip_steps=options.get("skip_steps") or [])
    decision = decide(workflow, plan, doc, given=request.params,
                      override_params=request.override_params,
                      from_step=request.from_step, force=request.force,
                      rerun=request.rerun_steps, mark_skipped=request.mark_skipped)
    environ, masker = _environment(workflow, request)
    environ = workflow_env(workflow, decision.args, environ)
    recorder = RunRecorder(store, run_id, workspace)
    rc = RunContext(workflow, run_id, workspace, decision.args, recorder,
                    run_number=doc.get("run_number"), environ=environ, masker=masker,
                    timestamp=now_iso(), observer=request.observer)
    records = doc["execution_state"]["step_outputs"]
    rc.load_steps({n: r for n, r in records.items() if n in decision.done})
    rc.prior_items = reusable_items(plan, decision, records)
    # The lease decides between two resumes of one run: the loser records nothing.
    lease = LeaseKeeper(store, run_id)
    try:
        lease.acquire()
    except LeaseHeld as err:
        raise ResumeRefused(err.message, hint=err.hint) from None
    (workspace / CANCEL_MARKER).unlink(missing_ok=True)  # resuming a cancelled run undoes the cancel
    count = 1 + sum(1 for h in doc.get("history", []) if h.get("event") == "resume")
    opening = [
        {"t": "reset", "steps": decision.rerun, "at": time.time()},
        status_event(RUNNING, failed_step=None),
        history_event("resume", count=count, changed=decision.changed,
                      from_step=decision.rerun[0] if decision.rerun else None),
    ]
    if decision.args != doc.get("params"):
        opening.append({"t": "params", "params": decision.args})
    for name in request.mark_skipped:
        opening.append(step_event(name, "skipped", reason="skipped by hand (yaml-workflow skip)"))
        rc.set_step(name, {"status": "skipped", "result": None})
    return _drive(rc, plan, lease, decision.done, opening)
