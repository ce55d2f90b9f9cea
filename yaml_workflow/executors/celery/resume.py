"""``submit --resume``: continue a failed, cancelled or stalled run on the fleet.

The decisions are the local resume's (``engine.resume.decide``); what differs is the
fleet bookkeeping.  The run's fleet keys (done markers, join counters, ``remaining``,
the namespace of finished steps, the compiled spec) are rebuilt from the run's
document, whether Redis still holds it or it comes back from the workspace's JSON
mirror, so one code path serves "failed on the fleet", "failed locally" and "Redis lost
it".  Then the ready steps are enqueued exactly as ``submit`` enqueues roots.

Two resumes of one run at once: the run's resume lock (a ``redis.lock.Lock`` that
expires if its holder dies) lets one through and refuses the other; a resume that comes after the winner finished
finds the run active (fresh activity, claims) and is refused too.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from redis.exceptions import LockError

from ...engine.lifecycle import check_params, resume_events, reusable_items, trusted_workflow
from ...engine.plan import build_plan
from ...engine.request import RunResult
from ...engine.resume import decide
from ...engine.secrets import Masker, check_secrets
from ...exceptions import BrokerUnavailable, ResumeRefused, RunNotFound, StoreUnavailable
from ...settings import get_settings, mask_url, process_environment
from ...state.document import (
    FINISHED,
    RUNNING,
    now_iso,
    parse_iso,
)
from ...state.lease import lease_is_live
from ...state.mirror import MIRROR_KEY, STATE_FILE, read_state
from ...state.recorder import RunRecorder
from ...state.stores import open_store
from ...state.stores.redis import Committed, FleetState
from . import config
from .app import default_app
from .dispatch import advance, compile_plan
from .follow import wait_for_run
from .preflight import check_reachable, exported_env
from .runtime import FleetRun, ns_entry

# How long the resume lease lives if its holder dies in the middle (seconds).
RESUME_LEASE = 60.0


def stall_after() -> float:
    """Seconds without any recorded transition after which a `running` run with no live
    claim counts as stalled (its message was lost) and may be resumed."""
    return get_settings().effective_stall_after


def _age(doc: dict[str, Any]) -> float:
    moment = parse_iso(doc.get("last_updated"))
    return float("inf") if moment is None else time.time() - moment


def _find(run_id: str, store: Any, workspace: Path | None) -> tuple[dict[str, Any], Path, bool]:
    """The run's document, its workspace, and whether it came from the mirror."""
    from ...state.locate import is_workspace, workspace_roots
    from ...state.stores.json_file import find_run_workspace

    if store.exists(run_id):
        doc = store.load(run_id)
        where = workspace or Path(doc.get("workspace") or ".")
        return doc, where.absolute(), False
    found = None
    if workspace is not None and is_workspace(workspace):
        if str(read_state(workspace).get("workflow_id")) == run_id:
            found = workspace
    if found is None:
        found = find_run_workspace(run_id, workspace_roots([workspace] if workspace else None))
    if found is None:
        raise RunNotFound(
            f"run '{run_id}' is neither in {mask_url(store.url)} nor in a workspace under "
            f"{', '.join(str(r) for r in workspace_roots([workspace] if workspace else None))}",
            hint="pass --workspace DIR (the run's workspace), or set YAML_WORKFLOW_WORKSPACE_ROOT",
        )
    return read_state(found), found.absolute(), True


def _check_idle(run_id: str, doc: dict[str, Any], fs: FleetState, store: Any, lost: bool,
                workspace: Path) -> None:
    """Refuse a run that something still runs: a live claim, a live lease, fresh activity."""
    claims = fs.live_claims(run_id)
    if claims:
        step = claims[0].split("#")[0]
        raise ResumeRefused(f"run {run_id} is already running on the fleet (step '{step}' is running now)",
                            hint=f"wait for it, or `yaml-workflow cancel {run_id}` first")
    holder = store.lease_holder(run_id) if not lost else _file_lease(run_id, workspace)
    if lease_is_live(holder):
        raise ResumeRefused(f"run {run_id} is already running on {holder.host} pid {holder.pid}",
                            hint="wait for it to stop, or cancel it")
    if lost or doc.get("status") != RUNNING:
        return
    # A `running` run with no claim: its steps may be queued, or waiting for a retry,
    # or the messages may be gone.  Only the last counts as stalled.
    waiting = fs.waiting_retries(run_id)
    age = _age(doc)
    if waiting or age < stall_after():
        raise ResumeRefused(
            f"run {run_id} is already running on the fleet (last change {age:.0f}s ago)",
            hint=f"a run counts as stalled after {stall_after():g}s without a change "
                 "(YAML_WORKFLOW_STALL_AFTER); follow it with `yaml-workflow status`")


def _file_lease(run_id: str, workspace: Path) -> Any:
    """The lease of a run kept in its workspace (a local run with the file store)."""
    from ...state.stores.json_file import JsonFileStore

    files = JsonFileStore(root=workspace.parent)
    files.use_workspace(run_id, workspace)
    return files.lease_holder(run_id)


