"""What keeps the dashboard safe by default: where it listens, who may act, and how.

- It listens on loopback unless told otherwise; a non-loopback ``--host`` needs the
  action token or an explicit ``--public-read-only`` (outputs and logs can be private).
- The Host header must name the bind address or an allowed host: a page of another
  site whose DNS name is re-pointed at 127.0.0.1 (DNS rebinding) gets a 400.
- Actions exist only with ``YAML_WORKFLOW_UI_TOKEN``; each needs a session opened with
  the token (or ``Authorization: Bearer TOKEN``) and, from a browser, a CSRF token bound
  to a cookie by a key of this process, plus a same-origin ``Origin`` when one is sent.
- Run references in URLs are run ids, never paths (a path would reach any workspace).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..exceptions import UsageError

LOOPBACK_NAMES = frozenset(("localhost", "127.0.0.1", "::1"))
WILDCARDS = frozenset(("0.0.0.0", "::", ""))
SESSION_COOKIE = "ywf_session"
CSRF_COOKIE = "ywf_csrf"
CSRF_FIELD = "csrf"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ServeOptions:
    """How the dashboard was started (``yaml-workflow serve`` flags and the token)."""

    host: str = "127.0.0.1"
    port: int = 8080
    base_dir: Path | None = None
    token: str | None = None
    public_read_only: bool = False
    allowed_hosts: tuple[str, ...] = field(default=())

    @property
    def actions(self) -> bool:
        """Retry, skip, cancel and resume are offered (a token, and not --public-read-only)."""
        return bool(self.token) and not self.public_read_only


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(options: ServeOptions) -> None:
    """Refuse (UsageError, exit 2) an address that would expose runs to the network unguarded."""
    if is_loopback(options.host):
        return
    if not options.token and not options.public_read_only:
        raise UsageError(
            f"--host {options.host} would show every run's outputs and logs to the network",
            hint="set YAML_WORKFLOW_UI_TOKEN, or pass --public-read-only to serve them read-only on purpose")
    if options.host.strip("[]") in WILDCARDS and not options.allowed_hosts:
        raise UsageError(
            f"--host {options.host} listens on every address: name the host names browsers will use",
            hint="add --allow-host NAME (repeatable); requests for other names are refused (DNS rebinding)")


def allowed_hosts(options: ServeOptions) -> frozenset[str]:
    """Host header names the server answers to."""
    names = {h.strip("[]").lower() for h in options.allowed_hosts}
    bind = options.host.strip("[]").lower()
    if bind not in WILDCARDS:
        names.add(bind)
    if is_loopback(bind) or bind in WILDCARDS:
        names |= LOOPBACK_NAMES
    return frozenset(names)


def host_name(header: str) -> str:
    """The name in a Host header, without its port (``[::1]:8080`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """ASGI middleware: a request whose Host header names another host gets a 400."""

    def __init__(self, app: Any, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                await _plain(send, 400, "unknown Host header: this dashboard answers to "
                                        + ", ".join(sorted(self.allowed)) + " (see serve --allow-host)\n")
                return
        await self.app(scope, receive, send)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def check_run_id(run_id: str) -> str:
    """A run id from a URL (letters, digits, - and _), never a path."""
    if not _RUN_ID.match(run_id):
        raise UsageError(f"'{run_id[:80]}' is not a run id")
    return run_id


class Guard:
    """The action token, sessions and CSRF tokens of one server process."""

    def __init__(self, options: ServeOptions) -> None:
        self.token = options.token if options.actions else None
        self.allowed = allowed_hosts(options)
        # Keyed by a secret of this process: a restart signs everyone out.
        self._key = secrets.token_bytes(32)

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def token_matches(self, given: str | None) -> bool:
        """``given`` is the action token (constant-time)."""
        return bool(self.token) and given is not None and hmac.compare_digest(
            given.encode(), str(self.token).encode())

    def session_value(self) -> str:
        """The session cookie of someone who gave the token (it never holds the token)."""
        return self._sign(f"session:{self.token}")

    def signed_in(self, cookies: dict[str, str], authorization: str | None) -> bool:
        """A valid session cookie, or ``Authorization: Bearer TOKEN``."""
        if not self.token:
            return False
        if authorization and authorization.lower().startswith("bearer "):
            return self.token_matches(authorization[7:].strip())
        return hmac.compare_digest(cookies.get(SESSION_COOKIE, ""), self.session_value())

    def new_nonce(self) -> str:
        """A fresh CSRF cookie value."""
        return secrets.token_urlsafe(24)

    def csrf_for(self, nonce: str) -> str:
        """The form token that goes with a CSRF cookie value."""
        return self._sign(f"csrf:{nonce}")

    def csrf_ok(self, cookies: dict[str, str], form_token: str | None) -> bool:
        """The form's token matches the cookie (an attacker can set neither from another site)."""
        nonce = cookies.get(CSRF_COOKIE)
        return bool(nonce and form_token) and hmac.compare_digest(self.csrf_for(str(nonce)), str(form_token))

    def same_origin(self, origin: str | None, fetch_site: str | None) -> bool:
        """No cross-site request: ``Origin`` (when sent) names an allowed host."""
        if fetch_site and fetch_site not in ("same-origin", "none"):
            return False
        if origin is None:
            return True
        parsed = urlparse(origin)
        return origin != "null" and (parsed.hostname or "") in self.allowed
