"""The MCP server itself: the SDK's MCPServer with our tools and resources, over stdio."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp_types import Resource

from .resources import RUN_URI, WORKFLOW_URI, Resources
from .tools import Tools, register_tools
from .workflow_dir import WorkflowDir

INSTRUCTIONS = """\
yaml-workflow runs workflows written in YAML. list_workflows shows the workflow files this
server may run (only files under its workflows directory); validate_workflow checks one
(errors name their line); run_workflow runs one here and returns its outputs, or its run id
when not waited for; submit_workflow hands one to the Celery fleet when one is configured.
run_status, run_logs and cancel_run take a run id. Running a workflow runs its code."""


class WorkflowServer(MCPServer[Any]):
    """MCPServer whose resource list is read afresh on every request."""

    def __init__(self, resources: Resources, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listing = resources

    async def list_resources(self) -> list[Resource]:
        """The workflow files and runs as they are now (not as registered at start)."""
        return await anyio.to_thread.run_sync(self.listing.listing, abandon_on_cancel=True)


def _version() -> str:
    try:
        return version("yaml-workflow")
    except PackageNotFoundError:
        return "0"


def build_server(directory: Path, base_dir: Path | None) -> WorkflowServer:
    """The server for workflows under ``directory``, runs under ``base_dir`` (None: defaults)."""
    served = WorkflowDir(directory)
    runs_dir = base_dir.absolute() if base_dir is not None else None
    resources = Resources(served, runs_dir)
    server = WorkflowServer(resources, name="yaml-workflow", version=_version(),
                            instructions=INSTRUCTIONS, log_level="WARNING")
    register_tools(server, Tools(served, runs_dir))

    @server.resource(WORKFLOW_URI, name="workflow file", mime_type="application/yaml",
                     description="a workflow file under the workflows directory")
    async def workflow_file(path: str) -> str:
        return await anyio.to_thread.run_sync(resources.workflow_text, path)

    @server.resource(RUN_URI, name="run state", mime_type="application/json",
                     description="a run's state document (status, steps, outputs, history)")
    async def run_state(run_id: str) -> str:
        return await anyio.to_thread.run_sync(resources.run_document, run_id)

    return server
