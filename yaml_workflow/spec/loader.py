"""Read a workflow file into a validated :class:`Workflow`.

Everything that can be known from the file alone is checked here, each error naming
``file:line``: YAML syntax, unknown keys (with the closest valid one), imports and their
cycles, duplicate step names, ``next:``/``depends_on``/flow targets, ``depends_on``
cycles.  Checks that need the task registry or the template engine live in
``engine.load``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..exceptions import SpecError
from .models import STEP_KEYS, TOP_LEVEL_KEYS, Step, Workflow
from .yaml_lines import LineDict, load_yaml, show_key

# Step keys that the seed document writes under `inputs:`/`params:`; lifted to the step.
_LIFTED_INPUT_KEYS = ("progress_update", "progress_interval")
# A workflow file is read up to this many bytes: /dev/zero or a runaway pipe is refused,
# not read until memory runs out.  (A 20,000-step workflow is about 2 MB.)
MAX_FILE_BYTES = 8 * 1024 * 1024


def closest(word: str, choices: Any) -> str | None:
    """The valid name nearest to a mistyped one, for "did you mean" hints."""
    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return found[0] if found else None


def _did_you_mean(word: str, choices: Any) -> str | None:
    near = closest(word, choices)
    return f"did you mean '{near}'?" if near else None


def _line(node: Any, key: Any = None) -> int | None:
    if isinstance(node, LineDict):
        return node.line_of(key) if key is not None else node.line
    return None


def read_text(path: Path) -> str:
    """A workflow file's text, read up to :data:`MAX_FILE_BYTES`."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"workflow file not found: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise SpecError(f"{path} is a directory, not a workflow file", hint="give the YAML file") from None
    except OSError as err:
        raise SpecError(f"cannot read workflow file {path}: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(
            f"workflow file {path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            hint="a workflow file is a YAML text of a few kilobytes; check the path",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        # Says where, never what: the bytes of a file that is not YAML are its content.
        raise SpecError(
            f"cannot read workflow file {path}: not UTF-8 text (byte {err.start})",
            hint="a workflow file is a UTF-8 YAML text",
        ) from None


def read_document(path: Path) -> LineDict:
    """Parse one YAML file that must hold a mapping."""
    text = read_text(path)
    data = load_yaml(text, file=str(path))
    if data is None:
        raise SpecError("the file is empty", file=str(path), hint="a workflow needs `steps:`")
    if not isinstance(data, dict):
        raise SpecError(
            "a workflow file must be a mapping with `steps:`", file=str(path), line=1
        )
    return data  # type: ignore[return-value]


def _check_keys(node: LineDict, allowed: tuple[str, ...], what: str, file: str) -> None:
    for key in node:
        if key not in allowed:
            raise SpecError(
                f"unknown {what} key {show_key(key)}",
                file=file,
                line=_line(node, key),
                hint=_did_you_mean(key, allowed) or f"valid keys: {', '.join(allowed)}",
            )


def _step_nodes(doc: LineDict, file: str) -> list[LineDict]:
    """Steps as a list of mappings, whether the file wrote a list or a mapping."""
    raw = doc.get("steps")
    if raw is None:
        return []
    nodes: list[LineDict] = []
    if isinstance(raw, dict):
        for name, body in raw.items():
            if body is None:
                body = LineDict()
            if not isinstance(body, dict):
                raise SpecError(
                    f"step '{name}' must be a mapping", file=file, line=_line(raw, name)
                )
            node = LineDict(body)
            node.line = _line(raw, name)
            node.key_lines = dict(getattr(body, "key_lines", {}))
            if "name" in node and node["name"] != name:
                raise SpecError(
                    f"step '{name}' also says name: {node['name']}",
                    file=file,
                    line=node.line,
                )
            node["name"] = name
            nodes.append(node)
        return nodes
    if not isinstance(raw, list):
        raise SpecError(
            "`steps` must be a list of steps or a mapping of step names",
            file=file,
            line=_line(doc, "steps"),
        )
    for index, body in enumerate(raw):
        if not isinstance(body, dict):
            raise SpecError(
                f"step #{index + 1} must be a mapping with name and task",
                file=file,
                line=_line(doc, "steps"),
            )
        nodes.append(body)  # type: ignore[arg-type]
    return nodes


def _normalise_step(node: LineDict, file: str) -> dict[str, Any]:
    _check_keys(node, STEP_KEYS, "step", file)
    if "name" not in node:
        raise SpecError("a step has no `name`", file=file, line=node.line)
    if "task" not in node:
        raise SpecError(
            f"step '{node['name']}' has no `task`",
            file=file,
            line=node.line,
            hint="add e.g. `task: shell`",
        )
    step = dict(node)
    if "params" in step:
        if "inputs" in step:
            raise SpecError(
                f"step '{node['name']}' has both `inputs` and `params`",
                file=file,
                line=_line(node, "params"),
                hint="they are the same thing; keep one",
            )
        step["inputs"] = step.pop("params")
    inputs = step.get("inputs")
    if inputs is None:
        step["inputs"] = {}
    elif not isinstance(inputs, dict):
        raise SpecError(
            f"step '{node['name']}': `inputs` must be a mapping",
            file=file,
            line=_line(node, "inputs"),
        )
    else:
        inputs = dict(inputs)
        for key in _LIFTED_INPUT_KEYS:
            if key in inputs:
                step.setdefault(key, inputs.pop(key))
        step["inputs"] = inputs
    retry, on_error = step.get("retry"), step.get("on_error")
    if retry is not None and isinstance(on_error, dict) and on_error.get("retry"):
        raise SpecError(
            f"step '{node['name']}' has both a `retry` block and `on_error.retry`",
            file=file,
            line=_line(node, "retry"),
            hint="keep one of them",
        )
    return step


def _pydantic_problem(err: ValidationError) -> tuple[str, tuple[Any, ...]]:
    first = err.errors()[0]
    loc = tuple(first.get("loc", ()))
    where = ".".join(str(p) for p in loc)
    message = str(first.get("msg")).removeprefix("Value error, ")
    return (f"{where}: {message}" if where else message, loc)


def _line_at(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest key of ``loc`` that the document has (errors in nested blocks)."""
    line = None
    for part in loc:
        if not isinstance(node, LineDict) or part not in node:
            break
        line = node.line_of(part)
        node = node[part]
    return line


def _params_of(doc: LineDict, file: str) -> dict[str, Any]:
    """The `params:` mapping of a document (absent or empty: none)."""
    params = doc.get("params")
    if not params:  # absent, `params:` alone, or an empty list/mapping
        return {}
    if not isinstance(params, dict):
        raise SpecError(
            "`params` must be a mapping of parameter names", file=file, line=_line(doc, "params"),
            hint="e.g. `params: {name: {type: string, default: World}}`",
        )
    return dict(params)


def _merge_imports(
    doc: LineDict, path: Path, chain: tuple[Path, ...]
) -> tuple[dict[str, Any], list[LineDict]]:
    """Params and step nodes of every imported file, imports of imports first."""
    file = str(path)
    params: dict[str, Any] = {}
    steps: list[LineDict] = []
    imports = doc.get("imports") or []
    if isinstance(imports, str):
        imports = [imports]
    if not isinstance(imports, list):
        raise SpecError("`imports` must be a list of files", file=file, line=_line(doc, "imports"))
    for entry in imports:
        target = (path.parent / str(entry)).resolve()
        if target in chain:
            cycle = " -> ".join(p.name for p in (*chain, target))
            raise SpecError(
                f"import cycle: {cycle}", file=file, line=_line(doc, "imports"),
                hint="remove one of the imports",
            )
        if not target.is_file():
            raise SpecError(
                f"imported file not found: {entry}", file=file, line=_line(doc, "imports")
            )
        sub = read_document(target)
        _check_keys(sub, TOP_LEVEL_KEYS, "top-level", str(target))
        sub_params, sub_steps = _merge_imports(sub, target, (*chain, target))
        params.update(sub_params)
        params.update(_params_of(sub, str(target)))
        steps.extend(sub_steps)
        steps.extend(_step_nodes(sub, str(target)))
    return params, steps


def load_workflow_file(path: str | Path) -> Workflow:
    """Load, merge imports and validate a workflow file (structure only)."""
    path = Path(path)
    doc = read_document(path)
    return build_workflow(doc, path)


def build_workflow(doc: LineDict, path: Path) -> Workflow:
    """Validate a parsed document (with its imports) into a Workflow."""
    file = str(path)
    _check_keys(doc, TOP_LEVEL_KEYS, "top-level", file)
    imported_params, imported_steps = _merge_imports(doc, path, (path.resolve(),))
    step_nodes = imported_steps + _step_nodes(doc, file)
    step_lines: dict[str, int | None] = {}
    steps: list[Step] = []
    for node in step_nodes:
        raw = _normalise_step(node, file)
        name = str(raw["name"])
        if name in step_lines:
            raise SpecError(
                f"step name '{name}' is used twice (first at line {step_lines[name]})",
                file=file,
                line=node.line,
                hint="step names must be unique",
            )
        step_lines[name] = node.line
        try:
            steps.append(Step.model_validate(raw))
        except ValidationError as err:
            problem, loc = _pydantic_problem(err)
            line = _line(node, loc[0]) if loc else node.line
            raise SpecError(f"step '{name}': {problem}", file=file, line=line) from None

    top = {k: v for k, v in doc.items() if k != "steps"}
    params = dict(imported_params)
    params.update(_params_of(doc, file))
    top["params"] = {
        k: (v if isinstance(v, dict) else {"default": v}) for k, v in params.items()
    }
    top.setdefault("name", path.stem)
    if isinstance(top.get("secrets"), str):
        top["secrets"] = [top["secrets"]]
    try:
        workflow = Workflow.model_validate({**top, "steps": [], "source": str(path.resolve())})
    except ValidationError as err:
        problem, loc = _pydantic_problem(err)
        raise SpecError(problem, file=file, line=_line_at(doc, loc) if loc else None) from None
    workflow.steps = steps
    workflow._lines = dict(step_lines)
    check_references(workflow, file=file, lines=step_lines, doc=doc)
    return workflow


def check_references(
    workflow: Workflow,
    *,
    file: str | None = None,
    lines: dict[str, int | None] | None = None,
    doc: LineDict | None = None,
) -> None:
    """Names that must exist do: next targets, depends_on, flows; no depends_on cycle."""
    lines = lines or {}
    names = workflow.step_names
    position = {name: i for i, name in enumerate(names)}
    known = set(names)
    for step in workflow.steps:
        where = lines.get(step.name)
        if step.on_error and step.on_error.next and step.on_error.next not in known:
            raise SpecError(
                f"step '{step.name}': on_error next target '{step.on_error.next}' is not a step",
                file=file,
                line=where,
                hint=_did_you_mean(step.on_error.next, names),
            )
        target = step.on_error.next if step.on_error else None
        if target and position[target] <= position[step.name]:
            # A jump back (or to itself) on failure could run the same steps forever.
            raise SpecError(
                f"step '{step.name}': on_error next target '{target}' "
                + ("is the step itself" if target == step.name else "comes before it"),
                file=file,
                line=where,
                hint="jump forward to a later step; use `retry:` to run a step again",
            )
        for dep in step.depends_on:
            if dep not in known:
                raise SpecError(
                    f"step '{step.name}' depends on unknown step '{dep}'",
                    file=file,
                    line=where,
                    hint=_did_you_mean(dep, names),
                )
            if dep == step.name:
                raise SpecError(f"step '{step.name}' depends on itself", file=file, line=where)
    _check_cycles(workflow, file, lines)
    flows = workflow.flows
    if flows:
        flow_line = doc.line_of("flows") if doc is not None else None
        for flow_name, seq in flows.definitions.items():
            for name in seq:
                if name not in known:
                    raise SpecError(
                        f"flow '{flow_name}' names unknown step '{name}'",
                        file=file,
                        line=flow_line,
                        hint=_did_you_mean(name, names),
                    )
        if flows.default and flows.default not in flows.definitions and flows.default != "all":
            raise SpecError(
                f"flows.default '{flows.default}' is not a defined flow",
                file=file,
                line=flow_line,
                hint=_did_you_mean(flows.default, flows.definitions),
            )


def _check_cycles(workflow: Workflow, file: str | None, lines: dict[str, int | None]) -> None:
    """A depends_on cycle is an error naming it; iterative, so a 20,000-step chain is fine."""
    deps = {s.name: list(s.depends_on) for s in workflow.steps}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in deps:
        if root in state:
            continue
        path: list[str] = [root]
        state[root] = 1
        pending: list[list[str]] = [list(reversed(deps[root]))]
        while pending:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            dep = pending[-1].pop()
            if state.get(dep) == 1:
                cycle = " -> ".join([*path[path.index(dep):], dep])
                raise SpecError(
                    f"depends_on cycle: {cycle}",
                    file=file,
                    line=lines.get(path[-1]),
                    hint="remove one of the dependencies",
                )
            if dep not in state:
                state[dep] = 1
                path.append(dep)
                pending.append(list(reversed(deps[dep])))


def workflow_files(path: str | Path) -> list[Path]:
    """The files a workflow is read from: itself and its imports, transitively (absolute).

    Best effort: a file that does not parse or an import that does not exist ends the
    walk there (`run --watch` still watches what it found, and loading reports the error).
    """
    found: list[Path] = []

    def visit(file: Path) -> None:
        if file in found:
            return
        found.append(file)
        try:
            doc = read_document(file)
        except SpecError:
            return
        imports = doc.get("imports") or []
        for entry in [imports] if isinstance(imports, str) else imports if isinstance(imports, list) else []:
            target = (file.parent / str(entry)).resolve()
            if target.is_file():
                visit(target)

    visit(Path(path).resolve())
    return found
