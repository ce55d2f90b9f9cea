"""Which steps a run executes, in what order, and what each waits for.

``build_plan`` turns a workflow plus ``--flow``, ``--start-from`` and ``--skip-steps``
into a :class:`Plan`: the ordered steps, the ones left out (with the reason recorded as
their skip), and — when any step uses ``depends_on`` — the dependencies of each step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import UsageError
from ..spec.loader import closest
from ..spec.models import Step, Workflow


@dataclass
class Plan:
    """Steps to run, in order; steps skipped by the command line; DAG edges if any."""

    order: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    deps: dict[str, list[str]] | None = None

    @property
    def is_dag(self) -> bool:
        """True when steps run as a DAG (threads locally, groups on the fleet)."""
        return self.deps is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored with the run."""
        return {"order": self.order, "skipped": self.skipped, "deps": self.deps}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Back from JSON form."""
        return cls(list(data["order"]), dict(data.get("skipped") or {}), data.get("deps"))

    def after(self, step: str) -> list[str]:
        """Steps after ``step`` in order."""
        return self.order[self.order.index(step) + 1:]

    def dependencies(self) -> dict[str, list[str]]:
        """What each step waits for: its deps in a DAG, the step before it in a chain."""
        if self.deps is not None:
            return {name: list(self.deps.get(name, [])) for name in self.order}
        return {name: ([self.order[i - 1]] if i else []) for i, name in enumerate(self.order)}

    def dependents(self, root: str) -> set[str]:
        """Every step that waits, directly or not, for ``root``."""
        waiting: dict[str, list[str]] = {name: [] for name in self.order}
        for name, deps in self.dependencies().items():
            for dep in deps:
                waiting.setdefault(dep, []).append(name)
        found: set[str] = set()
        frontier = [root]
        while frontier:
            for other in waiting.get(frontier.pop(), []):
                if other not in found:
                    found.add(other)
                    frontier.append(other)
        return found

    def jump_skips(self, step: str, target: str) -> dict[str, str] | None:
        """The jump rule of ``on_error: next``: the steps a jump from ``step`` to ``target``
        leaves out, each with the reason recorded; None when the run cannot jump there
        (a target outside the plan, or behind the step in a chain: a backward jump would
        run recorded steps again).

        In a chain the steps between the two are jumped over; in a DAG, the steps that
        wait for the failed one are skipped unless the target leads to them.
        """
        if target not in self.order:
            return None
        if not self.is_dag:
            here, there = self.order.index(step), self.order.index(target)
            if there <= here:
                return None
            return {name: f"jumped over by on_error next from {step}" for name in self.order[here + 1:there]}
        skipped = self.dependents(step) - {target} - self.dependents(target)
        return {name: f"skipped: {step} failed and jumped to {target}" for name in sorted(skipped)}


def fingerprint(step: Step) -> str:
    """A short hash of a step's definition; a changed step gets a new one."""
    data = step.model_dump(mode="json", exclude={"description"})
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flow_steps(workflow: Workflow, flow: str | None) -> list[str]:
    flows = workflow.flows
    if flow is None:
        flow = flows.default if flows and flows.default else "all"
    if flow == "all":
        return workflow.step_names
    if not flows or flow not in flows.definitions:
        known = sorted(flows.definitions) if flows else []
        near = closest(flow, [*known, "all"])
        raise UsageError(
            f"unknown flow '{flow}'",
            hint=f"did you mean '{near}'?" if near else f"flows: {', '.join(known) or 'none defined'}",
        )
    return list(flows.definitions[flow])


def _check_step(workflow: Workflow, name: str, option: str) -> None:
    if name not in workflow.step_names:
        near = closest(name, workflow.step_names)
        raise UsageError(
            f"{option}: no step named '{name}'",
            hint=f"did you mean '{near}'?" if near else f"steps: {', '.join(workflow.step_names)}",
        )


def build_plan(
    workflow: Workflow,
    *,
    flow: str | None = None,
    start_from: str | None = None,
    skip_steps: list[str] | tuple[str, ...] = (),
) -> Plan:
    """The plan of a fresh run."""
    order = _flow_steps(workflow, flow)
    skipped: dict[str, str] = {}
    for name in skip_steps:
        _check_step(workflow, name, "--skip-steps")
        if name in order:
            skipped[name] = "skipped by --skip-steps"
    if start_from is not None:
        _check_step(workflow, start_from, "--start-from")
        if start_from not in order:
            raise UsageError(f"--start-from: step '{start_from}' is not in the selected flow")
        for name in order[: order.index(start_from)]:
            skipped.setdefault(name, f"before --start-from {start_from}")
    deps = None
    by_name = {step.name: step for step in workflow.steps}
    if any(by_name[n].depends_on for n in order):
        deps = {}
        in_plan = set(order)
        previous: str | None = None
        for name in order:
            declared = by_name[name].depends_on
            if declared:
                deps[name] = [d for d in declared if d in in_plan]
            else:
                deps[name] = [previous] if previous else []
            previous = name
    return Plan(order, skipped, deps)
