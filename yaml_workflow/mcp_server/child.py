"""The process a local run of the MCP server lives in: ``python -m yaml_workflow.mcp_server.child``.

It reads one request (JSON: workflow, params, base_dir) on stdin, runs it with
:func:`yaml_workflow.client.run`, and reports on its stdout pipe as JSON lines:
``{"event": "run", "run_id", "workspace", "workflow"}`` once the run exists, then
``{"event": "result", "result": ...}`` or ``{"event": "error", "message", "exit_code"}``.

Before anything runs, file descriptor 1 is pointed at descriptor 2 (the console file
the server gave it): a ``print()`` in ``python_code`` or a shell step that inherits the
descriptor writes there, never into the report and never into the server's protocol
stream.  Its own process also makes it the run's owner, so ``cancel`` (SIGTERM to the
owner) stops the run without touching the server.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from ..exceptions import EXIT_FAILED, WorkflowError


def _take_report_stream() -> TextIO:
    """A private copy of stdout for the report; fd 1 and 0 are then the console and nothing."""
    report = os.fdopen(os.dup(1), "w", encoding="utf-8")  # os.dup: not inherited by steps
    sys.stdout.flush()
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return report


def main() -> int:
    """Run the request read on stdin; report on the private stream; return the exit code."""
    request = json.loads(sys.stdin.read())
    report = _take_report_stream()

    def emit(kind: str, **fields: Any) -> None:
        try:
            report.write(json.dumps({"event": kind, **fields}, default=str) + "\n")
            report.flush()
        except OSError:
            pass  # the server is gone; the run is recorded in its workspace all the same

    def observer(kind: str, event: dict[str, Any]) -> None:
        if kind == "run":
            emit("run", **event)

    try:
        from .. import client
        from ..settings import load_settings

        load_settings()
        result = client.run(Path(request["workflow"]), request.get("params") or {},
                            base_dir=request.get("base_dir"), observer=observer)
    except WorkflowError as err:
        emit("error", message=err.one_line(), exit_code=err.exit_code)
        return err.exit_code
    except Exception as err:  # noqa: BLE001 - reported to the server, traceback in the console
        traceback.print_exc()
        emit("error", message=f"internal error: {type(err).__name__}: {err}", exit_code=EXIT_FAILED)
        return EXIT_FAILED
    emit("result", result=result.model_dump(mode="json"))
    return 0 if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
