"""A real ``yaml-workflow serve`` process for the dashboard's browser tests, and its screenshots.

:class:`DashboardServer` starts the CLI on a free loopback port with a given environment
(a fleet's, a token or not) and waits until it answers; :func:`screenshots` takes the
pictures the README shows (used by the browser test and scripts/dashboard-screenshot).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.redis_server import free_port

# A step waits for a gate file, so whoever runs it decides when it finishes.
GATED = """
name: gated_pipeline
params:
  gate: {type: string}
steps:
  - name: prepare
    task: echo
    inputs: {message: ready}
  - name: wait_for_gate
    task: python_code
    depends_on: [prepare]
    inputs:
      code: |
        import os, time
        while not os.path.exists(args["gate"]):
            time.sleep(0.05)
        result = "gate opened"
  - name: side_task
    task: echo
    depends_on: [prepare]
    inputs: {message: beside}
  - name: publish
    task: echo
    depends_on: [wait_for_gate, side_task]
    inputs: {message: published}
"""
EXAMPLES = ("hello_world.yaml", "parallel_steps.yaml")
RUNS_IMAGE = "dashboard-runs.png"
RUN_IMAGE = "dashboard-run.png"
VIEWPORT = {"width": 1360, "height": 860}


class DashboardServer:
    """``yaml-workflow serve`` in a subprocess on a free port."""

    def __init__(self, env: dict[str, str], *, cwd: Path, token: str | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in env.items() if k != "YAML_WORKFLOW_UI_TOKEN"}
        if token:
            self.env["YAML_WORKFLOW_UI_TOKEN"] = token
        self.cwd, self.args = cwd, args
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> DashboardServer:
        """Start and wait until GET / answers (or the process exits)."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "yaml_workflow", "serve", "--port", str(self.port), *self.args],
                env=self.env, cwd=str(self.cwd), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2):  # noqa: S310 - loopback
                    return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise RuntimeError(f"serve did not answer in {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """TERM, then KILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def submit(fleet: Any, text: str, name: str, **params: str) -> str:
    """Submit a workflow text to the fleet (not waiting); its run id."""
    path = fleet.dir / name
    path.write_text(text)
    proc = fleet.cli("submit", str(path), *(f"{k}={v}" for k, v in params.items()))
    if proc.returncode != 0:
        raise RuntimeError(f"submit {name} failed: {proc.stderr}")
    return str(proc.stdout.splitlines()[0].strip())


def submit_examples(fleet: Any, root: Path) -> list[str]:
    """Submit a few of the repository's examples (not waiting); their run ids."""
    return [submit(fleet, (root / "examples" / name).read_text(), name) for name in EXAMPLES]


def screenshots(page: Any, base_url: str, run_id: str, out_dir: Path) -> list[Path]:
    """The runs list and one run's page, as PNG files in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(VIEWPORT)
    page.goto(base_url + "/")
    runs = out_dir / RUNS_IMAGE
    page.screenshot(path=str(runs))
    page.goto(f"{base_url}/runs/{run_id}")
    page.wait_for_selector("svg.graph")
    run = out_dir / RUN_IMAGE
    page.screenshot(path=str(run), full_page=True)
    return [runs, run]
