"""``yaml-workflow serve-mcp``: parse the flags and hand over to :mod:`yaml_workflow.mcp_server`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register `serve-mcp`."""
    p = sub.add_parser("serve-mcp", help="serve MCP over stdio: agents list, validate, run and watch workflows "
                                         "(extra: mcp)")
    p.add_argument("--dir", type=Path, default=Path("workflows"), dest="directory",
                   help="the workflow files clients may name and run, and nothing else (default: workflows)")
    p.add_argument("--base-dir", type=Path, dest="base_dir",
                   help="where runs' workspaces go and are looked up (default: runs, and "
                        "YAML_WORKFLOW_WORKSPACE_ROOT for the fleet, as `run` and `submit` do)")
    p.set_defaults(handler=handle_serve_mcp)


def handle_serve_mcp(args: argparse.Namespace) -> int:
    """Serve until the client closes stdin."""
    from ..mcp_server import serve

    return serve(args.directory, args.base_dir)
