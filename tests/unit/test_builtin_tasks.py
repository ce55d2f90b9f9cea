"""The built-in tasks, called the way the engine calls them: rendered, validated inputs + ctx."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from yaml_workflow.exceptions import (
    BatchItemsFailed,
    FailTaskError,
    ShellCommandError,
    StepTimeoutError,
    TaskError,
    WorkspacePathError,
)
from yaml_workflow.tasks import TaskContext, get_task, register_task
from yaml_workflow.tasks.builtin.batch import BatchInputs, batch
from yaml_workflow.tasks.builtin.http import HttpStatusError
from yaml_workflow.tasks.builtin.python import PythonCodeInputs, python_code
from yaml_workflow.templating import Namespace

# --- helpers ---------------------------------------------------------------------------


def make_ctx(workspace: Path, step: str = "s", **fields: Any) -> TaskContext:
    """A context like the engine's, whose call_task renders and runs registered tasks."""
    namespaces = {
        "args": Namespace("args", {"base": 10}),
        "env": Namespace("env", {"STAGE": "test"}),
        "steps": Namespace("steps", {"seed": {"result": "seed-value", "status": "completed"}}),
        "workflow": Namespace("workflow", {"name": "wf", "workspace": str(workspace)}),
    }
    namespaces.update(fields.pop("namespaces", {}))
    ctx = TaskContext(step=step, task="?", workspace=workspace, namespaces=namespaces, **fields)
    if ctx.call_task is None:
        ctx.call_task = lambda name, raw, extra: _call(ctx, name, raw, extra)
    return ctx


def _call(parent: TaskContext, name: str, raw: Any, extra: Mapping[str, Any]) -> Any:
    sub = TaskContext(
        step=parent.step,
        task=name,
        workspace=parent.workspace,
        namespaces=parent.scope(extra),
        env=parent.env,
        deadline=parent.deadline,
    )
    return invoke(sub, name, raw)


def invoke(ctx: TaskContext, name: str, raw: dict[str, Any]) -> Any:
    """Render the non-raw inputs, validate them with the task's model, call the task."""
    spec = get_task(name)
    ctx.task = name
    rendered = {k: v if k in spec.raw_inputs else ctx.render(v) for k, v in raw.items()}
    if spec.inputs_model is None:
        return spec.func(**rendered)
    return spec.func(spec.inputs_model.model_validate(rendered), ctx)


def run(workspace: Path, name: str, **raw: Any) -> Any:
    return invoke(make_ctx(workspace), name, raw)


# --- echo, noop, fail, notify ---------------------------------------------------------


def test_echo_returns_its_message_and_noop_its_inputs(tmp_path: Path) -> None:
    assert run(tmp_path, "echo", message="hi {{ args.base }}") == "hi 10"
    assert run(tmp_path, "echo", message="{{ args.base }}") == 10
    assert run(tmp_path, "noop", a=1, b=["x"]) == {"a": 1, "b": ["x"]}


def test_fail_raises_with_its_message(tmp_path: Path) -> None:
    with pytest.raises(FailTaskError, match="planned failure"):
        run(tmp_path, "fail", message="planned failure")


def test_notify_log_and_file_channels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="yaml_workflow.task"):
        assert run(tmp_path, "notify", channel="log", message="look", level="warning") == {
            "channel": "log",
            "status": "sent",
        }
    assert "look" in caplog.text

    run(tmp_path, "notify", channel="file", message="one")
    run(tmp_path, "notify", channel="file", message="two")
    lines = (tmp_path / "logs/notifications.log").read_text().splitlines()
    assert [line.endswith(m) for line, m in zip(lines, ["one", "two"], strict=True)] == [True, True]

    with pytest.raises(WorkspacePathError):
        run(tmp_path, "notify", channel="file", message="x", file="../out.log")


# --- a local HTTP server -------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        _Handler.received.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/missing":
            self._send(404, b"nope", "text/plain")
            return
        payload: dict[str, Any] = {"method": self.command, "path": self.path, "body": body}
        payload["auth"] = self.headers.get("Authorization")
        self._send(200, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, kind: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test): nothing to answer

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.received.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nobody listens there once the socket is closed


def test_notify_webhook_posts_json(tmp_path: Path, server: str) -> None:
    result = run(tmp_path, "notify", channel="webhook", url=f"{server}/hook", message="done")
    assert result == {"channel": "webhook", "status": "sent"}
    assert json.loads(_Handler.received[-1]["body"]) == {"text": "done"}


