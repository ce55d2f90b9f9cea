"""Preview a run: which steps would run, with their inputs rendered where possible.

Nothing is executed and nothing is written.  A template that needs the result of an
earlier step cannot be rendered before that step runs; it is shown as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..exceptions import TemplateError
from ..settings import process_environment
from ..spec.models import Workflow
from ..spec.params import resolve_params
from ..tasks import get_task
from ..templating import Namespace, render_text, render_value
from .plan import build_plan
from .secrets import Masker, check_secrets
from .step import render_inputs
from .workspace import sanitize_name


def preview(
    workflow: Workflow,
    params: dict[str, Any],
    *,
    base_dir: Path | None = None,
    flow: str | None = None,
    start_from: str | None = None,
    skip_steps: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One entry per planned step: name, task, inputs, and what would happen to it (secrets
    masked in inputs and conditions, as in a real run's output)."""
    masker = Masker(check_secrets(workflow.secrets))
    args = resolve_params(workflow, params, masker.values)
    plan = build_plan(workflow, flow=flow, start_from=start_from, skip_steps=skip_steps or [])
    workspace = (base_dir or Path("runs")).absolute() / f"{sanitize_name(workflow.name)}_run_N"
    scope: dict[str, Any] = {
        "args": Namespace("args", args),
        "env": Namespace("env", process_environment()),
        "steps": Namespace("steps"),
        "workflow": Namespace("workflow", {"name": workflow.name, "file": workflow.source,
                                           "workspace": str(workspace), "run_id": "(dry-run)",
                                           "run_number": None, "timestamp": None}),
        "settings": Namespace("settings", workflow.settings),
    }
    entries = []
    for name in plan.order:
        step = workflow.step(name)
        entry: dict[str, Any] = {"step": name, "task": step.task}
        if name in plan.skipped:
            entry["skip"] = plan.skipped[name]
        scope["current"] = Namespace("current", {"name": name, "task": step.task, "attempt": 1})
        try:
            spec = get_task(step.task)
            inputs = render_inputs(spec, step.inputs, scope)
            # Inputs a task renders itself (the template task's text) are previewed too.
            for key in spec.raw_inputs & inputs.keys():
                if isinstance(inputs[key], str):
                    inputs[key] = render_text(inputs[key], scope)
            entry["inputs"] = masker.value(inputs)
        except TemplateError:
            entry["inputs"] = masker.value(step.inputs)
            entry["note"] = "inputs depend on earlier steps; shown as written"
        if step.condition is not None:
            try:
                entry["condition"] = masker.value(render_value(step.condition, scope))
            except TemplateError:
                entry["condition"] = masker.value(step.condition)
        entries.append(entry)
    return entries
