"""fakeredis for the fleet's unit tests: a server with a start time, and INFO.

The fleet's ``begin`` script reads ``INFO server``'s ``uptime_in_seconds`` (a step whose
claim vanished is not re-taken until Redis has been up one claim TTL), and fakeredis
has no INFO.  This adds one that answers that field from the server's start time, which
:func:`restart` resets.  fakeredis has no public way to add a command: this uses its
``command`` decorator and its socket class, the way its own command mixins do.
"""

from __future__ import annotations

import time
from typing import Any

import fakeredis
from fakeredis._commands import command
from fakeredis._socket._fakesocket import FakeSocket


def info(self: Any, *sections: bytes) -> bytes:
    """INFO: only the server section's uptime (and a version), whatever is asked."""
    server = self._server
    up = int(time.time() - getattr(server, "ywf_started", server.lastsave))
    return f"# Server\r\nredis_version:7.0.0\r\nuptime_in_seconds:{max(0, up)}\r\n".encode()


if not hasattr(FakeSocket, "info"):
    FakeSocket.info = command((), (bytes,))(info)  # type: ignore[attr-defined]


def fake_server(up_for: float = 86400.0) -> fakeredis.FakeServer:
    """A fresh, empty fake Redis server that has been up ``up_for`` seconds (a day: the
    steady state, where no restart is recent)."""
    server = fakeredis.FakeServer()
    server.ywf_started = time.time() - up_for  # type: ignore[attr-defined]
    return server


def restart(server: fakeredis.FakeServer) -> None:
    """Count the server's uptime from now (as after a restart that kept the data)."""
    server.ywf_started = time.time()  # type: ignore[attr-defined]