# --- http.request ---------------------------------------------------------------------


def test_http_get_returns_status_headers_body_and_json(tmp_path: Path, server: str) -> None:
    result = run(tmp_path, "http.request", url=f"{server}/thing")
    assert result["status_code"] == 200
    assert result["headers"]["Content-Type"] == "application/json"
    assert json.loads(result["body"]) == result["json"]
    assert result["json"]["path"] == "/thing"


def test_http_post_json_body_with_auth(tmp_path: Path, server: str) -> None:
    result = run(
        tmp_path,
        "http_request",
        url=f"{server}/post",
        method="post",
        body={"a": 1},
        auth={"username": "u", "password": "p"},
    )
    assert result["json"]["method"] == "POST"
    assert json.loads(result["json"]["body"]) == {"a": 1}
    assert result["json"]["auth"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert _Handler.received[-1]["headers"]["Content-Type"] == "application/json"

    bearer = run(tmp_path, "http.request", url=f"{server}/b", auth={"token": "t0k"})
    assert bearer["json"]["auth"] == "Bearer t0k"


def test_http_error_status_is_a_result_unless_raise_for_status(tmp_path: Path, server: str) -> None:
    result = run(tmp_path, "http.request", url=f"{server}/missing")
    assert (result["status_code"], result["body"], result["json"]) == (404, "nope", None)
    with pytest.raises(HttpStatusError, match="404"):
        run(tmp_path, "http.request", url=f"{server}/missing", raise_for_status=True)


def test_http_network_failures_are_connection_and_timeout_errors(
    tmp_path: Path, server: str
) -> None:
    with pytest.raises(ConnectionError) as refused:
        run(tmp_path, "http.request", url=_refused_url(), timeout=5)
    assert isinstance(refused.value, TaskError)

    started = time.monotonic()
    with pytest.raises(TimeoutError) as slow:
        run(tmp_path, "http.request", url=f"{server}/slow", timeout=0.3)
    assert isinstance(slow.value, TaskError)
    assert time.monotonic() - started < 1.5


def test_http_refuses_non_http_schemes(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="only http and https"):
        run(tmp_path, "http.request", url="file:///etc/passwd")


# --- shell ----------------------------------------------------------------------------


def test_shell_result_env_and_working_dir(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "shell",
        command='echo "out-$GREETING"\necho err-line >&2\n',
        env={"GREETING": "hi", "N": 3},
    )
    assert result == {"return_code": 0, "stdout": "out-hi\n", "stderr": "err-line\n"}

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/f.txt").write_text("inside\n")
    assert run(tmp_path, "shell", command="cat f.txt", working_dir="sub")["stdout"] == "inside\n"
    assert run(tmp_path, "shell", command="pwd")["stdout"].strip() == str(tmp_path.resolve())


def test_shell_nonzero_exit_raises_unless_check_is_off(tmp_path: Path) -> None:
    with pytest.raises(ShellCommandError) as caught:
        run(tmp_path, "shell", command="echo first >&2; echo 'disk full' >&2; exit 3")
    err = caught.value
    assert (err.return_code, err.stderr) == (3, "first\ndisk full\n")
    assert "'s'" in str(err) and "code 3" in str(err) and "disk full" in str(err)

    result = run(tmp_path, "shell", command="exit 4", check=False)
    assert result["return_code"] == 4


def test_shell_argv_form_cannot_be_injected(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, namespaces={"args": Namespace("args", {"name": "x; touch pwned"})})
    result = invoke(ctx, "shell", {"command": ["echo", "{{ args.name }}", 7]})
    assert result["stdout"] == "x; touch pwned 7\n"
    assert not (tmp_path / "pwned").exists()


def test_shell_working_dir_outside_workspace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspacePathError):
        run(tmp_path, "shell", command="true", working_dir="../")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of ours may linger as a zombie until reaped; treat that as dead.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["input", "deadline"])
def test_shell_timeout_kills_the_whole_process_group(tmp_path: Path, how: str) -> None:
    # sleep runs as a grandchild (background job of sh): only a group kill reaches it.
    command = "sleep 30 & echo $! > sleep.pid; wait"
    fields: dict[str, Any] = {"deadline": time.monotonic() + 0.7} if how == "deadline" else {}
    raw: dict[str, Any] = {"command": command}
    if how == "input":
        raw["timeout"] = 0.7
    started = time.monotonic()
    with pytest.raises(StepTimeoutError):
        invoke(make_ctx(tmp_path, **fields), "shell", raw)
    assert time.monotonic() - started < 5
    pid = int((tmp_path / "sleep.pid").read_text())
    deadline = time.monotonic() + 3
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


