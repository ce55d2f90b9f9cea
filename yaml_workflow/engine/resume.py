"""Deciding what a resume does, from the stored run and the current workflow.

Pure decisions, shared by ``run --resume`` and ``submit --resume``: is the run
resumable, which params it continues with, which steps are done (kept, outputs restored)
and which run again, and which completed steps changed since they ran.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ResumeRefused
from ..spec.models import Workflow
from ..spec.params import convert, resolve_params, shown
from ..state.document import COMPLETED, FAILED, SKIPPED
from .plan import Plan, fingerprint
from .secrets import lost_params, restore_params


@dataclass
class ResumeDecision:
    """What a resume keeps and what it runs again."""

    args: dict[str, Any]
    done: set[str]
    rerun: list[str]
    changed: list[str] = field(default_factory=list)
    from_step: str | None = None


def resumed_params(
    workflow: Workflow, stored: dict[str, Any], given: dict[str, Any], override: bool,
    hidden: Collection[str] = (),
) -> dict[str, Any]:
    """The stored params, replaced by given ones only with --override-params (``hidden``:
    the secrets' values, never quoted in a refusal)."""
    if override:
        return resolve_params(workflow, {**stored, **given}, hidden)
    for name, value in given.items():
        kind = workflow.params[name].type if name in workflow.params else None
        if name in stored and convert(name, value, kind, hidden) != stored[name]:
            raise ResumeRefused(
                f"parameter '{name}' was {shown(stored[name], hidden)} in the first run, "
                f"{shown(value, hidden)} now",
                hint="resume keeps the first run's params; add --override-params to replace them",
            )
    return dict(stored)


def stored_params(doc: dict[str, Any], given: dict[str, Any], override: bool,
                  secrets: Mapping[str, str]) -> dict[str, Any]:
    """The first run's params as they were: a param stored as a reference to a secret gets
    the secret's value from ``secrets`` (this process's environment); one stored masked
    for good must be given again."""
    refs = doc.get("param_secrets")
    for name in lost_params(refs):
        if not (override and name in given):
            raise ResumeRefused(
                f"parameter '{name}' held a secret's value inside a longer text and was stored masked",
                hint=f"pass it again: {name}=VALUE --override-params",
            )
    return restore_params(doc.get("params") or {}, refs, secrets)


def changed_steps(workflow: Workflow, doc: dict[str, Any]) -> list[str]:
    """Completed steps whose definition changed, or that no longer exist, in run order."""
    records = doc["execution_state"]["step_outputs"]
    prints = doc.get("fingerprints", {})
    changed = []
    for name, record in records.items():
        if record.get("status") != COMPLETED:
            continue
        if name not in workflow.step_names:
            changed.append(name)
        elif prints.get(name) and prints[name] != fingerprint(workflow.step(name)):
            changed.append(name)
    return changed


def _went_on_past(record: dict[str, Any], name: str, stopped_at: str | None) -> bool:
    """A failed step the run continued past (on_error continue/next) is kept on resume."""
    action = record.get("action")
    if action is not None:
        return action in ("continue", "next")
    return name != stopped_at  # records written before `action` was recorded


def decide(
    workflow: Workflow,
    plan: Plan,
    doc: dict[str, Any],
    *,
    given: dict[str, Any],
    override_params: bool = False,
    from_step: str | None = None,
    force: bool = False,
    rerun: list[str] | tuple[str, ...] = (),
    mark_skipped: list[str] | tuple[str, ...] = (),
    secrets: Mapping[str, str] | None = None,
) -> ResumeDecision:
    """Check that the run can be resumed and say what runs again (``secrets``: the declared
    secrets by name, from this process's environment)."""
    run_id = doc.get("workflow_id")
    status = doc.get("status")
    repairing = bool(rerun or mark_skipped)
    for name in (*rerun, *mark_skipped):
        if name not in plan.order:
            raise ResumeRefused(f"step '{name}' is not in run {run_id}'s plan")
    if status == COMPLETED and from_step is None and not repairing:
        raise ResumeRefused(
            f"run {run_id} already completed; there is nothing to resume",
            hint="start a new run, or pass --from-step to run steps again",
        )
    if from_step is not None and from_step not in plan.order:
        raise ResumeRefused(f"--from-step: step '{from_step}' is not in this run's plan")
    secrets = dict(secrets or {})
    stored = stored_params(doc, given, override_params, secrets)
    args = resumed_params(workflow, stored, given, override_params, list(secrets.values()))
    state = doc["execution_state"]
    records: dict[str, Any] = state["step_outputs"]
    stopped_at = (state.get("failed_step") or {}).get("step_name")
    done = {
        name for name, record in records.items()
        if name in plan.order and (
            record.get("status") in (COMPLETED, SKIPPED)
            or (record.get("status") == FAILED and _went_on_past(record, name, stopped_at))
        )
    }
    changed = changed_steps(workflow, doc)
    if from_step is not None:
        tail = plan.order[plan.order.index(from_step):]
        done -= set(tail)
    if changed and not force:
        in_plan = [n for n in changed if n in plan.order]
        removed = [n for n in changed if n not in workflow.step_names]
        first = min(plan.order.index(n) for n in in_plan) if in_plan else None
        covered = from_step is not None and (first is None or plan.order.index(from_step) <= first)
        if not covered:
            hint = "pass --force to run the changed steps again"
            if first is not None:
                hint = f"resume with --from-step {plan.order[first]} (or earlier), or {hint}"
            raise ResumeRefused(
                f"run {run_id}: step(s) changed since they ran: {', '.join(changed)}"
                + (f" (no longer in the workflow: {', '.join(removed)})" if removed else ""),
                hint=hint,
            )
    done -= set(changed)
    done -= set(rerun)
    done |= set(mark_skipped)
    again = [n for n in plan.order if n not in done]
    return ResumeDecision(args=args, done=done, rerun=again, changed=changed, from_step=from_step)
