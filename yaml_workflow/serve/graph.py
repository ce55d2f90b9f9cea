"""The workflow as an SVG graph, drawn on the server: a node per step, an edge per dependency.

Steps are laid out top to bottom in layers: a step sits one layer below the deepest step
it waits for (``StepState.depends_on``: the ``depends_on`` edges, or the previous step
in order for a sequential workflow).  Nodes carry ``data-step`` and a status class
(``s-completed``...), so the page's script recolours them as the run goes; every name
is escaped, and the status class is made of letters only.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from ..client.models import StepState

NODE_W, NODE_H = 180, 34
GAP_X, GAP_Y = 24, 30
MARGIN = 8
LABEL_CHARS = 24


def layers(steps: Sequence[StepState]) -> dict[str, int]:
    """Each step's layer: 0 for steps that wait for nothing, else 1 + its deepest dependency."""
    names = {s.step for s in steps}
    deps = {s.step: [d for d in s.depends_on if d in names and d != s.step] for s in steps}
    depth: dict[str, int] = {}
    pending = [s.step for s in steps]
    while pending:  # plan order puts dependencies first: usually one pass
        rest = []
        for name in pending:
            if all(d in depth for d in deps[name]):
                depth[name] = 1 + max((depth[d] for d in deps[name]), default=-1)
            else:
                rest.append(name)
        if len(rest) == len(pending):  # a cycle cannot be planned; draw it rather than loop
            depth.update((name, 0) for name in rest)
            break
        pending = rest
    return depth


def status_class(status: str) -> str:
    """``s-<status>``, letters only (the status comes from the store)."""
    return "s-" + "".join(c for c in status.lower() if c.isalpha())


def _label(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "\u2026"


def render_graph(steps: Sequence[StepState]) -> Markup:
    """An inline ``<svg>`` of the steps and their dependencies."""
    depth = layers(steps)
    rows: dict[int, list[str]] = {}
    for step in steps:
        rows.setdefault(depth[step.step], []).append(step.step)
    place: dict[str, tuple[int, int]] = {}
    for layer, names in rows.items():
        for col, name in enumerate(names):
            place[name] = (MARGIN + col * (NODE_W + GAP_X), MARGIN + layer * (NODE_H + GAP_Y))
    width = MARGIN * 2 + max((len(n) for n in rows.values()), default=1) * (NODE_W + GAP_X) - GAP_X
    height = MARGIN * 2 + max(len(rows), 1) * (NODE_H + GAP_Y) - GAP_Y
    parts = [f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="workflow graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>']
    for step in steps:
        x2, y2 = place[step.step]
        for dep in step.depends_on:
            if dep not in place or dep == step.step:
                continue
            x1, y1 = place[dep]
            sx, sy, ex, ey = x1 + NODE_W / 2, y1 + NODE_H, x2 + NODE_W / 2, y2
            mid = (sy + ey) / 2
            parts.append(f'<path class="edge" marker-end="url(#arrow)" '
                         f'd="M{sx:.0f},{sy:.0f} C{sx:.0f},{mid:.0f} {ex:.0f},{mid:.0f} {ex:.0f},{ey - 1:.0f}"/>')
    for step in steps:
        x, y = place[step.step]
        name = escape(step.step)
        parts.append(
            f'<g class="node {status_class(step.status)}" data-step="{name}" transform="translate({x},{y})">'
            f'<title>{name}: {escape(step.status)}</title>'
            f'<rect width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{NODE_W // 2}" y="{NODE_H // 2 + 5}" text-anchor="middle">{escape(_label(step.step))}</text>'
            '</g>')
    parts.append("</svg>")
    return Markup("".join(parts))
