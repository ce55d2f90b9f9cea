"""A run's lifecycle, the same for both executors: its id, workspace, header and resume.

Everything here happens before the first step or between runs of one workflow: a new
run id, the workspace (created, or reset when a new run reuses one), the ``run``
header every store and the JSON mirror start from, the workflow environment, and what a
resume reads back from a stored run (its workflow, the batch items it may reuse) and
records when it starts (reset, status, history).  The local executor and the fleet
call these; neither has a copy of its own.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from ..exceptions import SpecError, StateFileError, TemplateError, UsageError, WorkflowError
from ..spec.models import Workflow
from ..state.document import RUNNING, history_event, now_iso, status_event, step_event
from ..state.mirror import JOURNAL_DIR, STATE_FILE
from .context import RunContext
from .integrity import params_are_intact, signed_params, workflow_is_intact
from .plan import Plan
from .resume import ResumeDecision, changed_steps
from .secrets import Masker
from .workspace import create_workspace, prepare, run_number_of

SKIPPED_BY_HAND = "skipped by hand (yaml-workflow skip)"


def new_run_id() -> str:
    """A unique run id (also the `<id>` of Redis keys and `workflow.run_id`)."""
    return uuid.uuid4().hex[:16]


def fresh_workspace(workflow: Workflow, *, workspace: Path | None, base_dir: Path) -> tuple[Path, int]:
    """The workspace of a new run and its run number.

    A given ``workspace`` is used as it is, its earlier state and journals removed (a new
    run in a used workspace starts a new state; an old journal must not be merged into
    it); else the next free ``<name>_run_<n>`` under ``base_dir``.
    """
    try:
        if workspace is not None:
            path = workspace.absolute()
            if (path / STATE_FILE).exists() or (path / JOURNAL_DIR).exists():
                (path / STATE_FILE).unlink(missing_ok=True)
                shutil.rmtree(path / ".ywf", ignore_errors=True)
            prepare(path)
            return path, run_number_of(path) or 1
        return create_workspace(base_dir, workflow.name)
    except OSError as err:  # --workspace/--base-dir names a file, or a read-only place
        raise UsageError(
            f"cannot create the run workspace under {workspace or base_dir}: {err.strerror or err}",
            hint="--workspace/--base-dir must be a directory you can write to",
        ) from None


TRIGGER_TYPES = ("manual", "schedule", "watch")


def make_trigger(kind: str = "manual", name: str | None = None, tick: str | None = None) -> dict[str, Any]:
    """What started a run, as its state records it: ``{type, name, tick}``."""
    if kind not in TRIGGER_TYPES:
        raise ValueError(f"unknown trigger type {kind!r}")
    return {"type": kind, "name": name, "tick": tick}


def run_header(workflow: Workflow, *, run_id: str, workspace: Path, run_number: int | None,
               params: dict[str, Any], plan: Plan, mode: str, options: dict[str, Any],
               trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``run`` transition a new run starts from (stores and mirror alike); ``trigger``
    says what started it (default: by hand, ``run`` or ``submit``)."""
    return {
        "t": "run",
        "at": time.time(),
        "workflow_id": run_id,
        "name": workflow.name,
        "start_time": now_iso(),
        "status": RUNNING,
        "workflow_file": workflow.source,
        "workspace": str(workspace),
        "run_number": run_number,
        "params": params,
        "fingerprints": {},
        "workflow": workflow.model_dump(mode="json"),
        "plan": plan.to_dict(),
        "mode": mode,
        "options": options,
        "trigger": dict(trigger) if trigger else make_trigger(),
    }


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


def trusted_workflow(doc: dict[str, Any], where: str, given: Workflow | None) -> Workflow:
    """The workflow a resume may run: the file given again, else the one stored with the
    run if it matches its digest (see :mod:`.integrity`).  A stored workflow that does not
    match (or a run recorded before digests) is refused unless the file is given again
    and matches the steps that ran."""
    intact = workflow_is_intact(doc)
    if given is not None:
        if intact is not True:
            changed = changed_steps(given, doc)
            if changed:
                raise StateFileError(where, (
                    "holds a workflow that does not match its digest, and the file given differs from the "
                    f"steps that ran ({', '.join(changed[:5])}); start a new run"))
        return given
    if intact is None:
        raise StateFileError(where, "was recorded before stored workflows were signed; "
                                    "pass the workflow file to resume it")
    if intact is False:
        raise StateFileError(where, "holds a workflow that does not match its digest (it was changed outside "
                                    "yaml-workflow, or signed with another key); pass the workflow file")
    return stored_workflow(doc, where)


def check_params(doc: dict[str, Any], where: str, *, override: bool) -> None:
    """Stored params that do not match their digest are refused unless new ones replace them."""
    if params_are_intact(doc) is False and not override:
        raise StateFileError(where, "holds params that do not match their digest (they were changed outside "
                                    "yaml-workflow); give them again with --override-params k=v")


def stored_workflow(doc: dict[str, Any], where: str) -> Workflow:
    """The workflow a run stored with itself, checked as strictly as a workflow file."""
    from pydantic import ValidationError

    from ..spec.loader import check_references
    from .load import check_workflow

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


def reusable_items(plan: Plan, decision: ResumeDecision, records: dict[str, Any]) -> dict[str, Any]:
    """Batch item records a resume may reuse: not for changed steps or a --from-step re-run."""
    fresh = set(decision.changed)
    if decision.from_step is not None:
        fresh |= set(plan.order[plan.order.index(decision.from_step):])
    return {
        name: records[name]["items"]
        for name in decision.rerun
        if name not in fresh and (records.get(name) or {}).get("items")
    }


def resume_events(doc: dict[str, Any], decision: ResumeDecision, mark_skipped: list[str] | tuple[str, ...],
                  masker: Masker | None = None, **history: Any) -> list[dict[str, Any]]:
    """What a resume records before its first step: the steps that run again are reset,
    the run is running again, the resume is in the history, new params (as stored:
    masked, params equal to a secret as references to it, with their digest), hand skips."""
    count = 1 + sum(1 for h in doc.get("history", []) if h.get("event") == "resume")
    events = [
        {"t": "reset", "steps": decision.rerun, "at": time.time()},
        status_event(RUNNING, failed_step=None),
        history_event("resume", count=count, changed=decision.changed,
                      from_step=decision.rerun[0] if decision.rerun else None, **history),
    ]
    stored, refs = masker.params(decision.args) if masker is not None else (decision.args, [])
    if stored != doc.get("params") or refs != (doc.get("param_secrets") or []):
        events.append({**signed_params(str(doc.get("workflow_id")), stored, refs), "at": time.time()})
    events += [step_event(name, "skipped", reason=SKIPPED_BY_HAND) for name in mark_skipped]
    return events