def _fleet_keys(fs: FleetState, run_id: str, spec: dict[str, Any], done: set[str],
                ns: dict[str, str], rerun: list[str]) -> tuple[list[str], int]:
    """Replace the run's fleet bookkeeping with what the resume starts from, in one
    transaction; the steps to enqueue and how many remain."""
    order, deps = spec["plan"]["order"], spec["deps"]
    remaining = sum(1 for n in order if n not in done)
    fields: dict[str, Any] = {"status": "running", "remaining": remaining, "gen": spec["gen"]}
    for name in order:
        if name in done:
            # A stale message of a done step finds it done and dispatches nothing.
            fields.update({f"done:{name}": "1", f"next:{name}": "[]", f"sent:{name}": "1"})
        else:
            fields[f"join:{name}"] = sum(1 for d in deps[name] if d in done)
    ready = [n for n in order if n not in done and all(d in done for d in deps[n])]
    fs.reset_for_resume(run_id, spec, fields, ns, rerun)
    return ready, remaining


def resume_fleet_run(run_id: str, *, from_step: str | None = None,
                     override_params: dict[str, Any] | None = None, force: bool = False,
                     rerun_steps: list[str] | tuple[str, ...] = (),
                     mark_skipped: list[str] | tuple[str, ...] = (),
                     workspace: Path | None = None, wait: bool = False, observer: Any = None,
                     timeout: float | None = None, params: dict[str, Any] | None = None,
                     workflow: Any = None, app: Any = None) -> RunResult | None:
    """Resume ``run_id`` on the fleet; its result with ``wait``, else None once enqueued.

    ``params`` are k=v given without --override-params (they must match the run's);
    ``override_params`` replace the run's; ``workflow`` is a file to compare against
    (default: the workflow stored with the run)."""
    broker, url = config.broker_url(), config.state_url()
    check_reachable(broker, "broker", BrokerUnavailable)
    if url != broker:
        check_reachable(url, "state store", StoreUnavailable)
    fs, store = FleetState(url), open_store(url)
    lock = fs.resume_lock(run_id, RESUME_LEASE)
    if not lock.acquire():
        raise ResumeRefused(f"run {run_id} is being resumed by another command right now",
                            hint=f"follow it with `yaml-workflow status {run_id}`")
    try:
        doc, ws, lost = _find(run_id, store, workspace)
        _check_idle(run_id, doc, fs, store, lost, ws)
        where = str(ws / STATE_FILE) if lost else f"run {run_id}"
        workflow = trusted_workflow(doc, where, workflow)
        check_params(doc, where, override=override_params is not None)
        options = doc.get("options") or {}
        plan = build_plan(workflow, flow=options.get("flow"), skip_steps=options.get("skip_steps") or [])
        secrets = check_secrets(workflow.secrets, process_environment())
        masker = Masker(secrets)
        # Params stored as references to secrets get their values from this environment;
        # the spec stores them as references again.
        decision = decide(workflow, plan, doc, given=override_params or params or {},
                          override_params=override_params is not None, from_step=from_step,
                          force=force, rerun=list(rerun_steps), mark_skipped=list(mark_skipped),
                          secrets=secrets)
        stored_args, arg_secrets = masker.params_for_workers(decision.args)
        if lost or doc.get("mode") != "fleet" or doc.get("workspace") != str(ws):
            # The fleet needs the run in Redis, under an absolute workspace, as a fleet run.
            doc = {**doc, "mode": "fleet", "workspace": str(ws)}
            store.restore_run({k: v for k, v in doc.items() if k != MIRROR_KEY})
        old = fs.spec(run_id) or {}
        records = doc["execution_state"]["step_outputs"]
        env = old["env"] if "env" in old else exported_env(
            process_environment(), list(workflow.secrets), list(secrets.values()))
        spec = {"v": 1, "workflow": workflow.model_dump(mode="json"), "plan": plan.to_dict(),
                **compile_plan(workflow, plan), "args": stored_args, "arg_secrets": arg_secrets, "env": env,
                "workspace": str(ws), "run_number": doc.get("run_number"),
                "timestamp": old.get("timestamp") or now_iso(),
                "queue": old.get("queue") or options.get("queue") or config.DEFAULT_QUEUE,
                # Workers cache a run's spec; a new generation makes them read it again.
                "gen": uuid.uuid4().hex[:12],
                "prior_items": reusable_items(plan, decision, records),
                "trigger": doc.get("trigger") or old.get("trigger")}
        recorder = RunRecorder(store, run_id, ws)
        events = resume_events(doc, decision, mark_skipped, masker=masker, mode="fleet")
        for event in events:
            recorder.record(masker.event(event))
        ns = {n: json.dumps(ns_entry({**records.get(n, {}), "status": records.get(n, {}).get("status")}))
              for n in decision.done if n in records and n not in mark_skipped}
        ns.update({n: json.dumps({"status": "skipped", "result": None}) for n in mark_skipped})
        last_id = fs.last_event_id(run_id)
        ready, remaining = _fleet_keys(fs, run_id, spec, decision.done, ns, decision.rerun)
        run = FleetRun(run_id, spec, fs, store, workflow=workflow, recorder=recorder)
        advance(app or default_app(), run, Committed(new=True, ready=[(n, "") for n in ready], remaining=remaining, status="running"))
        run.recorder.close()
    finally:
        try:
            lock.release()
        except LockError:  # it expired meanwhile (RESUME_LEASE): nothing to give back
            pass
    if not wait:
        return None
    if observer is not None:  # what `run` tells its display first: the plan, what is done
        observer("plan", {"order": list(plan.order), "done": sorted(decision.done)})
    result = wait_for_run(run_id, timeout=timeout, observer=observer, app=app, since=last_id)
    if observer is not None and result.status in FINISHED:
        observer("status", {"status": result.status})
    return result

