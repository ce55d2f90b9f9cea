"""The dashboard's ASGI app: routes, error pages and the Host check, wired together.

Endpoints are plain functions (Starlette runs them in its thread pool): each reads
the request, calls :mod:`yaml_workflow.client` and renders the answer.

    GET  /                                 the runs list (?status=&workflow=&offset=)
    GET  /runs/{id}                        a run: graph, steps, params, history
    GET  /runs/{id}/step?name=S            a step: its record, output and log
    GET  /runs/{id}/files[/{path}]         the run's workspace files
    GET  /api/runs, /api/runs/{id}         the same as JSON (the pages poll these)
    GET  /login   POST /login, /logout     sign in with the action token
    POST /runs/{id}/actions/{action}       retry, skip, cancel, resume (token + CSRF)
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import client
from ..exceptions import RunNotFound, StoreUnavailable, UsageError, WorkflowError
from . import actions
from .graph import render_graph
from .render import SECURITY_HEADERS, STATUSES, Pages
from .security import Guard, HostCheck, ServeOptions, check_run_id

PAGE_SIZE = 50
STATIC = __file__.rsplit("/", 1)[0] + "/static"


def _int(value: str | None, default: int = 0) -> int:
    try:
        return max(0, int(value)) if value else default
    except ValueError:
        raise UsageError(f"'{value[:20] if value else ''}' is not a whole number") from None


class Dashboard:
    """The endpoints, bound to the server's options."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.guard = Guard(options)
        self.pages = Pages(options, self.guard)
        self.base_dir = options.base_dir

    # --- the runs list ---------------------------------------------------------------

    def _listing(self, request: Request) -> tuple[client.RunList, dict[str, str]]:
        query = request.query_params
        status = query.get("status") or None
        if status and status not in STATUSES:
            raise UsageError(f"unknown status '{status[:40]}'", hint=f"one of {', '.join(STATUSES)}")
        workflow = (query.get("workflow") or "").strip() or None
        listing = client.runs(base_dir=self.base_dir, limit=PAGE_SIZE, offset=_int(query.get("offset")),
                              status=status, workflow=workflow)
        return listing, {"status": status or "", "workflow": workflow or ""}

    def runs_page(self, request: Request) -> Response:
        """The runs list: server-rendered rows, each linking to its run."""
        listing, filters = self._listing(request)
        return self.pages.render(request, "runs.html", listing=listing, filters=filters,
                                 page_size=PAGE_SIZE)

    def runs_json(self, request: Request) -> Response:
        """The runs list as JSON (what the list page polls)."""
        listing, _ = self._listing(request)
        return JSONResponse(listing.model_dump(mode="json"), headers=SECURITY_HEADERS)

    # --- one run ---------------------------------------------------------------------

    def _run_id(self, request: Request) -> str:
        return check_run_id(str(request.path_params["run_id"]))

    def run_page(self, request: Request) -> Response:
        """A run: its graph, step table, progress, params and history."""
        status = client.status(self._run_id(request), base_dir=self.base_dir)
        return self.pages.render(request, "run.html", run=status, graph=render_graph(status.steps))

    def run_json(self, request: Request) -> Response:
        """A run's status as JSON (what the run page polls every second)."""
        status = client.status(self._run_id(request), base_dir=self.base_dir)
        return JSONResponse(status.model_dump(mode="json"), headers=SECURITY_HEADERS)

    def step_page(self, request: Request) -> Response:
        """A step: its record, its output (stored masked) and its log."""
        run_id = self._run_id(request)
        name = request.query_params.get("name") or ""
        status = client.status(run_id, base_dir=self.base_dir)
        row = next((s for s in status.steps if s.step == name), None)
        if row is None:
            raise RunNotFound(f"run {run_id} has no step '{name[:200]}'")
        output = client.outputs(run_id, step=name, base_dir=self.base_dir)[0]
        try:
            log = client.logs(run_id, step=name, base_dir=self.base_dir)[0]
        except UsageError:
            log = None  # not run yet, nothing logged, or no workspace on this machine
        return self.pages.render(request, "step.html", run=status, step=row, output=output, log=log)

    def files_page(self, request: Request) -> Response:
        """The run's workspace files, or one of them."""
        run_id = self._run_id(request)
        status = client.status(run_id, base_dir=self.base_dir)
        path = request.path_params.get("path")
        if path:
            content = client.read_file(run_id, path, base_dir=self.base_dir)
            return self.pages.render(request, "file.html", run=status, file=content)
        return self.pages.render(request, "files.html", run=status,
                                 files=client.files(run_id, base_dir=self.base_dir))

    # --- errors ----------------------------------------------------------------------

    def error(self, request: Request, exc: Exception) -> Response:
        """A WorkflowError as a page (or JSON under /api): 404, 503, or 400."""
        assert isinstance(exc, WorkflowError)
        code = 404 if isinstance(exc, RunNotFound) else 503 if isinstance(exc, StoreUnavailable) else 400
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.one_line()}, status_code=code, headers=SECURITY_HEADERS)
        return self.pages.render(request, "error.html", status_code=code, message=exc.one_line())


def create_app(options: ServeOptions) -> Any:
    """The dashboard as an ASGI app, wrapped in the Host header check."""
    board = Dashboard(options)
    acts = actions.Actions(options, board.guard, board.pages)
    routes = [
        Route("/", board.runs_page),
        Route("/api/runs", board.runs_json),
        Route("/api/runs/{run_id}", board.run_json),
        Route("/runs/{run_id}", board.run_page),
        Route("/runs/{run_id}/step", board.step_page),
        Route("/runs/{run_id}/files", board.files_page),
        Route("/runs/{run_id}/files/{path:path}", board.files_page),
        Route("/runs/{run_id}/actions/{action}", acts.act, methods=["POST"]),
        Route("/login", acts.login_page, methods=["GET"]),
        Route("/login", acts.login, methods=["POST"]),
        Route("/logout", acts.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={WorkflowError: board.error})
    return HostCheck(app, board.guard.allowed)
