"""The seven tools: each calls the Python API and returns its typed result, redacted.

Input and output schemas come from the API's types (the tool signatures below and the
models of :mod:`yaml_workflow.client.models`).  An error a user can cause (a refused
path, an invalid param, a run not found, no broker) is a tool error carrying the API's
one-line message, with secrets masked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from .. import client
from ..client import (
    ActionResult,
    LogEntry,
    RunResult,
    RunStatus,
    SubmitResult,
    ValidationReport,
    WorkflowFile,
)
from ..exceptions import WaitTimeout, WorkflowError
from ..settings import get_settings
from .child_run import ChildRun
from .redaction import STRING_LIMIT, Redactor
from .workflow_dir import WorkflowDir

T = TypeVar("T")

WorkflowName = Annotated[str, Field(description="a workflow file, relative to the workflows directory "
                                                "(as list_workflows shows it), e.g. hello_world.yaml")]
Params = Annotated[dict[str, Any] | None, Field(description="the workflow's params, by name "
                                                           "(values are converted to the declared types)")]
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,100}$",
                             description="a run id, as run_workflow or submit_workflow returned it")]
Timeout = Annotated[float | None, Field(gt=0, description="seconds to wait at most; past it the run "
                                                          "goes on and the result says it is running")]
STARTED_LIMIT = 120.0  # seconds a child run may take to create its run (imports, workspace)
POLL = 0.05  # seconds between looks at a long wait (see `wait_for_event`)


async def wait_for_event(event: threading.Event, timeout: float | None) -> bool:
    """Wait for ``event`` without holding a worker thread: a wait abandoned by the client
    (or by the server stopping) must not keep the process alive, and anyio's worker
    threads are not daemons."""
    with anyio.move_on_after(timeout):
        while not event.is_set():
            await anyio.sleep(POLL)
    return event.is_set()


async def in_daemon_thread(work: Callable[[], T]) -> T:
    """``work()`` (a long blocking wait) in a daemon thread, awaited by polling."""
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting task
            outcome["error"] = err
        finally:
            done.set()

    threading.Thread(target=target, name="serve-mcp-wait", daemon=True).start()
    await wait_for_event(done, None)
    if "error" in outcome:
        raise outcome["error"]
    return cast(T, outcome["value"])


class Tools:
    """The tools of one server: the workflows directory, where runs go, and how to redact."""

    def __init__(self, directory: WorkflowDir, base_dir: Path | None) -> None:
        self.directory = directory
        self.base_dir = base_dir

    # --- helpers ----------------------------------------------------------------------

    def redactor_for_file(self, path: Path) -> Redactor:
        """Masks the secrets a workflow file declares (none when it does not load)."""
        try:
            return Redactor.for_secrets(client.load(path).secrets)
        except WorkflowError:
            return Redactor()

    def redactor_for_run(self, run: str) -> Redactor:
        """Masks the secrets the run's workflow declares."""
        try:
            return Redactor.for_secrets(client.status(run, base_dir=self.base_dir).secrets)
        except WorkflowError:
            return Redactor()

    async def call(self, redactor: Redactor, work: Callable[[], T], *, long: bool = False) -> T:
        """``work()`` in a thread (the event loop keeps serving; ``long``: a daemon thread);
        an API error becomes a tool error with its one line, masked, and file names
        relative to the directory."""
        try:
            if long:
                return await in_daemon_thread(work)
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except WorkflowError as err:
            raise ToolError(self.directory.relative(redactor.text(err.one_line()))) from None

    def resolve(self, workflow: str) -> Path:
        """The workflow file, if the directory serves it; else a tool error saying why."""
        try:
            return self.directory.resolve(workflow)
        except WorkflowError as err:
            raise ToolError(err.one_line()) from None

    # --- the tools --------------------------------------------------------------------

    async def list_workflows(self) -> list[WorkflowFile]:
        """The workflow files under the workflows directory, each loaded and checked:
        name, description, step count and declared params, or why it does not load."""
        rows = await self.call(Redactor(), self.directory.files)
        return [Redactor().model(row) for row in rows]

    async def validate_workflow(self, workflow: WorkflowName, params: Params = None,
                                strict: Annotated[bool, Field(description="warnings count as errors")] = False,
                                ) -> ValidationReport:
        """Check a workflow file without running it: errors and warnings with their line
        numbers; with params, check them as a run would (types, required, allowed values)."""
        path = self.resolve(workflow)
        redactor = await anyio.to_thread.run_sync(self.redactor_for_file, path)
        report = await self.call(redactor, lambda: client.validate(path, strict=strict, params=params))
        report = report.model_copy(update={"file": workflow})
        return redactor.model(report)

    async def run_workflow(self, workflow: WorkflowName, params: Params = None,
                           wait: Annotated[bool, Field(description="wait for the run to end (else return "
                                                                   "once it has started)")] = True,
                           timeout: Timeout = None) -> RunResult:
        """Run a workflow here, in a child process of this server, and return how it ended:
        status (completed, failed, cancelled, or running when not waited for), each step's
        output, the error. Running a workflow runs its code."""
        path = self.resolve(workflow)
        redactor = await anyio.to_thread.run_sync(self.redactor_for_file, path)
        child = await self.call(redactor, lambda: ChildRun(path, dict(params or {}), self.base_dir))
        if wait:
            await wait_for_event(child.finished, timeout)
        await wait_for_event(child.started, STARTED_LIMIT)
        if child.error is not None:
            raise ToolError(self.directory.relative(redactor.text(child.error)))
        if child.result is not None:
            return redactor.model(RunResult.model_validate(child.result), free=["outputs"])
        if not child.run:
            raise ToolError(f"the run did not start within {STARTED_LIMIT:.0f}s")
        return RunResult(run_id=child.run["run_id"], status="running", workflow=child.run["workflow"],
                         workspace=child.run["workspace"], outputs={})

    async def submit_workflow(self, workflow: WorkflowName, params: Params = None,
                              wait: Annotated[bool, Field(description="wait for the run to end")] = False,
                              timeout: Timeout = None) -> SubmitResult:
        """Hand a run to the fleet of Celery workers (needs YAML_WORKFLOW_BROKER_URL in the
        server's environment); returns the run id, and the outcome when waited for (null
        when the wait ran out: the run goes on)."""
        if "broker_url" not in get_settings().model_fields_set:
            raise ToolError("no fleet is configured: serve-mcp was started without "
                            "YAML_WORKFLOW_BROKER_URL (set it to the fleet's Redis and restart the "
                            "server; run_workflow runs a workflow here without one)")
        path = self.resolve(workflow)
        redactor = await anyio.to_thread.run_sync(self.redactor_for_file, path)
        submitted = await self.call(redactor, lambda: client.submit(path, params, base_dir=self.base_dir))
        if wait:
            def follow() -> RunResult | None:
                try:
                    return client.wait_for(submitted.run_id, timeout=timeout)
                except WaitTimeout:
                    return None

            submitted = submitted.model_copy(update={"result": await self.call(redactor, follow, long=True)})
        return redactor.model(submitted, free=["result.outputs"])

    async def run_status(self, run: RunId) -> RunStatus:
        """A run's state: status, each step's status, attempts, errors and timing, progress,
        history, where it was read."""
        status = await self.call(Redactor(), lambda: client.status(run, base_dir=self.base_dir))
        redactor = Redactor.for_secrets(status.secrets)
        return redactor.model(status, free=["params", "flags", "trigger", "progress"])

    async def run_logs(self, run: RunId,
                       step: Annotated[str | None, Field(description="only this step's log")] = None,
                       ) -> list[LogEntry]:
        """A run's step logs (what each attempt came to, and what its subprocesses printed);
        a long log is cut, with a note, and marked truncated."""
        redactor = await anyio.to_thread.run_sync(self.redactor_for_run, run)
        entries = await self.call(redactor, lambda: client.logs(run, step=step, base_dir=self.base_dir))
        shown = []
        for entry in entries:
            cut = len(redactor.masker.text(entry.text)) > STRING_LIMIT
            shown.append(entry.model_copy(update={"text": redactor.text(entry.text),
                                                  "truncated": entry.truncated or cut}))
        return shown

    async def cancel_run(self, run: RunId) -> ActionResult:
        """Cancel a running run (here or on the fleet): no further step starts, the running
        step's subprocesses are stopped, and the run ends cancelled."""
        redactor = await anyio.to_thread.run_sync(self.redactor_for_run, run)
        action = await self.call(redactor, lambda: client.cancel(run, base_dir=self.base_dir))
        return redactor.model(action, free=["result.outputs"])


def register_tools(server: MCPServer[Any], tools: Tools) -> None:
    """Add the seven tools to ``server``; all are listed whatever is configured."""
    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    running = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
    server.add_tool(tools.list_workflows, name="list_workflows", annotations=reading)
    server.add_tool(tools.validate_workflow, name="validate_workflow", annotations=reading)
    server.add_tool(tools.run_workflow, name="run_workflow", annotations=running)
    server.add_tool(tools.submit_workflow, name="submit_workflow", annotations=running)
    server.add_tool(tools.run_status, name="run_status", annotations=reading)
    server.add_tool(tools.run_logs, name="run_logs", annotations=reading)
    server.add_tool(tools.cancel_run, name="cancel_run",
                    annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
