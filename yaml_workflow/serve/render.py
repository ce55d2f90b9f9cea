"""Rendering pages: one Jinja2 environment with autoescape always on, its filters, the CSRF cookie.

Every value reaches the HTML through autoescape (or :mod:`markupsafe` in the SVG), so a
step named ``<script>`` is shown as text.  Pages carry a strict Content-Security-Policy
(scripts and styles from this server only, no inline script), so even a missed escape
could not run code.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .security import CSRF_COOKIE, SESSION_COOKIE, Guard, ServeOptions

TEMPLATES = Path(__file__).parent / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
FLASH_COOKIE = "ywf_flash"  # the outcome of an action, shown once on the next page
STATUSES = ("running", "completed", "failed", "cancelled")


def duration(seconds: Any) -> str:
    """``0.42s``, ``3m05s``, ``2h01m``: short and sortable by eye."""
    if not isinstance(seconds, (int, float)):
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def when(value: Any) -> str:
    """An ISO time (or epoch seconds) as ``2026-11-27 14:04:31`` UTC."""
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def pretty(value: Any, limit: int = 200_000) -> str:
    """Indented JSON, cut at ``limit`` characters (the whole value stays in the store)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "\n... (cut)"


def resources(value: Any) -> str:
    """A step's resources on one line: ``cpu 0.12s, child cpu 0.3s, rss 41 MB`` (zeros left out)."""
    if not isinstance(value, dict):
        return ""
    parts = []
    for key, item in value.items():
        if not isinstance(item, (int, float)) or isinstance(item, bool) or not item:
            continue
        label = key.removesuffix("_seconds").removesuffix("_kb").replace("children_", "child ").replace("_", " ")
        label = label.replace("process max rss", "rss").replace("child max rss", "child rss")
        if key.endswith("_seconds"):
            parts.append(f"{label} {item:.3g}s")
        elif key.endswith("_kb"):
            parts.append(f"{label} {item / 1024:.0f} MB")
        else:
            parts.append(f"{label} {item:g}")
    return ", ".join(parts)


def percent(done: Any, total: Any) -> int:
    """done/total as a whole percentage (0 without a total)."""
    if not isinstance(done, (int, float)) or not isinstance(total, (int, float)) or total <= 0:
        return 0
    return max(0, min(100, round(100 * done / total)))


def environment() -> jinja2.Environment:
    """The dashboard's templates: autoescape on for every template, whatever its name."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(duration=duration, when=when, pretty=pretty, resources=resources,
                       q=lambda v: quote(str(v), safe=""), qpath=lambda v: quote(str(v), safe="/"))
    env.globals.update(percent=percent, statuses=STATUSES)
    return env


class Pages:
    """Renders templates with what every page needs (options, sign-in state, CSRF token)."""

    def __init__(self, options: ServeOptions, guard: Guard) -> None:
        self.env = environment()
        self.options = options
        self.guard = guard

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        """The page ``name`` as a response, with the CSRF cookie set if it was missing."""
        nonce = request.cookies.get(CSRF_COOKIE) or self.guard.new_nonce()
        signed_in = self.guard.signed_in(dict(request.cookies), request.headers.get("authorization"))
        flash = unquote(request.cookies.get(FLASH_COOKIE, "")) or None
        html = self.env.get_template(name).render(
            actions=self.options.actions, signed_in=signed_in, csrf=self.guard.csrf_for(nonce),
            flash=flash, request_path=request.url.path, **context)
        response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="strict")
        if flash:
            response.delete_cookie(FLASH_COOKIE)
        if request.cookies.get(SESSION_COOKIE) and not signed_in:
            response.delete_cookie(SESSION_COOKIE)  # from an earlier server process
        return response