# --- python_code ----------------------------------------------------------------------


def test_python_code_sees_inputs_and_namespaces(tmp_path: Path) -> None:
    code = (
        "total = x * y + args['base']\n"
        "result = {'total': total, 'tag': steps['seed']['result'], 'env': env['STAGE'],"
        " 'ws': workspace, 'batch': batch}\n"
    )
    result = run(tmp_path, "python_code", x=3, y=4, code=code)
    assert result == {
        "total": 22,
        "tag": "seed-value",
        "env": "test",
        "ws": str(tmp_path),
        "batch": None,
    }
    assert run(tmp_path, "python_code", code="answer = 2 * 21", result_variable="answer") == 42
    assert run(tmp_path, "python_code", code="x = 1") is None


def test_python_code_has_module_scoping(tmp_path: Path) -> None:
    code = (
        "import math\n"
        "def helper(v):\n    return v * FACTOR\n"
        "def outer(v):\n    return helper(v) + math.floor(0.5)\n"
        "FACTOR = 3\n"
        "result = [outer(i) for i in range(3)]\n"
    )
    assert run(tmp_path, "python_code", code=code) == [0, 3, 6]


def test_python_code_errors_name_the_step(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError) as caught:
        invoke(make_ctx(tmp_path, step="divide"), "python_code", {"code": "result = 1 / 0"})
    frames = [frame.co_filename for frame in _frames(caught.value.__traceback__)]
    assert "<step divide>" in frames

    with pytest.raises(TaskError, match="does not compile.*line 1"):
        run(tmp_path, "python_code", code="result = (")
    with pytest.raises(TaskError, match="result_variable 'missing'"):
        run(tmp_path, "python_code", code="x = 1", result_variable="missing")


def _frames(tb: Any) -> Iterator[Any]:
    while tb is not None:
        yield tb.tb_frame.f_code
        tb = tb.tb_next


def test_python_code_is_cheap_to_repeat(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    # CPU time of this process: other work on a shared machine does not count against it
    started = time.process_time()
    for i in range(1000):
        ctx.step = f"step_{i}"
        assert python_code(PythonCodeInputs.model_validate({"code": "result = 1"}), ctx) == 1
    assert time.process_time() - started < 1.0


# --- python_function, python_script, python_module ------------------------------------

HELPERS = """
import asyncio

def scale(value, factor=1):
    return value * factor

async def later(value):
    await asyncio.sleep(0.01)
    return {"later": value}

class Tools:
    @staticmethod
    def shout(text):
        return text.upper()

if __name__ == "__main__":
    import sys
    print("module", *sys.argv[1:])
"""


@pytest.fixture()
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ywf_test_helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(lib))
    return lib


def test_python_function_calls_sync_async_and_dotted(tmp_path: Path, helpers: Path) -> None:
    mod = "ywf_test_helpers"
    assert (
        run(
            tmp_path,
            "python_function",
            module=mod,
            function="scale",
            args=[21],
            kwargs={"factor": 2},
        )
        == 42
    )
    assert run(tmp_path, "python_function", module=mod, function="later", args=["x"]) == {
        "later": "x"
    }
    assert (
        run(tmp_path, "python_function", module=mod, function="Tools.shout", args=["hey"]) == "HEY"
    )


def test_python_function_reports_missing_module_or_function(tmp_path: Path, helpers: Path) -> None:
    with pytest.raises(TaskError, match="cannot import module 'no_such_mod_ywf'"):
        run(tmp_path, "python_function", module="no_such_mod_ywf", function="f")
    with pytest.raises(TaskError, match="has no 'nope'"):
        run(tmp_path, "python_function", module="ywf_test_helpers", function="nope")


def test_python_script_runs_in_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/hello.py").write_text(
        "import os, sys\nprint('hello', *sys.argv[1:], os.environ['YWF_T'])\n"
        "sys.exit(int(os.environ.get('CODE', '0')))\n"
    )
    ctx = make_ctx(tmp_path, env={**os.environ, "YWF_T": "from-env"})
    result = invoke(ctx, "python_script", {"script_path": "scripts/hello.py", "args": ["a", 1]})
    assert result == {"returncode": 0, "stdout": "hello a 1 from-env\n", "stderr": ""}

    failing = make_ctx(tmp_path, env={**os.environ, "YWF_T": "x", "CODE": "2"})
    with pytest.raises(ShellCommandError, match="code 2"):
        invoke(failing, "python_script", {"script_path": "scripts/hello.py"})
    unchecked = invoke(
        failing, "python_script", {"script_path": "scripts/hello.py", "check": False}
    )
    assert unchecked["returncode"] == 2

    with pytest.raises(TaskError, match="not found"):
        run(tmp_path, "python_script", script_path="scripts/missing.py")


