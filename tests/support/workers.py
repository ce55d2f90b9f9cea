"""Real ``yaml-workflow worker`` processes for the fleet tests, on a private redis-server.

A :class:`Fleet` owns one redis-server (its own port, never 6379) and N worker
subprocesses started with ``--without-mingle --without-gossip``; it is ready when every
worker answers a Celery ping, and it stops them (TERM, then KILL) afterwards.  ``submit``
runs the real CLI in a subprocess with the fleet's environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import RedisServer


class Fleet:
    """A redis-server plus worker processes, with the environment that points at them."""

    def __init__(self, workers: int = 2, *, pool: str = "prefork", concurrency: int = 2,
                 env: dict[str, str] | None = None, appendonly: bool = False,
                 queues: dict[int, str] | None = None, broker_only: bool = False) -> None:
        self.server = RedisServer(appendonly=appendonly).start()
        # As the README's fleet section sets it up: the broker URL alone (runs live in the
        # broker's Redis under the default key prefix; the server is this fleet's own).
        self.broker_only = broker_only
        self.dir = Path(tempfile.mkdtemp(prefix="ywf-fleet-"))
        self.count, self.pool, self.concurrency = workers, pool, concurrency
        self.extra = dict(env or {})
        self.queues = dict(queues or {})  # worker number -> the queues it consumes (-Q)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []
        self._app: Any = None

    @property
    def env(self) -> dict[str, str]:
        """The environment of workers and submitters."""
        env = dict(os.environ)
        env.update(self.server.env())
        if self.broker_only:
            for name in ("YAML_WORKFLOW_STATE_URL", "YAML_WORKFLOW_KEY_PREFIX"):
                env.pop(name)
        env["YAML_WORKFLOW_WORKSPACE_ROOT"] = str(self.dir / "runs")
        env.update(self.extra)
        return env

    def start(self, timeout: float = 60.0, only: int | None = None) -> Fleet:
        """Start the workers (``only``: the first ``only`` of them) and wait until each
        answers a ping."""
        for i in range(self.count if only is None else only):
            self.start_worker(i)
        self.wait_ready(timeout, count=only)
        return self

    def start_worker(self, i: int) -> None:
        """Start worker number i (again, after a kill)."""
        name = f"w{i}-{uuid.uuid4().hex[:6]}@%h"
        argv = [sys.executable, "-m", "yaml_workflow", "worker", "--pool", self.pool,
                "--concurrency", str(self.concurrency), "--hostname", name,
                "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
        if i in self.queues:
            argv += ["--queues", self.queues[i]]
        log = open(self.dir / f"worker{i}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        if i < len(self.procs):
            self.procs[i], self.names[i] = proc, name
        else:
            self.procs.append(proc)
            self.names.append(name)

    @property
    def app(self) -> Any:
        """A Celery app on the fleet's broker (ping, inspect, publishing by hand)."""
        if self._app is None:
            from celery import Celery

            from yaml_workflow.executors.celery.config import settings

            conf = settings()  # the fleet's Celery settings, pointed at this fleet's Redis
            conf.update(broker_url=self.server.url, result_backend=self.server.url)
            self._app = Celery("ywf-tests")
            self._app.conf.update(conf)
        return self._app

    def ping(self) -> list[str]:
        """Node names that answered."""
        replies = self.app.control.ping(timeout=0.5) or []
        return [name for reply in replies for name in reply]

    def wait_ready(self, timeout: float = 60.0, count: int | None = None) -> None:
        """Until ``count`` workers (default: all) answer a ping."""
        want = self.count if count is None else count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {i} exited: {self.log(i)[-2000:]}")
            if len(self.ping()) >= want:
                return
            time.sleep(0.2)
        raise RuntimeError(f"workers did not answer a ping in {timeout}s: {self.log(0)[-2000:]}")

    def log(self, i: int) -> str:
        """Worker i's log so far."""
        path = self.dir / f"worker{i}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, i: int) -> None:
        """SIGKILL worker i and its pool processes (a machine that died)."""
        proc = self.procs[i]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    def stop(self) -> None:
        """Stop every worker (TERM, KILL after 10 s) and the redis-server."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for i, proc in enumerate(self.procs):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(i)
        self.server.stop()

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``yaml-workflow ARGS`` with the fleet's environment."""
        full = self.env
        full.update(env or {})
        return subprocess.run([sys.executable, "-m", "yaml_workflow", *args], env=full,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=str(cwd or self.dir), stdin=subprocess.DEVNULL)


class EventLog:
    """Celery task events of the fleet, captured in a thread (task-sent, task-retried...)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._recv: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EventLog:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the event receiver did not start")
        time.sleep(0.3)  # the receiver's queue is bound once capture() has begun
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._recv is not None:
            self._recv.should_stop = True  # checked by the consume loop every second
        self._thread.join(10)

    def _run(self) -> None:
        with self.app.connection() as conn:
            self._recv = self.app.events.Receiver(conn, handlers={"*": self.events.append})
            self._ready.set()
            self._recv.capture(limit=None, timeout=None, wakeup=False)

    def of(self, kind: str, text: str = "") -> list[dict[str, Any]]:
        """Events of one type whose args mention ``text``."""
        return [e for e in list(self.events) if e.get("type") == kind and text in str(e.get("args", ""))]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def fleet_fixture(**kwargs: Any) -> Any:
    """A module-scoped pytest fixture yielding a started :class:`Fleet`."""

    @pytest.fixture(scope="module")
    def fleet() -> Iterator[Fleet]:
        f = Fleet(**kwargs)
        try:
            f.start()
            yield f
        finally:
            f.stop()

    return fleet


def stop_group(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM a process that leads its own session (and its children), SIGKILL after
    ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)
