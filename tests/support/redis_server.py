"""A real ``redis-server`` on a free port, started and stopped by the tests.

Tests never use the machine's Redis on 6379: each server here has its own port and
directory, so a test can kill it, restart it (with or without AOF) and flush it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``url`` points at it; a unique key prefix per instance."""

    def __init__(self, *, appendonly: bool = False, directory: Path | None = None) -> None:
        self.appendonly = appendonly
        self.dir = directory or Path(tempfile.mkdtemp(prefix="ywf-redis-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.prefix = f"ywft{uuid.uuid4().hex[:8]}"

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0"""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, attempts: int = 5) -> RedisServer:
        """Start on a free port (retrying on a port clash) and wait until it answers PING."""
        last_error = ""
        for _ in range(attempts):
            self.port = self.port or free_port()
            args = [
                REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always", "--logfile", str(self.dir / "redis.log"),
            ]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready(10.0):
                return self
            last_error = (self.dir / "redis.log").read_text(errors="replace")[-500:] if (self.dir / "redis.log").exists() else ""
            self.kill()
            self.port = 0  # the port was taken between our probe and the bind: pick another
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def kill(self) -> None:
        """SIGKILL the server (data not on disk is gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self, *, appendonly: bool | None = None) -> None:
        """Kill and start again on the same port and directory."""
        self.kill()
        if appendonly is not None:
            self.appendonly = appendonly
        self.start()

    def stop(self) -> None:
        """Stop and remove the directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """Environment pointing the project at this server."""
        return {
            "YAML_WORKFLOW_BROKER_URL": self.url,
            "YAML_WORKFLOW_STATE_URL": self.url,
            "YAML_WORKFLOW_KEY_PREFIX": self.prefix,
        }
