"""A local run started by the MCP server, in a child process (see :mod:`.child`).

The child's stdin is the request and then nothing, its stdout a private report pipe,
and its stderr (where its fd 1 points too) a console file: nothing a step prints can
reach the server's protocol stream, and a step reading stdin reads nothing.  A thread
reads the report; callers wait on :attr:`ChildRun.started` and :attr:`ChildRun.finished`.
The child has its own session, so the run outlives a server that stops: it ends as it
would have, recorded in its workspace, and `cancel` still stops it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

CONSOLE_TAIL = 4_000  # characters of the child's console shown when it died without a report


class ChildRun:
    """One ``client.run`` in a child process, followed through its report pipe."""

    def __init__(self, workflow: Path, params: dict[str, Any], base_dir: Path | None) -> None:
        self.started = threading.Event()  # the run exists (or the child failed before it did)
        self.finished = threading.Event()  # a result or an error is in
        self.run: dict[str, Any] = {}  # run_id, workspace, workflow
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.exit_code: int | None = None
        self._console = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "yaml_workflow.mcp_server.child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._console,
            start_new_session=True,  # the environment is inherited whole: the run needs it
        )
        request = {"workflow": str(workflow), "params": params,
                   "base_dir": str(base_dir) if base_dir is not None else None}
        assert self.process.stdin is not None
        with self.process.stdin:
            self.process.stdin.write(json.dumps(request).encode("utf-8"))
        threading.Thread(target=self._follow, name=f"run-{self.process.pid}", daemon=True).start()

    def _follow(self) -> None:
        """Read the report to its end, then reap the child."""
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                try:
                    report = json.loads(line)
                except ValueError:
                    continue  # not a report line: nothing else writes here, but never trust it
                if not isinstance(report, dict):
                    continue
                kind = report.pop("event", None)
                if kind == "run":
                    self.run = report
                    self.started.set()
                elif kind == "result" and isinstance(report.get("result"), dict):
                    self.result = report["result"]
                elif kind == "error":
                    self.error = str(report.get("message"))
                    self.exit_code = report.get("exit_code")
        code = self.process.wait()
        if self.result is None and self.error is None:
            self.error = f"the run's process ended with exit code {code} before it reported: {self._tail()}"
            self.exit_code = code
        self._console.close()
        self.finished.set()
        self.started.set()

    def _tail(self) -> str:
        """The end of what the child printed (for a child that died without a report)."""
        self._console.seek(0, os.SEEK_END)
        size = self._console.tell()
        self._console.seek(max(0, size - CONSOLE_TAIL))
        text = self._console.read().decode("utf-8", errors="replace")
        return " ".join(text.split()) or "(it printed nothing)"
