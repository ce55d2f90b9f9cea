"""``yaml-workflow serve-mcp``: a Model Context Protocol server over stdio.

Agents list, validate, run and watch workflows through seven tools and read workflow
files and run states as resources.  The server holds no logic of its own: every tool
calls :mod:`yaml_workflow.client`.  It needs the ``mcp`` extra
(``pip install 'yaml-workflow[mcp]'``); this module imports the SDK only in :func:`serve`.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import UsageError

EXTRA_HINT = "pip install 'yaml-workflow[mcp]'"


def serve(directory: Path, base_dir: Path | None = None) -> int:
    """Serve MCP on stdin/stdout until the client closes the stream; returns the exit code."""
    try:
        import mcp  # noqa: F401 - only to say which extra is missing
    except ModuleNotFoundError:
        raise UsageError("serve-mcp needs the MCP SDK, which is the 'mcp' extra",
                         hint=EXTRA_HINT) from None
    if not directory.is_dir():
        raise UsageError(f"--dir {directory}: no such directory",
                         hint="name the directory of the workflow files to serve (yaml-workflow init makes one)")
    if base_dir is not None and base_dir.exists() and not base_dir.is_dir():
        raise UsageError(f"--base-dir {base_dir} is not a directory", hint="name where run workspaces go")
    from .server import build_server

    build_server(directory, base_dir).run("stdio")
    return 0