def test_python_module_runs_dash_m(tmp_path: Path, helpers: Path) -> None:
    ctx = make_ctx(tmp_path, env={**os.environ, "PYTHONPATH": str(helpers)})
    result = invoke(ctx, "python_module", {"module": "ywf_test_helpers", "args": ["x", "y"]})
    assert result["stdout"] == "module x y\n" and result["returncode"] == 0

    started = time.monotonic()
    with pytest.raises(StepTimeoutError):
        invoke(
            ctx,
            "python_module",
            {
                "module": "timeit",
                "args": ["-n", "1", "import time; time.sleep(30)"],
                "timeout": 0.5,
            },
        )
    assert time.monotonic() - started < 5


# --- file tasks ---------------------------------------------------------------------


def test_write_append_read_file_byte_for_byte(tmp_path: Path) -> None:
    text = "héllo\r\nworld\n\n"
    written = run(tmp_path, "write_file", file="output/notes.txt", content=text)
    target = tmp_path / "output/notes.txt"
    assert written == {"path": str(target.resolve()), "content": text}
    assert target.read_bytes() == text.encode("utf-8")

    run(tmp_path, "append_file", file="output/notes.txt", content="-beta")
    result = run(tmp_path, "read_file", path="output/notes.txt")  # `path` spelling accepted
    assert result == {"path": str(target.resolve()), "content": text + "-beta"}

    run(tmp_path, "write_file", file="latin.txt", content="é", encoding="latin-1")
    assert (tmp_path / "latin.txt").read_bytes() == b"\xe9"


def test_json_and_yaml_round_trips(tmp_path: Path) -> None:
    assert run(tmp_path, "write_json", file="d/data.json", data={"text": "a", "n": 3}) == {
        "path": str((tmp_path / "d/data.json").resolve())
    }
    assert run(tmp_path, "read_json", file="d/data.json") == {"data": {"text": "a", "n": 3}}

    ctx = make_ctx(
        tmp_path, namespaces={"steps": Namespace("steps", {"rj": {"result": {"data": {"n": 3}}}})}
    )
    invoke(
        ctx,
        "write_yaml",
        {"file": "d/data.yaml", "data": {"z": 1, "count": "{{ steps.rj.result.data.n }}"}},
    )
    assert list(yaml.safe_load((tmp_path / "d/data.yaml").read_text())) == ["z", "count"]
    assert run(tmp_path, "read_yaml", file="d/data.yaml") == {"data": {"z": 1, "count": 3}}

    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TaskError, match="not valid JSON"):
        run(tmp_path, "read_json", file="bad.json")


