"""A workflow as a graph of steps, drawn as text or as a Mermaid flowchart (`visualize`).

The edges are the ones the executors follow: the file (or flow) order, or ``depends_on``
when the steps form a DAG, plus a dotted "on error" edge to each ``next:`` target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..spec.models import Step, Workflow
from .plan import build_plan


@dataclass
class Graph:
    """Steps of one flow in run order, their incoming edges, and the steps left out."""

    workflow: Workflow
    flow: str | None
    order: list[str]
    deps: dict[str, list[str]] | None  # None: a sequence, each step after the one before
    left_out: list[str] = field(default_factory=list)

    def step(self, name: str) -> Step:
        """The step called ``name``."""
        return self.workflow.step(name)


def build_graph(workflow: Workflow, flow: str | None = None) -> Graph:
    """The graph of ``flow`` (default: the workflow's default flow, else every step)."""
    plan = build_plan(workflow, flow=flow)
    chosen = flow or (workflow.flows.default if workflow.flows and workflow.flows.default else None)
    left_out = [n for n in workflow.step_names if n not in plan.order]
    return Graph(workflow, chosen, plan.order, plan.deps, left_out)


def _one_line(value: object, limit: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _on_error(step: Step) -> str | None:
    on_error = step.on_error
    if on_error is None:
        return None
    if on_error.next:
        return f"on error: go to {on_error.next}"
    if on_error.action == "retry" and on_error.retry:
        return f"on error: retry {on_error.retry}x, then fail"
    return f"on error: {on_error.action}"


def _notes(step: Step) -> list[str]:
    notes = []
    if step.condition is not None:
        notes.append(f"if: {_one_line(step.condition)}")
    if step.retry:
        notes.append(f"retry: up to {step.retry.max_attempts} attempts")
    text = _on_error(step)
    if text:
        notes.append(text)
    if step.timeout:
        notes.append(f"timeout: {step.timeout:g}s")
    return notes


def to_text(graph: Graph) -> str:
    """Steps in run order with arrows; a DAG shows each step's `after:` instead."""
    wf = graph.workflow
    kind = "DAG, independent steps run in parallel" if graph.deps is not None else "in order"
    flow = f", flow '{graph.flow}'" if graph.flow else ""
    lines = [f"{wf.name}: {len(graph.order)} step(s){flow} ({kind})"]
    if wf.description:
        lines.append(f"  {_one_line(wf.description, 100)}")
    lines.append("")
    width = len(str(len(graph.order)))
    for index, name in enumerate(graph.order, start=1):
        step = graph.step(name)
        lines.append(f"[{index:>{width}}] {name} ({step.task})")
        pad = " " * (width + 3)
        if graph.deps is not None:
            after = graph.deps.get(name) or []
            lines.append(f"{pad}after: {', '.join(after) if after else '(start)'}")
        for note in _notes(step):
            lines.append(f"{pad}{note}")
        if graph.deps is None and index < len(graph.order):
            lines.append(f"{pad}|")
            lines.append(f"{pad}v")
    if graph.left_out:
        lines.append("")
        lines.append(f"not in this flow: {', '.join(graph.left_out)}")
    return "\n".join(lines) + "\n"


def _mermaid_label(text: str) -> str:
    # Mermaid reads quotes and angle brackets inside labels; entity codes keep them literal.
    return (text.replace("&", "#amp;").replace('"', "#quot;")
            .replace("<", "#lt;").replace(">", "#gt;"))


def _node_ids(names: list[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for index, name in enumerate(names):
        # Step names may hold spaces or dashes; Mermaid ids may not, so keep a safe form.
        ids[name] = f"s{index}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"
    return ids


def to_mermaid(graph: Graph) -> str:
    """A ``flowchart TD`` document: a node per step, solid edges for order or depends_on,
    dotted edges labelled "on error" for next targets."""
    ids = _node_ids(graph.workflow.step_names)
    lines = ["flowchart TD"]
    for name in graph.order:
        step = graph.step(name)
        label = "<br/>".join(_mermaid_label(t) for t in [f"{name} ({step.task})", *_notes(step)])
        # A conditional step is drawn as a hexagon so that it stands out.
        left, right = ("{{", "}}") if step.condition is not None else ("[", "]")
        lines.append(f'    {ids[name]}{left}"{label}"{right}')
    if graph.deps is not None:
        for name in graph.order:
            for dep in graph.deps.get(name) or []:
                lines.append(f"    {ids[dep]} --> {ids[name]}")
    else:
        for first, second in zip(graph.order, graph.order[1:], strict=False):
            lines.append(f"    {ids[first]} --> {ids[second]}")
    for name in graph.order:
        step = graph.step(name)
        target = step.on_error.next if step.on_error else None
        if target and target in ids:
            lines.append(f"    {ids[name]} -. on error .-> {ids[target]}")
    return "\n".join(lines) + "\n"
