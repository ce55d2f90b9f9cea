"""Idempotent submits: one run per idempotency key, however many submits race with it.

``submit --idempotency-key K`` (and the worker's submit of a schedule's tick, with the
key ``schedule:<name>:<tick>``) binds K to a run id chosen in advance, atomically; the
submit that bound it creates the run, every other one returns that run.  The binding
also records digests of the workflow and of the params, so the same key with another
workflow or other params is refused (exit 2) rather than answered with a run that is
not the one asked for.  See :mod:`yaml_workflow.state.stores.redis.idempotency`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from ...engine.lifecycle import new_run_id
from ...engine.request import RunRequest
from ...exceptions import StoreUnavailable, UsageError
from ...spec.models import Workflow
from ...spec.params import resolve_params
from ...state.stores import open_store
from ...state.stores.redis import Binding, IdempotencyKeys
from ...state.stores.redis.idempotency import CREATED
from . import config
from .preflight import check_reachable
from .submit import submit_run

# Seconds a binding stays `pending` while its submit creates the run; past that, a
# submit that finds it (its creator died half-way) may take it over.
PENDING_FOR = 60.0
POLL = 0.05
MAX_KEY_LENGTH = 256


@dataclass(frozen=True)
class Submitted:
    """What an idempotent submit did."""

    run_id: str
    workspace: str
    existing: bool  # True: an earlier submit with the key made the run


def check_key(key: str) -> None:
    """A key is 1-256 printable characters (it is part of a Redis key and of messages)."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise UsageError(f"--idempotency-key {key[:40]!r}: give 1 to {MAX_KEY_LENGTH} printable characters")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def digests(workflow: Workflow, args: dict[str, Any], request: RunRequest) -> tuple[str, str]:
    """(workflow digest, params digest): what makes two submits "the same" for a key.

    The workflow's definition counts, not where its file lies (CI retries check out
    elsewhere); the params count as resolved (``n=1`` and ``n=01`` of an integer agree),
    together with the run options (flow, start step, skipped steps).
    """
    definition = workflow.model_dump(mode="json", exclude={"source"})
    options = {"flow": request.flow, "start_from": request.start_from, "skip_steps": sorted(request.skip_steps)}
    return _digest(definition), _digest({"params": args, "options": options})


def _refuse(key: str, found: Binding, workflow: Workflow, workflow_digest: str) -> UsageError:
    what = (f"workflow '{found.workflow}'" if found.workflow != workflow.name
            else "another version of the workflow" if found.workflow_digest != workflow_digest
            else "other params or run options")
    return UsageError(f"idempotency key '{key}' is bound to run {found.run_id}, submitted with {what}",
                      hint="use another key for a different run; the key frees itself after "
                           "YAML_WORKFLOW_IDEMPOTENCY_TTL")


def submit_once(request: RunRequest, key: str, *, queue: str | None = None, export_env: bool = True,
                app: Any = None) -> Submitted:
    """Submit ``request`` unless ``key`` already made a run; the run either way."""
    check_key(key)
    workflow = request.workflow
    if workflow is None:
        raise UsageError("submit needs a workflow file")
    # No param error may quote a declared secret's value (submit_run checks the secrets).
    hidden = [request.environ[name] for name in workflow.secrets if request.environ.get(name)]
    args = resolve_params(workflow, request.params, hidden)
    workflow_digest, params_digest = digests(workflow, args, request)
    state = request.state_url or config.state_url()
    check_reachable(state, "state store", StoreUnavailable)
    bindings = IdempotencyKeys(state)
    mine = Binding(run_id=new_run_id(), workflow=workflow.name, workflow_digest=workflow_digest,
                   params_digest=params_digest, pending_until=time.time() + PENDING_FOR)
    deadline = time.monotonic() + PENDING_FOR + 10
    while True:
        bound, found = bindings.bind(key, mine)
        if bound:
            break
        if found is None:
            raise UsageError(f"idempotency key '{key}' holds something that is not a run binding",
                             hint="use another key")
        if (found.workflow_digest, found.params_digest) != (workflow_digest, params_digest):
            raise _refuse(key, found, workflow, workflow_digest)
        if found.state == CREATED:
            return Submitted(found.run_id, found.workspace, existing=True)
        if time.time() > found.pending_until:
            # Its submit died while creating the run: the run exists, or we take the key over.
            store = open_store(state)
            if store.exists(found.run_id):
                workspace = str(store.load(found.run_id).get("workspace") or "")
                bindings.replace(key, found, found.created(workspace))
                return Submitted(found.run_id, workspace, existing=True)
            if bindings.replace(key, found, mine):
                break
            continue
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"idempotency key '{key}': its run {found.run_id} is still being "
                                   "created by another submit", hint="try again in a minute")
        time.sleep(POLL)  # another submit is creating the run right now: milliseconds
    try:
        run_id = submit_run(request, queue=queue, export_env=export_env, app=app, run_id=mine.run_id)
    except BaseException:
        bindings.release(key, mine)  # nothing was made for the key: a retry may bind it again
        raise
    workspace = str(request.workspace or "")
    bindings.replace(key, mine, mine.created(workspace))
    return Submitted(run_id, workspace, existing=False)
