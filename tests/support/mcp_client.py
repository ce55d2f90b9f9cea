"""An MCP client session (the official SDK's client, over stdio) against a real
``yaml-workflow serve-mcp`` process.

:func:`serve_mcp` starts ``sys.executable -m yaml_workflow serve-mcp --dir D --base-dir B``
with only the environment given (plus PATH and HOME), and yields a :class:`Session`
that records everything the server sent besides responses: log notifications and any
line of the stream the client could not parse.  The server's stderr goes to a file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, LoggingMessageNotificationParams

REPO = Path(__file__).resolve().parents[2]
CALL_TIMEOUT = 60.0  # seconds one request may take before the test fails


class Session:
    """A live client session plus what arrived outside the request/response pairs."""

    def __init__(self, session: ClientSession, stderr: Path) -> None:
        self.session = session
        self.stderr_path = stderr
        self.logs: list[LoggingMessageNotificationParams] = []
        self.strays: list[Any] = []  # exceptions (unparseable lines) and unexpected messages
        self.texts: list[str] = []  # every text that came back: results, errors, resources

    async def call(self, tool: str, **arguments: Any) -> CallToolResult:
        """Call a tool; its result (error or not), every text of it recorded."""
        result = await self.session.call_tool(tool, arguments, read_timeout_seconds=CALL_TIMEOUT)
        self.texts += [getattr(block, "text", "") for block in result.content]
        if result.structured_content is not None:
            self.texts.append(json.dumps(result.structured_content))
        return result

    async def ok(self, tool: str, **arguments: Any) -> Any:
        """Call a tool that must succeed; its structured result (lists unwrapped)."""
        result = await self.call(tool, **arguments)
        assert not result.is_error, f"{tool} failed: {error_text(result)}"
        content = result.structured_content
        assert content is not None
        return content["result"] if set(content) == {"result"} else content

    async def refused(self, tool: str, **arguments: Any) -> str:
        """Call a tool that must return a tool error; its text."""
        result = await self.call(tool, **arguments)
        assert result.is_error, f"{tool} should have failed: {result.structured_content}"
        return error_text(result)

    async def read(self, uri: str) -> str:
        """A resource's text."""
        result = await self.session.read_resource(uri)
        text = "".join(getattr(c, "text", "") for c in result.contents)
        self.texts.append(text)
        return text

    def stderr(self) -> str:
        """What the server wrote on stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def error_text(result: CallToolResult) -> str:
    """The text of a tool result."""
    return "".join(getattr(block, "text", "") for block in result.content)


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The server's whole environment: no YAML_WORKFLOW_* variable unless given."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONPATH": str(REPO)}
    env.update(extra or {})
    return env


@asynccontextmanager
async def serve_mcp(directory: Path, base_dir: Path, env: dict[str, str] | None = None,
                    cwd: Path | None = None) -> AsyncIterator[Session]:
    """A session with a fresh `serve-mcp` process (stopped when the block ends)."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "yaml_workflow", "serve-mcp", "--dir", str(directory), "--base-dir", str(base_dir)],
        env=server_env(env), cwd=str(cwd or base_dir.parent),
    )
    stderr = Path(tempfile.mkstemp(prefix="serve-mcp-", suffix=".log")[1])
    holder: list[Session] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        holder[0].logs.append(params)

    async def on_message(message: Any) -> None:
        holder[0].strays.append(message)

    with open(stderr, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, logging_callback=on_log,
                                     message_handler=on_message) as session:
                holder.append(Session(session, stderr))
                with anyio.fail_after(CALL_TIMEOUT):
                    await session.initialize()
                yield holder[0]


def run_session(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run an async scenario to its end (each test is a plain function); a failure inside
    the SDK's task groups is raised as itself, not wrapped in exception groups."""
    try:
        anyio.run(scenario)
    except BaseException as error:  # an exception group (3.11+, or the 3.10 backport)
        leaf: Any = error
        while len(getattr(leaf, "exceptions", ())) == 1:
            leaf = leaf.exceptions[0]
        if leaf is error:
            raise
        raise leaf from None