def test_copy_move_delete(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    ws = tmp_path.resolve()
    copied = run(tmp_path, "copy_file", source="a.txt", destination="out/copy.txt")
    assert copied == {"source": str(ws / "a.txt"), "destination": str(ws / "out/copy.txt")}
    moved = run(tmp_path, "move_file", source="out/copy.txt", destination="out/moved.txt")
    assert moved["destination"] == str(ws / "out/moved.txt")
    assert not (tmp_path / "out/copy.txt").exists()
    assert (tmp_path / "out/moved.txt").read_text() == "alpha"

    assert run(tmp_path, "delete_file", file="a.txt") == {"path": str(ws / "a.txt")}
    assert not (tmp_path / "a.txt").exists()
    run(tmp_path, "delete_file", file="a.txt")  # already gone: not an error

    with pytest.raises(TaskError, match="is a directory"):
        run(tmp_path, "delete_file", file="out")
    run(tmp_path, "delete_file", file="out", recursive=True)
    assert not (tmp_path / "out").exists()
    with pytest.raises(TaskError, match="workspace itself"):
        run(tmp_path, "delete_file", file=".")


def test_delete_of_a_link_removes_the_link_not_its_target(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("keep")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    run(tmp_path, "delete_file", file="link.txt")
    assert not (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "real.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("task", "inputs"),
    [
        ("write_file", {"file": "../escape.txt", "content": "x"}),
        ("write_file", {"file": "/etc/passwd", "content": "x"}),
        ("read_file", {"file": "/etc/passwd"}),
        ("write_file", {"file": "out_link/f.txt", "content": "x"}),
        ("read_file", {"file": "out_link/secret.txt"}),
        ("write_json", {"file": "../x.json", "data": {}}),
        ("read_yaml", {"file": "../x.yaml"}),
        ("copy_file", {"source": "in.txt", "destination": "../copy.txt"}),
        ("copy_file", {"source": "out_link/secret.txt", "destination": "stolen.txt"}),
        ("move_file", {"source": "in.txt", "destination": "out_link/moved.txt"}),
        ("delete_file", {"file": "out_link/secret.txt"}),
        ("template", {"template": "x", "output_file": "../t.txt"}),
    ],
)
def test_paths_outside_the_workspace_are_refused(
    tmp_path: Path, task: str, inputs: dict[str, Any]
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (workspace / "out_link").symlink_to(outside)
    (workspace / "in.txt").write_text("in")
    with pytest.raises(WorkspacePathError):
        run(workspace, task, **inputs)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "copy.txt").exists()


# --- template -------------------------------------------------------------------------


def test_template_renders_loops_into_a_file_keeping_trailing_newlines(tmp_path: Path) -> None:
    ctx = make_ctx(
        tmp_path, namespaces={"args": Namespace("args", {"things": ["x", "y"], "title": "Report"})}
    )
    source = "# {{ args.title | upper }}\n{% for t in args.things %}- {{ loop.index }}. {{ t }}\n{% endfor %}\n"
    result = invoke(ctx, "template", {"template": source, "output_file": "output/report.md"})
    target = tmp_path / "output/report.md"
    assert result == {"path": str(target.resolve())}
    assert target.read_text() == "# REPORT\n- 1. x\n- 2. y\n\n"


def test_template_without_file_and_with_non_string(tmp_path: Path) -> None:
    assert run(tmp_path, "template", template="{{ args.base * 2 }}") == {
        "path": None,
        "content": "20",
    }
    run(tmp_path, "template", template=5, output_file="five.txt")
    assert (tmp_path / "five.txt").read_text() == "5"


# --- batch ----------------------------------------------------------------------------


def test_batch_keeps_item_order_and_exposes_batch_namespace(tmp_path: Path) -> None:
    progress: list[tuple[int, int | None]] = []
    ctx = make_ctx(
        tmp_path, step="colors", report_progress=lambda d, t, m=None, **_: progress.append((d, t))
    )
    code = (
        "import time\n"
        "time.sleep(0.02 * (batch['total'] - batch['index']))\n"  # later items finish first
        "result = f\"{batch['index']}:{color.upper()}/{batch['total']}/{batch['chunk_index']}/{batch['name']}\"\n"
    )
    result = invoke(
        ctx,
        "batch",
        {
            "items": ["red", "green", "blue", "cyan", "pink"],
            "arg_name": "color",
            "chunk_size": 3,
            "max_workers": 3,
            "task": {"task": "python_code", "inputs": {"code": code}},
        },
    )
    assert result["results"] == [
        "0:RED/5/0/colors",
        "1:GREEN/5/0/colors",
        "2:BLUE/5/0/colors",
        "3:CYAN/5/1/colors",
        "4:PINK/5/1/colors",
    ]
    assert result["processed"] == ["red", "green", "blue", "cyan", "pink"]
    assert result["failed"] == []
    assert result["stats"]["total"] == 5 and result["stats"]["processed"] == 5
    assert result["stats"]["success_rate"] == 100.0
    assert [d for d, _ in progress] == [1, 2, 3, 4, 5] and {t for _, t in progress} == {5}


def test_batch_renders_sub_inputs_per_item(tmp_path: Path) -> None:
    # An item holding template markup is data: it is substituted, never rendered itself.
    things = [{"n": 1}, {"n": "{{ not_rendered }}"}]
    ctx = make_ctx(tmp_path, namespaces={"args": Namespace("args", {"things": things})})
    result = invoke(
        ctx,
        "batch",
        {
            "items": "{{ args.things }}",
            "task": {
                "task": "echo",
                "inputs": {"message": "{{ batch.index }}={{ item.n }}/{{ args.item.n }}"},
            },
        },
    )
    assert result["results"] == ["0=1/1", "1={{ not_rendered }}/{{ not_rendered }}"]


_ATTEMPTS: dict[Any, int] = {}
_LOCK = threading.Lock()


@register_task("ywf_test_flaky_item")
def _flaky_item(item: Any, fail_times: int = 1) -> Any:
    """A custom task failing its first ``fail_times`` calls per item."""
    with _LOCK:
        _ATTEMPTS[item] = _ATTEMPTS.get(item, 0) + 1
        count = _ATTEMPTS[item]
    if count <= fail_times:
        raise ConnectionError(f"flaky {item} attempt {count}")
    return f"{item}@{count}"


def test_batch_retries_each_item(tmp_path: Path) -> None:
    _ATTEMPTS.clear()
    result = run(
        tmp_path,
        "batch",
        items=["a", "b", "c"],
        max_workers=3,
        retry={"max_attempts": 2, "delay": 0.01},
        task={"task": "ywf_test_flaky_item", "inputs": {}},
    )
    assert result["results"] == ["a@2", "b@2", "c@2"]
    assert result["failed"] == []


def test_batch_failed_items_are_listed_without_failing_the_step(tmp_path: Path) -> None:
    _ATTEMPTS.clear()
    result = run(
        tmp_path,
        "batch",
        items=["a", "b"],
        task={"task": "python_code", "inputs": {"code": "result = 1 / (item != 'b')"}},
    )
    assert result["results"] == [1.0, None]
    assert result["processed"] == ["a"]
    assert result["failed"] == [
        {"index": 1, "item": "b", "error": "division by zero", "error_type": "ZeroDivisionError"}
    ]
    assert result["stats"]["failed"] == 1 and result["stats"]["success_rate"] == 50.0


def test_batch_fail_on_item_error_and_max_failed_items(tmp_path: Path) -> None:
    sub = {
        "task": "python_code",
        "inputs": {"code": "assert item % 2 == 0, f'odd {item}'\nresult = item"},
    }
    with pytest.raises(BatchItemsFailed, match="1 of 6 items failed.*odd 1") as caught:
        run(
            tmp_path, "batch", items=list(range(6)), chunk_size=2, fail_on_item_error=True, task=sub
        )
    # The first chunk already decided the outcome: later chunks were not run.
    stats = caught.value.result["stats"]
    assert (stats["processed"], stats["failed"], stats["skipped"]) == (1, 1, 4)

    tolerated = run(tmp_path, "batch", items=list(range(4)), max_failed_items=2, task=sub)
    assert tolerated["stats"]["failed"] == 2
    with pytest.raises(BatchItemsFailed):
        run(tmp_path, "batch", items=list(range(6)), max_failed_items=2, task=sub)


def test_batch_unknown_sub_task_and_missing_engine(tmp_path: Path) -> None:
    from yaml_workflow.exceptions import TaskNotFoundError

    with pytest.raises(TaskNotFoundError):
        run(tmp_path, "batch", items=[1], task={"task": "ech"})
    ctx = make_ctx(tmp_path)
    ctx.call_task = None
    inputs = BatchInputs.model_validate({"items": [1], "task": {"task": "echo"}})
    with pytest.raises(TaskError, match="call sub-tasks"):
        batch(inputs, ctx)


def test_every_builtin_is_registered() -> None:
    names = {
        "echo", "noop", "fail", "notify", "shell", "python_code", "python_function",
        "python_script", "python_module", "template", "write_file", "append_file",
        "read_file", "write_json", "write_yaml", "read_json", "read_yaml", "copy_file",
        "move_file", "delete_file", "http.request", "http_request", "batch",
    }  # fmt: skip
    for name in names:
        assert get_task(name).call == "builtin"
    assert get_task("shell").required_inputs == ["command"]
    assert get_task("template").raw_inputs == frozenset({"template"})


def test_the_lazy_builtin_map_names_every_builtin_task_and_its_module() -> None:
    # given every built-in module imported
    import importlib

    from yaml_workflow.tasks import registry

    registry._load_builtins()
    builtins = {name: spec for name, spec in registry._REGISTRY.items()
                if spec.func.__module__.startswith("yaml_workflow.tasks.builtin.")}
    # then the map that lets a run import only what it uses is complete and right
    assert set(builtins) == set(registry.BUILTIN_MODULES)
    for name, spec in builtins.items():
        module = importlib.import_module(spec.func.__module__)
        assert module.__name__.rsplit(".", 1)[1] == registry.BUILTIN_MODULES[name], name
