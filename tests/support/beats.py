"""Real ``yaml-workflow beat`` processes beside a :class:`~tests.support.workers.Fleet`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.workers import Fleet, wait_for
from yaml_workflow.state.stores.redis import Schedules


class Beats:
    """Beat processes of one fleet, each with its own log; the lock holder read from Redis."""

    def __init__(self, fleet: Fleet, lock_ttl: float = 1.0) -> None:
        self.fleet = fleet
        self.lock_ttl = lock_ttl
        self.procs: list[subprocess.Popen[bytes]] = []
        self.store = Schedules(fleet.server.url, fleet.server.prefix)

    def start(self) -> subprocess.Popen[bytes]:
        """One more beat."""
        n = len(self.procs)
        env = {**self.fleet.env, "YAML_WORKFLOW_BEAT_LOCK_TTL": str(self.lock_ttl)}
        log = open(self.fleet.dir / f"beat{n}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "yaml_workflow", "beat", "--loglevel", "INFO"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(self.fleet.dir), start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, n: int) -> str:
        """Beat n's log so far."""
        path: Path = self.fleet.dir / f"beat{n}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def holder(self) -> dict[str, Any] | None:
        """Who holds the beat lock (host, pid, token), or None."""
        return self.store.lock_holder()

    def wait_holder(self, among: list[subprocess.Popen[bytes]], timeout: float = 30) -> subprocess.Popen[bytes]:
        """Until one of ``among`` holds the lock; that one."""
        pids = {p.pid: p for p in among}

        def found() -> subprocess.Popen[bytes] | None:
            holder = self.holder()
            return pids.get(int(holder["pid"])) if holder else None

        return wait_for(found, timeout, f"one of beats {sorted(pids)} to hold the lock")  # type: ignore[no-any-return]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a beat (a machine that died: its lock stays until its TTL)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    def stop(self) -> None:
        """Stop every beat still running."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(proc)
