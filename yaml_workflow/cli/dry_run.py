"""Printing `run --dry-run`."""

from __future__ import annotations

import argparse
from typing import Any

from ..exceptions import UsageError
from ..spec.models import Workflow
from .output import dump, short


def dry_run(workflow: Workflow | None, params: dict[str, str], args: argparse.Namespace,
            skip: list[str]) -> int:
    """Print the preview of a run; exit 0."""
    from ..engine.dry_run import preview

    if workflow is None or args.resume:
        raise UsageError("--dry-run previews a fresh run of a workflow file")
    entries = preview(workflow, params, base_dir=args.base_dir, flow=args.flow,
                      start_from=args.start_from, skip_steps=skip)
    if args.format != "text":
        print(dump({"dry_run": True, "workflow": workflow.name, "steps": entries}, args.format), end="")
        return 0
    print(f"DRY-RUN of workflow '{workflow.name}': {len(entries)} step(s), nothing is executed")
    for entry in entries:
        head = f"DRY-RUN step {entry['step']} ({entry['task']})"
        if "skip" in entry:
            print(f"{head}: would be skipped ({entry['skip']})")
            continue
        print(head)
        if "condition" in entry:
            print(f"    condition: {short(entry['condition'])}")
        inputs: Any = entry.get("inputs") or {}
        for key, value in inputs.items():
            print(f"    {key}: {short(value, 200)}")
        if "note" in entry:
            print(f"    ({entry['note']})")
    return 0
