"""Commands about workflow files: ``validate``, ``visualize``, ``list``, ``init``, ``schema``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..exceptions import EXIT_OK, EXIT_REFUSED, UsageError
from .output import dump, short


def add_parser(sub: Any) -> None:
    """Register validate, visualize, list, init and schema."""
    p = sub.add_parser("validate", help="check a workflow file without running it")
    p.add_argument("workflow", type=Path, help="the workflow YAML file")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=handle_validate)

    p = sub.add_parser("visualize", help="draw a workflow's steps as text or Mermaid")
    p.add_argument("workflow", type=Path, help="the workflow YAML file")
    p.add_argument("--format", choices=("text", "mermaid"), default="text")
    p.add_argument("--flow", help="the flow to draw (default: flows.default, else every step)")
    p.set_defaults(handler=handle_visualize)

    p = sub.add_parser("list", help="list workflow files (or task types with --tasks)")
    p.add_argument("directory", type=Path, nargs="?", metavar="DIR",
                   help="where to look (default: workflows if it exists, else .)")
    p.add_argument("--base-dir", type=Path, dest="base_dir", help=argparse.SUPPRESS)  # public CLI's spelling
    p.add_argument("--tasks", action="store_true", help="list the registered task types instead")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=handle_list)

    p = sub.add_parser("init", help="copy the bundled example workflows into a directory")
    p.add_argument("--dir", type=Path, default=Path("workflows"), help="target (default: workflows)")
    p.add_argument("--example", metavar="NAME", help="copy only this example (e.g. hello_world)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    p.set_defaults(handler=handle_init)

    p = sub.add_parser("schema", help="print the JSON Schema of workflow files (for editors)")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write it to FILE instead")
    p.set_defaults(handler=handle_schema)


# --- validate -----------------------------------------------------------------------


def handle_validate(args: argparse.Namespace) -> int:
    """Exit 0 when the file loads (and, with --strict, has no warnings), else 2."""
    from .. import client

    # In text, a load error is the usual one line (main prints it, exit 2).
    target = client.load(args.workflow) if args.format == "text" else args.workflow
    report = client.validate(target, strict=args.strict)
    file, valid, steps = str(args.workflow), report.valid, report.steps
    errors = [e.model_dump() for e in report.errors]
    warnings = [w.model_dump() for w in report.warnings]
    if args.format == "json":
        doc = {"valid": valid, "file": file, "steps": steps, "error_count": len(errors),
               "errors": errors, "warnings": warnings}
        sys.stdout.write(dump(doc, "json"))
        return EXIT_OK if valid else EXIT_REFUSED
    for entry in warnings:
        print(f"warning: {file}:{entry['line'] or '?'}: {entry['message']}", file=sys.stderr)
    if not valid:
        for entry in errors:
            print(f"error: {file}:{entry['line'] or '?'}: {entry['message']}", file=sys.stderr)
        print(f"INVALID: {file} ({len(errors)} warning(s) treated as errors by --strict)",
              file=sys.stderr)
        return EXIT_REFUSED
    note = f", {len(warnings)} warning(s)" if warnings else ""
    print(f"VALID: {file} ({steps} steps{note})")
    return EXIT_OK


# --- visualize ----------------------------------------------------------------------


def handle_visualize(args: argparse.Namespace) -> int:
    """Print the steps of a flow as text with arrows or as a Mermaid flowchart."""
    from ..engine.graph import build_graph, to_mermaid, to_text
    from ..engine.load import load_workflow

    graph = build_graph(load_workflow(args.workflow), args.flow)
    sys.stdout.write(to_mermaid(graph) if args.format == "mermaid" else to_text(graph))
    return EXIT_OK


# --- list ---------------------------------------------------------------------------


def _list_tasks(fmt: str) -> int:
    from ..tasks import get_task, task_names

    rows = []
    for name in task_names():
        doc = (get_task(name).func.__doc__ or "").strip().splitlines()
        rows.append({"task": name, "description": doc[0] if doc else ""})
    if fmt == "json":
        sys.stdout.write(dump(rows, "json"))
        return EXIT_OK
    width = max((len(r["task"]) for r in rows), default=0)
    for row in rows:
        print(f"{row['task']:<{width}}  {row['description']}".rstrip())
    return EXIT_OK


def handle_list(args: argparse.Namespace) -> int:
    """List workflow files under DIR with name and description; broken ones are marked."""
    from .. import client

    if args.tasks:
        return _list_tasks(args.format)
    root = args.directory or args.base_dir or (Path("workflows") if Path("workflows").is_dir() else Path("."))
    rows = [row.model_dump(include={"file", "valid", "error"} if not row.valid else
                           {"file", "valid", "name", "description", "steps"})
            for row in client.list_workflows(root)]
    if args.format == "json":
        sys.stdout.write(dump(rows, "json"))
        return EXIT_OK
    if not rows:
        print(f"no workflow files under {root}")
        return EXIT_OK
    for row in rows:
        if row["valid"]:
            desc = f" - {short(row['description'], 80)}" if row["description"] else ""
            count = f"{row['steps']} step{'' if row['steps'] == 1 else 's'}"
            print(f"{row['file']}: {row['name']} ({count}){desc}")
        else:
            print(f"{row['file']}: ERROR {short(row['error'], 200)}")
    return EXIT_OK


# --- init ---------------------------------------------------------------------------


def bundled_examples() -> dict[str, Any]:
    """The example workflows shipped in the package, by name (file stem)."""
    from importlib import resources

    folder = resources.files("yaml_workflow") / "examples"
    return {
        entry.name.rsplit(".", 1)[0]: entry
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def handle_init(args: argparse.Namespace) -> int:
    """Copy the examples into --dir; refuse to overwrite anything without --force."""
    examples = bundled_examples()
    if args.example:
        wanted = args.example.removesuffix(".yaml")
        if wanted not in examples:
            raise UsageError(f"no example named '{args.example}'",
                             hint=f"examples: {', '.join(sorted(examples))}")
        examples = {wanted: examples[wanted]}
    targets = {args.dir / f"{name}.yaml": entry for name, entry in sorted(examples.items())}
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        # Checked for every file first, so a refused init writes nothing at all.
        raise UsageError(f"{', '.join(existing)} already exist(s)", hint="pass --force to overwrite")
    args.dir.mkdir(parents=True, exist_ok=True)
    for target, entry in targets.items():
        target.write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
        print(f"created {target}")
    # hello_world is the one to try first when it was copied.
    first = next((t for t in targets if t.stem == "hello_world"), next(iter(targets)))
    print(f"next: yaml-workflow run {first}")
    return EXIT_OK


# --- schema -------------------------------------------------------------------------


def handle_schema(args: argparse.Namespace) -> int:
    """Print (or write) the JSON Schema of the dialect."""
    from ..spec.schema import workflow_schema
    from ..tasks import task_names

    text = json.dumps(workflow_schema(task_names()), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
