"""The ``template`` task: render a Jinja template (loops, filters) into a workspace file."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ...exceptions import TaskError
from ..context import TaskContext
from ..registry import builtin_task


class TemplateInputs(BaseModel):
    """Inputs of ``template``; ``template`` arrives unrendered (the task renders it)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    template: Any
    output_file: str | None = None
    encoding: str = "utf-8"


# `template` is raw: the engine must not render it first, or its output would be
# rendered a second time here (and a native single expression would lose its text form).
@builtin_task("template", inputs=TemplateInputs, raw=("template",))
def template(inputs: TemplateInputs, ctx: TaskContext) -> dict[str, Any]:
    """Render ``template`` to text; result ``{path}`` (the file), or ``{path: None, content}``."""
    source = inputs.template
    text = ctx.render_text(source) if isinstance(source, str) else str(source)
    if not inputs.output_file:
        # Without a file the rendered text is the only useful output.
        return {"path": None, "content": text}
    path = ctx.resolve_path(inputs.output_file)
    if path == ctx.workspace.resolve():
        raise TaskError(f"step '{ctx.step}': output_file '{inputs.output_file}' is the workspace")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(inputs.encoding))  # bytes: trailing newlines kept as rendered
    return {"path": str(path)}
