"""Warnings about a workflow that loads but probably does not do what its author meant.

``validate`` prints them; ``validate --strict`` turns them into errors.  Each check is
conservative — a warning should almost never be wrong:

- ``steps.X`` in a template where X is no step, the step itself, or a step that has not
  necessarily finished when this one runs (later in the file, or not an ancestor in a DAG);
- ``args.Y`` where Y is not a declared param (unless guarded by ``default``/``is defined``);
- a step that no run can reach: in no flow while flows.default names one, a literally false
  ``condition``, an ``on_error`` next target outside the flow or behind its step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..spec.loader import closest
from ..spec.models import Step, Workflow
from ..templating import iter_template_strings, truthy
from ..templating.markup import simple_paths
from .plan import build_plan

if TYPE_CHECKING:
    from jinja2 import nodes

# Names of dict methods: `args.get('x')` is a lookup, not a param called "get".
_DICT_METHODS = {"get", "keys", "items", "values"}
_GUARD_FILTERS = {"default", "d"}
_GUARD_TESTS = {"defined", "undefined", "none"}


@dataclass(frozen=True)
class LintWarning:
    """One finding: what, and where (step and line when known)."""

    message: str
    step: str | None = None
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form, as `validate --format json` reports it."""
        return {"message": self.message, "step": self.step, "line": self.line}


def _key(node: nodes.Node) -> tuple[str, str] | None:
    """``("steps", "x")`` for ``steps.x`` / ``steps['x']``; None for anything else."""
    from jinja2 import nodes  # Jinja only for templates that are more than substitutions

    if not isinstance(node, (nodes.Getattr, nodes.Getitem)) or not isinstance(node.node, nodes.Name):
        return None
    if node.node.name not in ("steps", "args"):
        return None
    if isinstance(node, nodes.Getattr):
        key = node.attr
    elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        key = node.arg.value
    else:
        return None  # a computed key: cannot tell
    return None if key in _DICT_METHODS else (node.node.name, key)


def references(source: str) -> set[tuple[str, str]]:
    """``(namespace, key)`` pairs a template reads from ``steps`` and ``args``, unguarded.

    A name passed through ``default`` or tested with ``is defined`` anywhere in the
    template is optional on purpose, and so is every name of a namespace tested with
    ``'x' in args``.
    """
    paths = simple_paths(source)
    if paths is not None:  # plain substitutions: no guards, no Jinja needed
        return {
            (str(path[0]), path[1]) for path in paths
            if len(path) > 1 and path[0] in ("steps", "args") and isinstance(path[1], str)
            and path[1] not in _DICT_METHODS
        }
    from jinja2 import nodes

    from ..templating.sandbox import parse_tree

    try:
        tree = parse_tree(source)
    except Exception:  # noqa: BLE001 - syntax is load's business; nothing to say here
        return set()
    guarded: set[tuple[str, str]] = set()
    checked_ns: set[str] = set()
    for guard in tree.find_all((nodes.Filter, nodes.Test)):
        names = _GUARD_FILTERS if isinstance(guard, nodes.Filter) else _GUARD_TESTS
        if guard.name in names and guard.node is not None:
            for node in (guard.node, *guard.node.find_all((nodes.Getattr, nodes.Getitem))):
                key = _key(node)
                if key:
                    guarded.add(key)
    for compare in tree.find_all(nodes.Compare):
        for op in compare.ops:
            if op.op in ("in", "notin") and isinstance(op.expr, nodes.Name):
                checked_ns.add(op.expr.name)
    found = {_key(node) for node in tree.find_all((nodes.Getattr, nodes.Getitem))}
    return {k for k in found if k and k not in guarded and k[0] not in checked_ns}


def _templates(step: Step) -> list[str]:
    sources = list(iter_template_strings(step.inputs))
    for value in (step.condition, step.on_error.message if step.on_error else None):
        sources.extend(iter_template_strings(value))
    return sources


