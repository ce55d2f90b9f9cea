"""``yaml-workflow workspace list|clean|remove``: the run workspaces under a base dir."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import EXIT_OK, EXIT_REFUSED, RunNotFound, UsageError, WorkflowError, printable
from ..settings import get_settings
from ..state.document import RUNNING
from .output import dump

if TYPE_CHECKING:
    from ..state.cleanup import RunEntry


def add_parser(sub: Any) -> None:
    """Register `workspace` and its sub-commands."""
    parser = sub.add_parser("workspace", help="list, clean or remove run workspaces")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True

    def base_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--base-dir", type=Path, default=Path("runs"),
                       help="where the run workspaces are (default: runs)")

    listing = actions.add_parser("list", help="show each workspace with its run and status")
    base_dir(listing)
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(handler=handle_list)

    clean = actions.add_parser("clean", help="remove old workspaces of finished runs")
    base_dir(clean)
    _clean_flags(clean)

    # `clean` (the seed's command) is the same implementation, with --workflow-id and the
    # workspace root as its default base dir; it also removes the runs' Redis keys.
    top = sub.add_parser("clean", help="remove old runs: workspaces and their store records")
    top.add_argument("--base-dir", type=Path,
                     default=None,
                     help="where the run workspaces are (default: $YAML_WORKFLOW_WORKSPACE_ROOT or runs)")
    _clean_flags(top)
    top.add_argument("--workflow-id", action="append", default=[], metavar="ID",
                     help="only this run (repeatable); no age limit unless --older-than is given")

    remove = actions.add_parser("remove", help="remove workspaces by name, path or run id")
    base_dir(remove)
    remove.add_argument("names", nargs="+", metavar="NAME", help="workspace folder name, path or run id")
    remove.add_argument("--force", action="store_true",
                        help="also remove interrupted runs (a live run is never removed)")
    remove.set_defaults(handler=handle_remove)


def _clean_flags(clean: argparse.ArgumentParser) -> None:
    clean.add_argument("--older-than", default=None, metavar="AGE",
                       help="last change at least this long ago: 90s, 30m, 12h, 30d, 2w (default 30d)")
    clean.add_argument("--status", action="append", default=[], metavar="STATUS",
                       help="only runs with this status (repeat or comma-separate; "
                            "default: completed, failed, cancelled)")
    clean.add_argument("--dry-run", action="store_true", help="show what would go; remove nothing")
    clean.set_defaults(handler=handle_clean)


def human_size(size: float) -> str:
    """Bytes as 512 B, 1.5 KB, 3.2 MB..."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


def human_age(seconds: float) -> str:
    """Seconds as 45s, 12m, 5h, 30d."""
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{int(seconds // length)}{unit}"
    return f"{int(max(seconds, 0))}s"


def _status_of(entry: RunEntry) -> str:
    # A `running` run nobody holds was killed or interrupted: say so, it can be resumed.
    if entry.status == RUNNING and not entry.live:
        return "interrupted"
    return entry.status


def handle_list(args: argparse.Namespace) -> int:
    """Print every workspace: name, run id, status, last update, size."""
    from ..state.cleanup import scan_workspaces

    entries = scan_workspaces(args.base_dir)
    if args.format == "json":
        sys.stdout.write(dump([e.to_json() for e in entries], "json"))
        return EXIT_OK
    if not entries:
        print(f"no workspaces under {args.base_dir}")
        return EXIT_OK
    rows = [("WORKSPACE", "RUN ID", "STATUS", "UPDATED", "SIZE")]
    for e in entries:
        updated = datetime.fromtimestamp(e.updated).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((e.name, e.run_id or "-", _status_of(e), updated, human_size(e.size)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    unreadable = [e for e in entries if e.problem]
    for e in unreadable:
        print(f"warning: {e.name}: {e.problem}", file=sys.stderr)
    return EXIT_OK


def handle_clean(args: argparse.Namespace) -> int:
    """Remove workspaces older than --older-than (finished runs unless --status says otherwise)."""
    from ..state.cleanup import check_statuses, parse_age, scan_workspaces
    from ..state.run_removal import clean_runs, records_store

    if args.base_dir is None:
        args.base_dir = Path(get_settings().workspace_root)
    if not args.base_dir.is_dir():
        raise UsageError(f"no such directory: {args.base_dir}", hint="pass --base-dir")
    run_ids = getattr(args, "workflow_id", None) or []
    age = args.older_than if args.older_than is not None else (None if run_ids else "30d")
    older_than = parse_age(age) if age is not None else None
    check_statuses(args.status)  # a bad --status is refused before anything is read
    now = time.time()
    report = clean_runs(scan_workspaces(args.base_dir), older_than=older_than, statuses=args.status,
                        run_ids=run_ids, store=records_store(), dry_run=args.dry_run, now=now)
    verb = "would remove" if args.dry_run else "removed"
    removed = report.of("removed")
    for decision in report.of("failed"):
        print(f"error: {printable(decision.reason)}", file=sys.stderr)
    for decision in removed:
        entry = decision.entry
        note = f"; {decision.records}" if decision.records else ""
        print(f"{verb} {entry.path} ({_status_of(entry)}, {human_age(now - entry.updated)} old, "
              f"{human_size(entry.size)}{note})")
    for decision in report.of("kept"):
        print(f"kept {decision.entry.path}: {decision.reason}")
    print(f"{verb} {len(removed)} workspace(s), {human_size(sum(d.entry.size for d in removed))}"
          + (" (dry run: nothing removed)" if args.dry_run else ""))
    return EXIT_REFUSED if report.of("failed") else EXIT_OK


def _resolve(
    base: Path, name: str, entries: list[RunEntry] | None
) -> tuple[RunEntry, list[RunEntry] | None]:
    """A workspace by folder name under base, by path, or by run id (scanning base once)."""
    from ..state.cleanup import inspect_workspace, is_workspace, scan_workspaces

    for candidate in (base / name, Path(name)):
        if candidate.is_dir() and is_workspace(candidate):
            return inspect_workspace(candidate), entries
    if entries is None:
        entries = scan_workspaces(base)
    for entry in entries:
        if entry.run_id == name:
            return entry, entries
    raise RunNotFound(f"no workspace '{name}' under {base}",
                      hint="give a folder name from 'yaml-workflow workspace list', a path or a run id")


def handle_remove(args: argparse.Namespace) -> int:
    """Remove the named workspaces; all names are resolved before anything is removed."""
    from ..state.cleanup import remove_workspace

    found: list[RunEntry] = []
    entries: list[RunEntry] | None = None
    for name in args.names:
        entry, entries = _resolve(args.base_dir, name, entries)
        found.append(entry)
    code = EXIT_OK
    for entry in found:
        try:
            remove_workspace(entry, force=args.force)
        except WorkflowError as err:
            print(f"error: {printable(err.one_line())}", file=sys.stderr)
            code = err.exit_code
            continue
        print(f"removed {entry.path}")
    return code
