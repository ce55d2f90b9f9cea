"""Load a workflow and check everything that can fail before a step runs.

The spec loader checks the file's structure; here the task registry and the template
engine add theirs: unknown task types ("did you mean"), inputs a task requires, and
template syntax, each reported with ``file:line``.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import SpecError, TaskNotFoundError, TemplateSyntaxProblem
from ..spec.loader import load_workflow_file
from ..spec.models import Step, Workflow
from ..tasks import get_task
from ..templating import check_syntax, iter_template_strings


def _templates_of(step: Step) -> list[str]:
    sources = list(iter_template_strings(step.inputs))
    for value in (step.condition, step.on_error.message if step.on_error else None):
        if isinstance(value, str):
            sources.extend(iter_template_strings(value))
    return sources


def check_workflow(workflow: Workflow) -> None:
    """Task types, required inputs and template syntax of every step."""
    file = workflow.source
    lines = workflow.step_lines
    for step in workflow.steps:
        line = lines.get(step.name)
        try:
            spec = get_task(step.task)
        except TaskNotFoundError as err:
            raise TaskNotFoundError(
                f"step '{step.name}': {err.detail}", file=file, line=line, hint=err.hint
            ) from None
        missing = [name for name in spec.required_inputs if name not in step.inputs]
        if missing:
            raise SpecError(
                f"step '{step.name}': task '{step.task}' needs input {', '.join(missing)}",
                file=file,
                line=line,
                hint="add it under `inputs:`",
            )
        for source in _templates_of(step):
            problem = check_syntax(source)
            if problem:
                snippet = " ".join(source.split())[:60]
                raise TemplateSyntaxProblem(
                    f"step '{step.name}': {problem} in {snippet!r}", file=file, line=line,
                    hint="fix the {{ }} / {% %} markup",
                )
    for key, value in workflow.env.items():
        for source in iter_template_strings(value):
            problem = check_syntax(source)
            if problem:
                raise TemplateSyntaxProblem(f"env '{key}': {problem}", file=file)


def load_workflow(path: str | Path) -> Workflow:
    """A workflow file, loaded and checked: every load-time error is raised here."""
    workflow = load_workflow_file(path)
    check_workflow(workflow)
    return workflow