class _RunsBefore:
    """Answers "has step B certainly finished (or failed and jumped) when step A starts?".

    Linear in the workflow: file positions for a sequence; for a DAG, a direct dependency
    answers at once, and otherwise each step's ancestors among the steps that templates
    read beyond their direct dependencies (:meth:`need`) are one bit set (an int), built
    once in topological order.
    """

    def __init__(self, workflow: Workflow) -> None:
        self.position = {name: i for i, name in enumerate(workflow.step_names)}
        self.is_dag = workflow.is_dag
        self.deps: dict[str, set[str]] = {}
        if self.is_dag:
            self.deps = {k: set(v) for k, v in (build_plan(workflow, flow="all").deps or {}).items()}
            for step in workflow.steps:
                if step.on_error and step.on_error.next:
                    self.deps.setdefault(step.on_error.next, set()).add(step.name)
        self.targets: set[str] = set()
        self.bit: dict[str, int] = {}
        self._ancestors: dict[str, int] | None = None

    def direct(self, step: str, other: str) -> bool:
        """True when the answer needs no walk: a sequence, or a direct dependency."""
        return not self.is_dag or other in self.deps.get(step, ())

    def need(self, step: str, other: str) -> None:
        """Note a question that :meth:`__call__` will be asked (before the first answer)."""
        if not self.direct(step, other) and other in self.position:
            self.targets.add(other)

    def __call__(self, step: str, other: str) -> bool:
        if not self.is_dag:
            return self.position[other] < self.position[step]
        if other in self.deps.get(step, ()):
            return True
        if self._ancestors is None:
            self.bit = {name: i for i, name in enumerate(sorted(self.targets))}
            self._ancestors = self._build()
        return bool(self._ancestors.get(step, 0) >> self.bit[other] & 1)

    def _build(self) -> dict[str, int]:
        deps = self.deps
        waiting = {name: len(deps.get(name, ())) for name in self.position}
        users: dict[str, list[str]] = {}
        for name, before in deps.items():
            for dep in before:
                users.setdefault(dep, []).append(name)
        ready = [name for name, count in waiting.items() if count == 0]
        bits: dict[str, int] = {}
        while ready:  # Kahn's order: every dependency is done before its users
            name = ready.pop()
            mask = 0
            for dep in deps.get(name, ()):
                mask |= bits.get(dep, 0)
                if dep in self.bit:
                    mask |= 1 << self.bit[dep]
            bits[name] = mask
            for user in users.get(name, ()):
                waiting[user] -= 1
                if waiting[user] == 0:
                    ready.append(user)
        return bits


# "Did you mean" compares a name with every step name; past this many unknown names a
# large workflow would spend its time on suggestions.
_MAX_SUGGESTIONS = 20


def _template_warnings(workflow: Workflow) -> list[LintWarning]:
    found: list[LintWarning] = []
    names = workflow.step_names
    known = set(names)
    lines = workflow.step_lines
    read: list[tuple[Step, list[tuple[str, str]]]] = []
    for step in workflow.steps:
        found_refs: set[tuple[str, str]] = set()
        for source in _templates(step):
            found_refs |= references(source)
        if found_refs:
            read.append((step, sorted(found_refs)))
    runs_before = _RunsBefore(workflow)
    for step, refs in read:
        for ns, key in refs:
            if ns == "steps" and key != step.name:
                runs_before.need(step.name, key)
    suggestions = 0
    for step, refs in read:
        line = lines.get(step.name)
        # Inside a batch the item is also in `args` under arg_name.
        extra_args = {str(step.inputs.get("arg_name", "item"))} if step.task == "batch" else set()
        for ns, key in refs:
            problem = None
            if ns == "args" and key not in workflow.params and key not in extra_args:
                problem = f"args.{key} is not a declared param (add it under `params:`)"
            elif ns == "steps" and key not in known:
                suggestions += 1
                near = closest(key, names) if suggestions <= _MAX_SUGGESTIONS else None
                problem = f"steps.{key}: there is no step '{key}'" + (f"; did you mean '{near}'?" if near else "")
            elif ns == "steps" and key == step.name:
                problem = f"steps.{key} refers to the step itself"
            elif ns == "steps" and not runs_before(step.name, key):
                problem = f"steps.{key} may not have run yet when '{step.name}' runs (it comes later or in parallel)"
            if problem:
                found.append(LintWarning(f"step '{step.name}': {problem}", step.name, line))
    return found


def _reach_warnings(workflow: Workflow) -> list[LintWarning]:
    found: list[LintWarning] = []
    flows = workflow.flows
    definitions = flows.definitions if flows else {}
    in_some_flow = {name for seq in definitions.values() for name in seq}
    default_is_a_flow = bool(flows and flows.default and flows.default in definitions)
    # Each flow's positions, computed once (not a list search per step).
    orders = [("all", workflow.step_names), *definitions.items()]
    positions = [(flow_name, {name: i for i, name in enumerate(order)}) for flow_name, order in orders]
    is_dag = workflow.is_dag
    lines = workflow.step_lines
    for step in workflow.steps:
        line = lines.get(step.name)

        def warn(text: str, step: Step = step, line: int | None = line) -> None:
            found.append(LintWarning(f"step '{step.name}': {text}", step.name, line))

        if default_is_a_flow and step.name not in in_some_flow:
            warn("is in no flow, so it runs only with --flow all")
        if step.condition is not None and not isinstance(step.condition, str) and not truthy(step.condition):
            warn(f"condition is always false ({step.condition!r}), so it never runs")
        target = step.on_error.next if step.on_error else None
        if not target:
            continue
        for flow_name, position in positions:
            if step.name not in position:
                continue
            if target not in position:
                warn(f"on_error next target '{target}' is not in flow '{flow_name}'")
            elif not is_dag and position[target] <= position[step.name]:
                warn(f"on_error next target '{target}' comes before it in flow '{flow_name}'")
    return found


def lint_workflow(workflow: Workflow) -> list[LintWarning]:
    """Every warning about a loaded workflow, template ones first."""
    return _template_warnings(workflow) + _reach_warnings(workflow)
