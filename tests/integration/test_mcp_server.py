"""`yaml-workflow serve-mcp`: the SDK's client over stdio against the real server process.

Each test starts its own server (`sys.executable -m yaml_workflow serve-mcp`) with an
environment it controls: no broker unless given, secrets only where a test sets them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from textwrap import dedent

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from tests.support.mcp_client import Session, run_session, serve_mcp, server_env

TOOLS = {"list_workflows", "validate_workflow", "run_workflow", "submit_workflow",
         "run_status", "run_logs", "cancel_run"}

HELLO = """\
    name: hello
    description: Greets someone
    params:
      who: {type: string, required: true}
      times: {type: integer, default: 1}
    steps:
      - name: greet
        task: echo
        inputs: {message: "hello {{ args.who }} x{{ args.times }}"}
    """

BROKEN = """\
    name: broken
    steps:
      - name: first
        task: echo
        inputs: {message: hi}
      - name: second
        task: no_such_task
    """

# Every way a run's process can write to a stream: print(), sys.stderr, the raw fd 1, a
# subprocess inheriting fd 1, and a shell step. Each line looks like a JSON-RPC message.
CHATTY = """\
    name: chatty
    steps:
      - name: py_print
        task: python_code
        inputs:
          code: |
            import os, subprocess, sys
            def line(tag, extra=""):
                return ('{"jsonrpc": "2.0", "method": "notifications/message", "params": '
                        '{"level": "error", "data": "INJECTED-' + tag + '"}}' + extra)
            print(line("PRINT"))
            print('{"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}', flush=True)
            sys.stderr.write(line("STDERR", "\\n"))
            os.write(1, line("FD", "\\n").encode())
            subprocess.run([sys.executable, "-c", "print(" + repr(line("CHILD")) + ")"], check=True)
            result = "printed"
      - name: sh_print
        task: shell
        inputs:
          command: |
            echo '{"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "error", "data": "INJECTED-SHELL"}}'
            echo "shell says hi"
    """


def write(folder: Path, name: str, text: str) -> Path:
    """A file with dedented text; parent folders created."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """The served workflows directory and the runs directory of a test."""
    return tmp_path / "workflows", tmp_path / "runs"


def injected(session: Session) -> list[object]:
    """Anything a run's output got into the protocol stream: unparseable lines, stray
    messages, log notifications the server never sends."""
    return [m for m in session.strays if isinstance(m, Exception) or "INJECTED" in repr(m)] + \
           [entry for entry in session.logs if "INJECTED" in repr(entry)]


# --- listing and validating -------------------------------------------------------------


def test_tools_are_listed_with_the_api_types_and_files_are_validated(tmp_path: Path) -> None:
    workflows, runs = dirs(tmp_path)
    write(workflows, "hello.yaml", HELLO)
    write(workflows, "sub/broken.yaml", BROKEN)

    async def scenario() -> None:
        async with serve_mcp(workflows, runs) as mcp:
            listed = {tool.name: tool for tool in (await mcp.session.list_tools()).tools}
            assert set(listed) == TOOLS
            run_input = listed["run_workflow"].input_schema
            assert run_input["required"] == ["workflow"]
            assert "object" in json.dumps(run_input["properties"]["params"])
            status_output = listed["run_status"].output_schema or {}
            assert {"run_id", "status", "steps", "secrets"} <= set(status_output["properties"])
            assert "outputs" in (listed["run_workflow"].output_schema or {})["properties"]

            files = await mcp.ok("list_workflows")
            assert [(f["file"], f["valid"]) for f in files] == [("hello.yaml", True), ("sub/broken.yaml", False)]
            assert files[0]["params"] == ["times", "who"]

            good = await mcp.ok("validate_workflow", workflow="hello.yaml")
            assert good["valid"] and good["steps"] == 1 and good["file"] == "hello.yaml"
            bad = await mcp.ok("validate_workflow", workflow="sub/broken.yaml")
            assert not bad["valid"]
            assert bad["errors"][0]["line"] == 6, bad  # the line of step 'second'
            assert "no_such_task" in bad["errors"][0]["message"]
            params = await mcp.ok("validate_workflow", workflow="hello.yaml", params={"times": "x"})
            assert not params["valid"] and "who" in params["errors"][0]["message"]

            refused = await mcp.refused("submit_workflow", workflow="hello.yaml", params={"who": "a"})
            assert "YAML_WORKFLOW_BROKER_URL" in refused and "no fleet is configured" in refused

    run_session(scenario)


# --- running, status, logs, resources -----------------------------------------------------


def test_a_run_whose_steps_print_json_lines_leaves_the_protocol_stream_intact(tmp_path: Path) -> None:
    workflows, runs = dirs(tmp_path)
    write(workflows, "chatty.yaml", CHATTY)

    async def scenario() -> None:
        async with serve_mcp(workflows, runs) as mcp:
            result = await mcp.ok("run_workflow", workflow="chatty.yaml")
            assert result["status"] == "completed", result
            assert result["outputs"]["py_print"] == "printed"
            assert "INJECTED-SHELL" in result["outputs"]["sh_print"]["stdout"]  # captured as data

            status = await mcp.ok("run_status", run=result["run_id"])
            assert status["status"] == "completed" and status["steps_done"] == 2
            assert [s["step"] for s in status["steps"]] == ["py_print", "sh_print"]
            logs = await mcp.ok("run_logs", run=result["run_id"])
            assert [entry["step"] for entry in logs] == ["sh_print"]
            assert "shell says hi" in logs[0]["text"]

            listed = [r.uri for r in (await mcp.session.list_resources()).resources]
            run_uri = f"yaml-workflow://runs/{result['run_id']}"
            assert listed == ["yaml-workflow://workflows/chatty.yaml", run_uri]
            assert "name: chatty" in await mcp.read("yaml-workflow://workflows/chatty.yaml")
            doc = json.loads(await mcp.read(run_uri))
            assert doc["workflow_id"] == result["run_id"] and doc["status"] == "completed"

            # The session still works and nothing arrived but the answers asked for.
            assert {t.name for t in (await mcp.session.list_tools()).tools} == TOOLS
            assert injected(mcp) == []
            assert "INJECTED" not in mcp.stderr()

    run_session(scenario)


def test_the_stray_line_check_sees_a_line_that_does_reach_the_stream() -> None:
    """The check above can fail: a server that prints before serving is caught by it."""
    script = dedent("""\
        print('{"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "error", "data": "INJECTED"}}')
        print("not json {", flush=True)
        from mcp.server.mcpserver import MCPServer
        MCPServer("leaky").run("stdio")
        """)

    async def scenario() -> None:
        seen: list[object] = []

        async def on_message(message: object) -> None:
            seen.append(message)

        params = StdioServerParameters(command=sys.executable, args=["-c", script], env=server_env())
        with open(os.devnull, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write_stream):
                async with ClientSession(read, write_stream, message_handler=on_message) as session:
                    await session.initialize()
                    await session.list_tools()
        assert any("INJECTED" in repr(m) for m in seen)
        assert any(isinstance(m, Exception) for m in seen)

    run_session(scenario)


def test_a_run_not_waited_for_is_running_and_cancel_run_stops_it(tmp_path: Path) -> None:
    workflows, runs = dirs(tmp_path)
    write(workflows, "slow.yaml", """\
        name: slow
        steps:
          - {name: nap, task: shell, inputs: {command: "sleep 60"}}
          - {name: after, task: echo, inputs: {message: never}}
        """)
    write(workflows, "hello.yaml", HELLO)

    async def scenario() -> None:
        async with serve_mcp(workflows, runs) as mcp:
            started = await mcp.ok("run_workflow", workflow="slow.yaml", timeout=0.5)
            assert started["status"] == "running" and started["outputs"] == {}
            run_id = started["run_id"]
            assert (await mcp.ok("run_status", run=run_id))["status"] == "running"

            action = await mcp.ok("cancel_run", run=run_id)
            assert action["action"] == "cancel" and action["status"] == "cancelled"
            status = await mcp.ok("run_status", run=run_id)
            assert status["status"] == "cancelled"
            assert {s["step"]: s["status"] for s in status["steps"]}["after"] == "pending"
            again = await mcp.refused("cancel_run", run=run_id)
            assert "already cancelled" in again

            quick = await mcp.ok("run_workflow", workflow="hello.yaml", params={"who": "Ann", "times": 2},
                                 wait=False)
            assert quick["status"] in ("running", "completed")
            missing = await mcp.refused("run_status", run="0123456789abcdef")
            assert "0123456789abcdef" in missing
            bad_id = await mcp.refused("run_status", run="../runs")
            assert "pattern" in bad_id

    run_session(scenario)


# --- the trust boundary ----------------------------------------------------------------


def test_only_workflow_files_under_the_directory_are_served(tmp_path: Path) -> None:
    workflows, runs = dirs(tmp_path)
    write(workflows, "inner.yaml", HELLO)
    evil = write(tmp_path, "outside/evil.yaml", HELLO)
    (workflows / "link.yaml").symlink_to(evil)
    (workflows / "linkdir").symlink_to(evil.parent, target_is_directory=True)
    (workflows / "alias.yaml").symlink_to(workflows / "inner.yaml")  # a link that stays inside
    write(workflows, "notes.txt", HELLO)

    async def scenario() -> None:
        async with serve_mcp(workflows, runs) as mcp:
            files = [f["file"] for f in await mcp.ok("list_workflows")]
            assert files == ["alias.yaml", "inner.yaml"]
            refusals = {
                "../outside/evil.yaml": "'..'",
                "sub/../../outside/evil.yaml": "'..'",
                str(evil): "absolute path",
                "link.yaml": "outside the workflows directory",
                "linkdir/evil.yaml": "outside the workflows directory",
                "missing.yaml": "no workflow file",
                "notes.txt": "not a workflow file",
            }
            for name, why in refusals.items():
                for tool in ("validate_workflow", "run_workflow"):
                    text = await mcp.refused(tool, workflow=name, params={"who": "x"})
                    assert why in text and "list_workflows" in text, (tool, name, text)
            assert not runs.exists() or not any(runs.iterdir())  # nothing ran

            for name in ("link.yaml", "linkdir/evil.yaml", "..%2Foutside%2Fevil.yaml"):
                with pytest.raises(MCPError):
                    await mcp.read(f"yaml-workflow://workflows/{name}")
            ran = await mcp.ok("run_workflow", workflow="alias.yaml", params={"who": "x"})
            assert ran["status"] == "completed"

    run_session(scenario)


# --- secrets and sizes ---------------------------------------------------------------------

TOKEN = "tok-5ecret-98765"

SECRETIVE = """\
    name: secretive
    secrets: [MCP_TEST_TOKEN]
    steps:
      - name: as_result
        task: python_code
        inputs:
          code: |
            print("printed:", env["MCP_TEST_TOKEN"])
            result = {"token": env["MCP_TEST_TOKEN"], "text": "the token is " + env["MCP_TEST_TOKEN"]}
      - name: as_output
        task: shell
        inputs: {command: "echo out=$MCP_TEST_TOKEN; echo err=$MCP_TEST_TOKEN >&2"}
      - name: own_log
        task: python_code
        inputs:
          code: |
            import pathlib
            log = pathlib.Path(workspace) / "logs" / "own_log.log"
            log.parent.mkdir(exist_ok=True)
            log.write_text("written by the step itself: " + env["MCP_TEST_TOKEN"])
            result = "wrote its own log"
      - name: as_error
        task: python_code
        inputs:
          code: |
            raise RuntimeError("failed holding " + env["MCP_TEST_TOKEN"])
    """

CRASHING = """\
    name: crashing
    secrets: [MCP_TEST_TOKEN]
    steps:
      - name: die
        task: python_code
        inputs:
          code: |
            import os, sys
            sys.stderr.write("dying with " + env["MCP_TEST_TOKEN"] + "\\n")
            sys.stderr.flush()
            os._exit(7)
    """


def test_secrets_never_appear_in_a_result_a_resource_or_an_error(tmp_path: Path) -> None:
    workflows, runs = dirs(tmp_path)
    write(workflows, "secretive.yaml", SECRETIVE)
    write(workflows, "crashing.yaml", CRASHING)

    async def scenario() -> None:
        async with serve_mcp(workflows, runs, env={"MCP_TEST_TOKEN": TOKEN}) as mcp:
            result = await mcp.ok("run_workflow", workflow="secretive.yaml")
            assert result["status"] == "failed" and result["failed_step"] == "as_error"
            assert result["outputs"]["as_result"]["token"] == "***"
            assert "***" in result["error"]
            run_id = result["run_id"]
            await mcp.ok("run_status", run=run_id)
            logs = {entry["step"]: entry["text"] for entry in await mcp.ok("run_logs", run=run_id)}
            assert logs["own_log"] == "written by the step itself: ***"  # the server masked it
            assert "out=***" in logs["as_output"] and "err=***" in logs["as_output"]
            await mcp.read(f"yaml-workflow://runs/{run_id}")
            await mcp.read("yaml-workflow://workflows/secretive.yaml")

            crashed = await mcp.refused("run_workflow", workflow="crashing.yaml")
            assert "exit code 7" in crashed and "dying with ***" in crashed

            assert len(mcp.texts) > 8
            leaks = [text[:200] for text in mcp.texts if TOKEN in text]
            assert leaks == []

    run_session(scenario)


def test_a_10_mb_step_output_is_truncated_with_a_note(tmp_path: Path) -> None:
    workflows, runs = dirs(tmp_path)
    write(workflows, "big.yaml", """\
        name: big
        steps:
          - name: big_result
            task: python_code
            inputs: {code: "result = 'x' * 10_000_000"}
          - name: big_print
            task: shell
            inputs: {command: "head -c 10000000 /dev/zero | tr '\\\\0' y"}
        """)

    async def scenario() -> None:
        async with serve_mcp(workflows, runs) as mcp:
            result = await mcp.call("run_workflow", workflow="big.yaml")
            assert not result.is_error
            assert result.structured_content is not None
            output = result.structured_content["outputs"]["big_result"]
            assert output.startswith("x" * 1000) and len(output) < 20_000
            assert "truncated: 10,000,000 characters" in output
            stdout = result.structured_content["outputs"]["big_print"]["stdout"]
            assert "truncated: 10,000,000 characters" in stdout
            assert sum(len(t) for t in mcp.texts) < 1_000_000

            run_id = result.structured_content["run_id"]
            logs = await mcp.ok("run_logs", run=run_id, step="big_print")
            assert logs[0]["truncated"] and len(logs[0]["text"]) < 20_000 and "truncated:" in logs[0]["text"]
            doc = await mcp.read(f"yaml-workflow://runs/{run_id}")
            assert len(doc) < 1_000_000 and "truncated: 10,000,000 characters" in doc
            assert json.loads(doc)["status"] == "completed"

    run_session(scenario)


def test_a_run_outlives_the_session_that_started_it(tmp_path: Path) -> None:
    workflows, runs = dirs(tmp_path)
    write(workflows, "later.yaml", """\
        name: later
        steps:
          - {name: wait, task: shell, inputs: {command: "sleep 1"}}
          - {name: done, task: echo, inputs: {message: finished}}
        """)
    started: dict[str, str] = {}

    async def first() -> None:
        async with serve_mcp(workflows, runs) as mcp:
            started.update(await mcp.ok("run_workflow", workflow="later.yaml", wait=False))

    async def second() -> None:
        async with serve_mcp(workflows, runs) as mcp:
            with anyio.fail_after(30):
                while (status := await mcp.ok("run_status", run=started["run_id"]))["status"] == "running":
                    await anyio.sleep(0.2)
            assert status["status"] == "completed" and status["steps_done"] == 2

    run_session(first)  # the session and its server end while the step sleeps
    run_session(second)
