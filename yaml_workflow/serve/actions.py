"""Signing in with the action token, and the actions: retry, skip, cancel, resume.

Without a token the server is read-only: no button is drawn and every POST here is
refused (403).  With one, an action needs a session opened with the token (or an
``Authorization: Bearer`` header, which no other site can make a browser send), and a
browser's form must carry the CSRF token of its cookie and come from this origin.
Each action calls the client; a local run goes on in a process of its own (``detach``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from .. import client
from ..exceptions import UsageError, WorkflowError
from .render import FLASH_COOKIE, SECURITY_HEADERS, Pages
from .security import CSRF_FIELD, SESSION_COOKIE, Guard, ServeOptions, check_run_id

ACTIONS = ("retry", "skip", "cancel", "resume")
MAX_FORM = 16_384  # bytes: a form here holds a token, a step name and a CSRF token


def _refused(text: str, code: int = 403) -> Response:
    return PlainTextResponse(text + "\n", status_code=code, headers=SECURITY_HEADERS)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise UsageError("the form is too large")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def _local_path(target: str | None) -> str:
    """A redirect target on this server only (no ``//host`` or scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Actions:
    """The sign-in and action endpoints of one dashboard."""

    def __init__(self, options: ServeOptions, guard: Guard, pages: Pages) -> None:
        self.options = options
        self.guard = guard
        self.pages = pages

    def _cross_site(self, request: Request) -> bool:
        return not self.guard.same_origin(request.headers.get("origin"), request.headers.get("sec-fetch-site"))

    def _bearer(self, request: Request) -> bool:
        return (request.headers.get("authorization") or "").lower().startswith("bearer ")

    async def login_page(self, request: Request) -> Response:
        """The sign-in form (only when the server has a token)."""
        if not self.options.actions:
            return _refused("this dashboard is read-only: it was started without YAML_WORKFLOW_UI_TOKEN", 404)
        target = _local_path(request.query_params.get("next"))
        return self.pages.render(request, "login.html", target=target, error=None)

    async def login(self, request: Request) -> Response:
        """Open a session when the form carries the token (and a valid CSRF token)."""
        if not self.options.actions:
            return _refused("this dashboard is read-only: it was started without YAML_WORKFLOW_UI_TOKEN")
        form = await _form(request)
        if self._cross_site(request) or not self.guard.csrf_ok(dict(request.cookies), form.get(CSRF_FIELD)):
            return _refused("refused: the form did not come from this dashboard (CSRF check)")
        target = _local_path(form.get("next"))
        if not self.guard.token_matches(form.get("token")):
            return self.pages.render(request, "login.html", status_code=403, target=target,
                                           error="That is not the token this server was started with.")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, self.guard.session_value(), httponly=True, samesite="strict")
        return response

    async def logout(self, request: Request) -> Response:
        """Close the session."""
        form = await _form(request)
        if self._cross_site(request) or not self.guard.csrf_ok(dict(request.cookies), form.get(CSRF_FIELD)):
            return _refused("refused: the form did not come from this dashboard (CSRF check)")
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def act(self, request: Request) -> Response:
        """Retry, skip, cancel or resume: token, CSRF and origin checked, then the client called."""
        if not self.options.actions:
            return _refused("refused: this dashboard is read-only (started without YAML_WORKFLOW_UI_TOKEN)")
        run_id = check_run_id(str(request.path_params["run_id"]))
        action = str(request.path_params["action"])
        form = await _form(request)
        if self._cross_site(request):
            return _refused("refused: a request from another site")
        if not self.guard.signed_in(dict(request.cookies), request.headers.get("authorization")):
            return _refused("refused: sign in with the action token first", 401)
        if not self._bearer(request) and not self.guard.csrf_ok(dict(request.cookies), form.get(CSRF_FIELD)):
            return _refused("refused: the form did not come from this dashboard (CSRF check)")
        if action not in ACTIONS:
            return _refused(f"unknown action; one of {', '.join(ACTIONS)}", 404)
        step = form.get("step") or None
        try:
            outcome = await _run(self.options, action, run_id, step)
            message, ok = outcome.message, True
        except WorkflowError as err:
            message, ok = err.one_line(), False
        if self._bearer(request) or "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"ok": ok, "message": message}, status_code=200 if ok else 409,
                                headers=SECURITY_HEADERS)
        response = RedirectResponse(f"/runs/{run_id}", status_code=303)
        response.set_cookie(FLASH_COOKIE, quote(("" if ok else "error: ") + message), httponly=True,
                            samesite="strict", max_age=60)
        return response


async def _run(options: ServeOptions, action: str, run_id: str, step: str | None) -> Any:
    """Call the client for ``action`` in the thread pool (it reads and writes the store)."""
    base = options.base_dir
    if action in ("retry", "skip"):
        if not step:
            raise UsageError(f"{action} needs a step")
        call = client.retry if action == "retry" else client.skip
        return await run_in_threadpool(lambda: call(run_id, step, base_dir=base, detach=True))
    if action == "cancel":
        return await run_in_threadpool(lambda: client.cancel(run_id, base_dir=base))
    return await run_in_threadpool(lambda: client.resume_detached(run_id, base_dir=base))
