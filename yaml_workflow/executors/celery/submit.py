"""Submit a run to the fleet and follow it.

``submit_run`` refuses everything it can before it creates anything (params, secrets,
plan options, unreachable broker or Redis, a step limit the visibility timeout cannot
cover); then it creates the workspace, the run in the store, the compiled spec, and
enqueues the first steps.  Workers need neither the YAML file nor the submitter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from kombu.exceptions import OperationalError

from ...engine.integrity import sign
from ...engine.lifecycle import fresh_workspace, new_run_id, run_header, workflow_env
from ...engine.plan import build_plan
from ...engine.request import RunRequest
from ...engine.secrets import Masker, check_secrets
from ...exceptions import (
    BrokerUnavailable,
    StoreUnavailable,
    UsageError,
)
from ...settings import get_settings, mask_url
from ...spec.params import resolve_params
from ...state.document import history_event, now_iso
from ...state.recorder import RunRecorder
from ...state.stores import open_store
from ...state.stores.redis import Committed, FleetState
from . import config
from .app import default_app
from .dispatch import advance, compile_plan
from .preflight import check_reachable, exported_env


def submit_run(request: RunRequest, *, queue: str | None = None, export_env: bool = True,
               app: Any = None, run_id: str | None = None) -> str:
    """Create the run in Redis and enqueue its first steps; the run id (the workspace
    it created is set in ``request.workspace``).  ``run_id``: the id to give it (an
    idempotent submit chooses it before it binds its key)."""
    from .runtime import FleetRun

    workflow = request.workflow
    if workflow is None:
        raise UsageError("submit needs a workflow file")
    secrets = check_secrets(workflow.secrets, request.environ)
    masker = Masker(secrets)
    args = resolve_params(workflow, request.params, masker.values)  # no error quotes a secret
    # Redis holds a param equal to a secret as a reference: workers take the value from
    # their own environment.
    stored_args, arg_secrets = masker.params_for_workers(args)
    workflow_env(workflow, args, dict(request.environ))  # an env: value that cannot render: exit 2 now
    plan = build_plan(workflow, flow=request.flow, start_from=request.start_from,
                      skip_steps=request.skip_steps)
    compiled = compile_plan(workflow, plan)
    broker, state = config.broker_url(), request.state_url or config.state_url()
    check_reachable(broker, "broker", BrokerUnavailable)
    if state != broker:
        check_reachable(state, "state store", StoreUnavailable)
    fs = FleetState(state)

    base = (request.base_dir or Path(get_settings().workspace_root)).absolute()
    workspace, number = fresh_workspace(workflow, workspace=request.workspace, base_dir=base)
    run_id = run_id or new_run_id()
    env = exported_env(dict(request.environ), list(workflow.secrets), list(secrets.values())) if export_env else {}
    queue = queue or config.DEFAULT_QUEUE
    header = run_header(workflow, run_id=run_id, workspace=workspace, run_number=number, params=args,
                        plan=plan, mode="fleet",
                        options={"flow": request.flow, "start_from": request.start_from,
                                 "skip_steps": list(request.skip_steps), "queue": queue},
                        trigger=request.trigger)
    spec = {"v": 1, "workflow": header["workflow"], "plan": header["plan"], **compiled, "args": stored_args,
            "arg_secrets": arg_secrets, "env": env, "workspace": str(workspace), "run_number": number,
            "timestamp": now_iso(), "queue": queue, "trigger": header["trigger"]}
    store = open_store(state)
    recorder = RunRecorder(store, run_id, workspace)
    recorder.start(sign(masker.event(header)), snapshot=False)  # compacted by close() below
    recorder.record(history_event("submit"))
    fs.create(run_id, spec, len(plan.order))
    run = FleetRun(run_id, spec, fs, store, workflow=workflow, recorder=recorder)
    roots = [(name, "") for name in compiled["roots"]]
    try:
        advance(app or default_app(), run, Committed(new=True, ready=roots, remaining=len(plan.order), status="running"))
    except (OSError, redis.RedisError, OperationalError) as err:  # the broker went away just now
        try:
            run.recorder.close()  # the workspace's state file still shows the created run
        except Exception:  # noqa: BLE001 - the journal holds it either way
            pass
        raise BrokerUnavailable(f"cannot enqueue run {run_id} on {mask_url(broker)}: {err}",
                                hint="the run is created; start it again with `yaml-workflow submit` "
                                     "once the broker is back") from None
    run.recorder.close()
    request.workspace = workspace
    return run_id
