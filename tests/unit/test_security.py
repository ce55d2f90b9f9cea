"""Security guarantees, tested end to end: shell injection, file confinement, the template
sandbox and its Jinja2 pin, and secrets masked everywhere a run leaves a trace.

TLS (``rediss://``) and Redis ACL users are tested against real servers in
tests/integration/test_redis_store.py (test_rediss_with_tls_options_in_the_url,
test_password_and_acl_user_in_the_url); they are not repeated here.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import textwrap
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.redis_server import RedisServer
from yaml_workflow.cli.main import run_cli
from yaml_workflow.exceptions import WorkspacePathError
from yaml_workflow.state.mirror import JOURNAL_DIR, STATE_FILE
from yaml_workflow.tasks import TaskContext, get_task
from yaml_workflow.templating import Namespace
from yaml_workflow.templating.sandbox import ENV

ROOT = Path(__file__).resolve().parents[2]


def cli(*argv: str) -> tuple[int, str, str]:
    """``yaml-workflow ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(list(argv))
    return code, out.getvalue(), err.getvalue()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# --- (a) shell: values cannot inject commands through argv, | shquote or env ----------------

INJECTION_WORKFLOW = """
    params:
      value: {type: string, required: true}
    env:
      YWF_WF_VALUE: "{{ args.value }}"
    steps:
      - name: argv
        task: shell
        inputs:
          command: [printf, "%s\\n", "{{ args.value }}"]
      - name: shquote
        task: shell
        inputs:
          command: "printf '%s\\n' {{ args.value | shquote }}"
      - name: step_env
        task: shell
        inputs:
          command: 'printf "%s\\n" "$YWF_VALUE"'
          env: {YWF_VALUE: "{{ args.value }}"}
      - name: workflow_env
        task: shell
        inputs:
          command: 'printf "%s\\n" "$YWF_WF_VALUE"'
"""


def payloads(marker: Path) -> list[str]:
    """Values that would run ``touch MARKER`` if a shell ever interpreted them."""
    m = str(marker)
    return [
        f"x; touch {m}",
        f"$(touch {m})",
        f"`touch {m}`",
        f"'\"; touch {m}; \"'",
        f"\"; touch {m}; echo \"",
        f"' ; touch {m} ; '",
        f"a\ntouch {m}",
        f"a && touch {m} || touch {m}",
        f"a | touch {m}",
        f"a > {m}",
        f"$((1+1)) ${{IFS}} $HOME \\$(touch {m})",
        f"-n; touch {m}",
        "{{ 7*7 }} {% if true %}rendered twice{% endif %}",
        "ünïcödé ☃ \t tab",
    ]


@pytest.mark.parametrize("index", range(14))
def test_a_param_value_cannot_inject_a_command_and_arrives_intact(tmp_path: Path, index: int) -> None:
    marker = tmp_path / "PWNED"
    value = payloads(marker)[index]
    wf = write(tmp_path / "wf.yaml", INJECTION_WORKFLOW)
    code, out, err = cli("run", str(wf), f"value={value}", "--base-dir", str(tmp_path / "runs"),
                         "--format", "json", "-q")
    assert code == 0, err
    assert not marker.exists(), "a param value ran a command"
    assert not list(tmp_path.rglob("PWNED")) and not list(tmp_path.rglob("rendered twice"))
    outputs = json.loads(out)["outputs"]
    for step in ("argv", "shquote", "step_env", "workflow_env"):
        assert outputs[step]["stdout"] == value + "\n", step  # byte for byte, rendered once


def test_a_string_command_is_run_by_the_shell_as_documented(tmp_path: Path) -> None:
    # The contrast the README states: interpolating a value into a string command without
    # shquote hands it to /bin/sh, which runs what it says.
    marker = tmp_path / "RAN"
    wf = write(tmp_path / "wf.yaml", """
        params:
          value: {type: string}
        steps:
          - name: unsafe
            task: shell
            inputs: {command: "echo {{ args.value }}"}
    """)
    code, _out, err = cli("run", str(wf), f"value=x; touch {marker}", "--base-dir", str(tmp_path / "r"), "-q")
    assert code == 0, err
    assert marker.exists()


def test_the_docs_say_how_a_string_command_runs_and_how_to_pass_untrusted_values() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8") + (ROOT / "docs" / "security.md").read_text(
        encoding="utf-8")
    assert "/bin/sh" in text
    assert "shquote" in text and "env:" in text
    assert re.search(r"list|argv", text)


# --- (b) files: nothing outside the workspace is read or written ---------------------------


def make_ctx(workspace: Path) -> TaskContext:
    namespaces = {"args": Namespace("args", {}), "env": Namespace("env", {}),
                  "steps": Namespace("steps", {}), "workflow": Namespace("workflow", {})}
    return TaskContext(step="s", task="?", workspace=workspace, namespaces=namespaces)


def call(workspace: Path, task: str, inputs: dict[str, Any]) -> Any:
    spec = get_task(task)
    ctx = make_ctx(workspace)
    ctx.task = task
    return spec.func(spec.inputs_model.model_validate(inputs), ctx)


@pytest.fixture()
def jail(tmp_path: Path) -> dict[str, Path]:
    """A workspace with links out of it, next to an outside directory holding a secret."""
    workspace = tmp_path / "ws"
    (workspace / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (workspace / "inside.txt").write_text("inside")
    (workspace / "link_file").symlink_to(outside / "secret.txt")  # a file link out
    (workspace / "link_dir").symlink_to(outside)  # a directory link out
    (workspace / "sub" / "hop").symlink_to("../link_dir")  # a link to a link out
    (workspace / "abs_link").symlink_to("/etc")  # an absolute link out
    return {"workspace": workspace, "outside": outside, "root": tmp_path}


def escapes(outside: Path) -> list[str]:
    return ["../x.txt", "../../x.txt", "sub/../../x.txt", "./../x.txt", str(outside / "x.txt"),
            "link_dir/x.txt", "sub/hop/x.txt", "link_file", "link_dir", "abs_link/x.txt",
            "/tmp/../" + str(outside / "x.txt").lstrip("/"), "sub/../link_dir/secret.txt"]


WRITERS = {
    "write_file": lambda p: {"file": p, "content": "pwned"},
    "append_file": lambda p: {"file": p, "content": "pwned"},
    "write_json": lambda p: {"file": p, "data": {"pwned": True}},
    "write_yaml": lambda p: {"file": p, "data": {"pwned": True}},
    "template": lambda p: {"template": "pwned", "output_file": p},
    "copy_file": lambda p: {"source": "inside.txt", "destination": p},
    "move_file": lambda p: {"source": "inside.txt", "destination": p},
}
READERS = {
    "read_file": lambda p: {"file": p},
    "read_json": lambda p: {"file": p},
    "read_yaml": lambda p: {"file": p},
    "copy_file": lambda p: {"source": p, "destination": "stolen.txt"},
    "move_file": lambda p: {"source": p, "destination": "stolen.txt"},
    "delete_file": lambda p: {"file": p, "recursive": True},
    "shell": lambda p: {"command": "pwd", "working_dir": p},
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("task", sorted(WRITERS))
def test_file_tasks_cannot_write_outside_the_workspace(jail: dict[str, Path], task: str) -> None:
    workspace, outside = jail["workspace"], jail["outside"]
    before = snapshot(outside)
    for path in escapes(outside):
        with pytest.raises(WorkspacePathError):
            call(workspace, task, WRITERS[task](path))
        assert snapshot(outside) == before, (task, path)
        assert (workspace / "inside.txt").read_text() == "inside", (task, path)  # move refused whole
    assert not (jail["root"] / "x.txt").exists() and not Path("/x.txt").exists()
    assert not (Path("/etc") / "x.txt").exists()


@pytest.mark.parametrize("task", sorted(READERS))
def test_file_tasks_cannot_read_or_remove_outside_the_workspace(jail: dict[str, Path], task: str) -> None:
    workspace, outside = jail["workspace"], jail["outside"]
    before = snapshot(outside)
    targets = [*escapes(outside), "/etc/passwd", "link_dir/secret.txt", str(outside / "secret.txt"),
               "../outside/secret.txt", "sub/hop/secret.txt", "abs_link/passwd"]
    for path in targets:
        if task == "delete_file" and path in ("link_file", "link_dir"):
            continue  # a link itself is inside: deleting removes the link (tested below)
        with pytest.raises(WorkspacePathError):
            call(workspace, task, READERS[task](path))
        assert snapshot(outside) == before, (task, path)
        assert not (workspace / "stolen.txt").exists(), (task, path)
    assert Path("/etc/passwd").exists()


def test_deleting_a_link_out_removes_the_link_and_never_its_target(jail: dict[str, Path]) -> None:
    workspace, outside = jail["workspace"], jail["outside"]
    for link in ("link_file", "link_dir"):
        try:
            call(workspace, "delete_file", {"file": link, "recursive": True})
        except WorkspacePathError:
            assert (workspace / link).is_symlink()  # refused: nothing changed
        else:
            assert not (workspace / link).is_symlink()
        assert (outside / "secret.txt").read_text() == "top secret"


def test_a_workflow_writing_outside_its_workspace_fails_that_step(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    wf = write(tmp_path / "wf.yaml", f"""
        steps:
          - name: escape
            task: write_file
            inputs: {{file: "../../outside.txt", content: pwned}}
          - name: escape_abs
            task: template
            on_error: continue
            inputs: {{template: pwned, output_file: "{outside}"}}
    """)
    code, _out, err = cli("run", str(wf), "--base-dir", str(tmp_path / "runs"), "-q")
    assert code == 1
    assert "resolves outside the workspace" in err and "escape" in err
    assert not outside.exists()


# --- (c) templates: the sandbox everywhere, and the Jinja2 release it relies on ------------


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_jinja2_is_a_release_with_the_known_sandbox_escapes_fixed() -> None:
    # 3.1.5 fixed CVE-2024-56201/56326 (str.format via indirect calls), 3.1.6 CVE-2025-27516 (|attr).
    assert _version_tuple(version("jinja2")) >= (3, 1, 6)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pin = re.search(r'"jinja2\s*>=\s*([\d.]+)', pyproject, re.IGNORECASE)
    assert pin and _version_tuple(pin.group(1)) >= (3, 1, 6), "pyproject must pin jinja2>=3.1.6"
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    assert isinstance(ENV, ImmutableSandboxedEnvironment)


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ ''|attr('__class__') }}",
    "{{ '{0.__class__.__mro__}'.format(args) }}",
    "{{ ('{0.__globals__}'|attr('format'))(lipsum) }}",
    "{% set f = '{0.__class__}'.format %}{{ f(args) }}",
    "{{ args.__class__.__base__.__subclasses__() }}",
    "{{ steps.__class__.__init__.__globals__ }}",
]


@pytest.mark.parametrize("where", ["input", "condition", "on_error", "template_task", "workflow_env"])
def test_every_template_entry_point_is_sandboxed(tmp_path: Path, where: str) -> None:
    # The unit tests try the payloads on the renderer; here each place a workflow holds a
    # template goes through it, so none of them has a renderer of its own.
    for index, payload in enumerate(ESCAPES):
        quoted = json.dumps(payload)
        body = {
            "input": f"task: echo\n    inputs: {{message: {quoted}}}",
            "condition": f"task: echo\n    condition: {quoted}\n    inputs: {{message: x}}",
            "on_error": f"task: fail\n    on_error: {{action: continue, message: {quoted}}}\n    inputs: {{message: boom}}",
            "template_task": f"task: template\n    inputs: {{template: {quoted}}}",
            "workflow_env": "task: echo\n    inputs: {message: '{{ env.YWF_X }}'}",
        }[where]
        text = f"steps:\n  - name: probe\n    {body}\n"
        if where == "workflow_env":
            text = f"env:\n  YWF_X: {quoted}\n" + text
        wf = tmp_path / f"wf{index}.yaml"
        wf.write_text(text, encoding="utf-8")
        base = tmp_path / f"runs{index}"
        code, out, err = cli("run", str(wf), "--base-dir", str(base), "--format", "json", "-q")
        leaked = out + err + "".join(p.read_text(errors="replace") for p in base.rglob("*") if p.is_file())
        assert "<class" not in leaked and "<function" not in leaked and "__builtins__" not in leaked, payload
        assert "Traceback" not in leaked and "internal error" not in leaked, (payload, err)
        if where == "on_error":
            # the step fails and continues; its message template is refused, not rendered
            assert code == 0, (payload, err)
            (state_file,) = base.glob("*/" + STATE_FILE)
            record = json.loads(state_file.read_text())["execution_state"]["step_outputs"]["probe"]
            assert "sandbox" in record["error_message"], (payload, record)
            continue
        assert code in (1, 2), (payload, out)
        assert "refused by the sandbox" in out + err, (payload, out, err)


# --- (d) secrets: masked in output, state, journal, logs and Redis --------------------------

SECRET_WORKFLOW = """
    secrets: [YWF_TEST_TOKEN]
    params:
      label: {type: string, default: plain}
    steps:
      - name: shell_echo
        task: shell
        inputs:
          command: 'echo "token=$YWF_TEST_TOKEN"; echo "stderr=$YWF_TEST_TOKEN" >&2'
      - name: code_result
        task: python_code
        inputs:
          code: |
            token = env["YWF_TEST_TOKEN"]
            result = {"token": token, "nested": [token, {"deep": "x" + token + "y"}]}
      - name: template_result
        task: echo
        inputs: {message: "env says {{ env.YWF_TEST_TOKEN }} / {{ steps.code_result.result.token }}"}
      - name: retried
        task: python_code
        retry: {max_attempts: 2, delay: 0}
        on_error: continue
        inputs:
          code: |
            raise RuntimeError("retry with " + env["YWF_TEST_TOKEN"])
      - name: shell_fails
        task: shell
        on_error: {action: continue, message: "shell said {{ error.message }} / {{ env.YWF_TEST_TOKEN }}"}
        inputs:
          command: 'echo "bad $YWF_TEST_TOKEN" >&2; exit 4'
      - name: code_fails
        task: python_code
        on_error:
          action: continue
          message: "{{ error.type }}: {{ error.message }} (token {{ env.YWF_TEST_TOKEN }})"
        inputs:
          code: |
            raise ValueError("the token " + env["YWF_TEST_TOKEN"] + " was refused")
      - name: last
        task: fail
        inputs: {message: "giving up with {{ env.YWF_TEST_TOKEN }}"}
"""


def redis_dump(client: redis.Redis, prefix: str) -> bytes:
    """Every key under ``prefix`` and every value, whatever its type, as one blob."""
    parts: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=500):
        kind = client.type(key).decode()
        parts.append(key)
        if kind == "string":
            parts.append(client.get(key) or b"")
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        elif kind == "set":
            parts += sorted(client.smembers(key))
        elif kind == "zset":
            parts += [member for member, _score in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for _id, fields in client.xrange(key):
                for field, value in fields.items():
                    parts += [field, value]
        else:  # pragma: no cover - a type the store does not use
            parts.append(client.dump(key) or b"")
    return b"\n".join(parts)


@pytest.mark.redis
def test_a_secret_is_masked_in_every_trace_of_a_run(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"ywf-S3cr3t-{uuid.uuid4().hex}"
    prefix = f"ywfsec{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("YWF_TEST_TOKEN", secret)
    monkeypatch.setenv("YAML_WORKFLOW_STATE_URL", redis_server.url)
    monkeypatch.setenv("YAML_WORKFLOW_KEY_PREFIX", prefix)
    wf = write(tmp_path / "wf.yaml", SECRET_WORKFLOW)
    base = tmp_path / "runs"
    seen: dict[str, str] = {}

    # the run: text output, then JSON output (with --output), a param carrying the secret too
    code, out, err = cli("run", str(wf), "--base-dir", str(base), f"label={secret}", f"extra={secret}")
    assert code == 1, err
    seen["run text stdout"], seen["run text stderr"] = out, err
    code, out, err = cli("run", str(wf), "--base-dir", str(base), "--format", "json",
                         "--output", str(tmp_path / "result.json"), f"label={secret}")
    assert code == 1, err
    seen["run json stdout"], seen["run json stderr"] = out, err
    result = json.loads(out)
    workspace = Path(result["workspace"])

    # what the run recorded, masked where the secret was
    assert result["outputs"]["shell_echo"]["stdout"] == "token=***\n"
    assert result["outputs"]["code_result"] == {"token": "***", "nested": ["***", {"deep": "x***y"}]}
    assert result["outputs"]["template_result"] == "env says *** / ***"
    assert "***" in result["error"] and result["failed_step"] == "last"

    # every command that shows the run
    for argv in (["status", str(workspace)], ["status", str(workspace), "--format", "json"],
                 ["logs", str(workspace)], ["runs", "--format", "json"]):
        code, out, err = cli(*argv)
        assert code == 0, (argv, err)
        seen[" ".join(argv[:1] + argv[2:])] = out + err

    # every file the runs left: state files, journal lines, step logs, the --output document
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "wf.yaml"]
    assert any(p.name == STATE_FILE for p in files)
    assert any(JOURNAL_DIR.as_posix() in p.as_posix() for p in files)
    assert any(p.parent.name == "logs" and p.suffix == ".log" for p in files)
    for path in files:
        seen[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    for path in workspace.glob(".ywf/journal/*.jsonl"):
        for number, line in enumerate(path.read_text().splitlines()):
            seen[f"{path.name}:{number}"] = line

    # everything in Redis under the run's prefix
    client = redis.Redis.from_url(redis_server.url)
    try:
        blob = redis_dump(client, prefix)
    finally:
        client.close()
    assert blob, "the run kept nothing in Redis"
    seen["redis"] = blob.decode("utf-8", errors="replace")

    leaks = [where for where, text in seen.items() if secret in text]
    assert not leaks, f"the secret's value leaked into: {leaks}"
    for where in ("run text stderr", "run json stdout", "redis", str(workspace / STATE_FILE)):
        assert "***" in seen[where], where
    state = json.loads(seen[str(workspace / STATE_FILE)])
    records = state["execution_state"]["step_outputs"]
    assert "***" in records["shell_fails"]["error_message"] and "***" in records["code_fails"]["error"]
    assert state["params"]["label"] == "***"


# --- (e) masking is for data: never our ids, names, statuses or paths; short secrets refused ---


@pytest.mark.parametrize("secret", ["q7z", "x9y", "ted", "12345", "a b c"])
def test_a_secret_shorter_than_6_characters_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("YWF_SHORT", secret)
    wf = write(tmp_path / "wf.yaml", """
        secrets: [YWF_SHORT]
        steps:
          - {name: s, task: echo, inputs: {message: hi}}
    """)
    for extra in ([], ["--dry-run"]):
        code, out, err = cli("run", str(wf), "--base-dir", str(tmp_path / "runs"), *extra)
        assert code == 2, (extra, err)
        assert err.count("\n") == 1 and "YWF_SHORT" in err and "shorter than 6" in err, err
        assert secret not in err.replace("YWF_SHORT", "")
    assert not (tmp_path / "runs").exists()


CONTROL_WORDS = ["completed", "running", "failed", "fetch_data", "review-sec"]


@pytest.mark.parametrize("secret", CONTROL_WORDS)
def test_masking_never_touches_ids_names_statuses_or_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    # A secret equal to a status, a step name or a piece of the workspace's path: data
    # holding it is masked, our own fields are not.
    monkeypatch.setenv("YWF_WORD", secret)
    base = tmp_path / "review-sec" / "runs"
    wf = write(tmp_path / "wf.yaml", """
        name: review-sec
        secrets: [YWF_WORD]
        steps:
          - name: fetch_data
            task: echo
            inputs: {message: "said {{ env.YWF_WORD }}"}
          - name: running
            task: python_code
            inputs:
              code: |
                result = {env["YWF_WORD"]: "key", "workspace": workspace}
          - name: last
            task: noop
    """)
    code, out, err = cli("run", str(wf), "--base-dir", str(base), "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    workspace = Path(result["workspace"])
    assert workspace.parent == base and workspace.is_dir(), result["workspace"]
    assert result["run_status"] == "completed"
    assert result["outputs"]["fetch_data"] == "said ***"
    assert list(result["outputs"]["running"]) == ["***", "workspace"]  # the key is data
    state = json.loads((workspace / STATE_FILE).read_text())
    assert state["status"] == state["execution_state"]["status"] == "completed"
    assert state["workspace"] == str(workspace) and state["name"] == "review-sec"
    records = state["execution_state"]["step_outputs"]
    assert list(records) == ["fetch_data", "running", "last"]
    assert all(r["status"] == "completed" for r in records.values()), records
    assert not [p for p in tmp_path.rglob("*") if "***" in p.name]  # nothing under a masked path
    # and every command that reads the run still finds it
    code, out, err = cli("status", str(workspace), "--format", "json")
    assert code == 0 and json.loads(out)["status"] == "completed", err


# --- (f) every form of a secret our serialisers write is caught; params keep their values ---

# A secret with a quote, a backslash, a single quote and unicode: each serialiser escapes
# it its own way.  The numeric one is read back as a number.
FORMS_TOKEN = "Ab\"cd\\ef'☃-" + "9f3e1c"
FORMS_PIN = "31337420"


def forms_of(secret: str) -> dict[str, str]:
    """The texts that would leak ``secret``: raw and as each of our serialisers writes it."""
    import shlex

    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json (unicode kept)": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json in json": json.dumps(json.dumps(secret))[1:-1],
        "json in json (unicode kept)": json.dumps(json.dumps(secret, ensure_ascii=False), ensure_ascii=False)[1:-1],
        "repr": repr(secret)[1:-1],
        "shquote": shlex.quote(secret),
    }


def test_the_forms_of_a_secret_that_masking_catches() -> None:
    # The list docs/security.md refers to: each form, in a text, a key and a number.
    from yaml_workflow.engine.secrets import MASK, Masker

    masker = Masker({"TOKEN": FORMS_TOKEN, "PIN": FORMS_PIN})
    for form, text in forms_of(FORMS_TOKEN).items():
        masked = masker.text(f"<{text}>")
        # what is left around the mask is at most the quoting of the outer serialiser
        assert MASK in masked and set(masked.replace(MASK, "")) <= set('<>\\"'), (form, masked)
    data = {FORMS_TOKEN: [FORMS_TOKEN, {"deep": f"x{FORMS_TOKEN}y"}], "n": int(FORMS_PIN),
            "f": float(FORMS_PIN), "s": FORMS_PIN, "other": 31337421, "ok": True}
    assert masker.value(data) == {MASK: [MASK, {"deep": f"x{MASK}y"}], "n": MASK, "f": MASK, "s": MASK,
                                  "other": 31337421, "ok": True}
    assert masker.value({int(FORMS_PIN): "a number as a key"}) == {MASK: "a number as a key"}
    # and what it does not catch, as docs/security.md says
    import base64

    for uncaught in (base64.b64encode(FORMS_TOKEN.encode()).decode(), FORMS_TOKEN[:5] + " " + FORMS_TOKEN[5:],
                     FORMS_TOKEN.upper()):
        assert masker.text(uncaught) == uncaught


FORMS_WORKFLOW = """
    secrets: [YWF_FORMS_TOKEN, YWF_FORMS_PIN]
    params:
      label: {type: string, default: plain}
      pin: {type: integer, default: 1}
      opts: {type: object, default: {}}
    steps:
      - name: keyed
        task: python_code
        inputs:
          code: |
            result = {env["YWF_FORMS_TOKEN"]: 1, "pin": int(env["YWF_FORMS_PIN"]),
                      "pin_float": float(env["YWF_FORMS_PIN"])}
      - name: as_json
        task: echo
        inputs: {message: "{{ {'t': env.YWF_FORMS_TOKEN} | tojson }}"}
      - name: as_repr
        task: python_code
        inputs:
          code: |
            import json
            result = [repr({"t": env["YWF_FORMS_TOKEN"]}), json.dumps(json.dumps(env["YWF_FORMS_TOKEN"]))]
      - name: quoted
        task: echo
        inputs: {message: "{{ env.YWF_FORMS_TOKEN | shquote }}"}
      - name: params_seen
        task: python_code
        inputs:
          code: |
            result = {"label": args["label"] == env["YWF_FORMS_TOKEN"],
                      "pin": args["pin"] == int(env["YWF_FORMS_PIN"]),
                      "nested": args["opts"].get("k") == env["YWF_FORMS_TOKEN"]}
      - name: gate
        task: shell
        inputs: {command: "test -f {{ workflow.workspace }}/go"}
      - name: after_resume
        task: python_code
        inputs:
          code: |
            result = {"label": args["label"] == env["YWF_FORMS_TOKEN"],
                      "pin": args["pin"] == int(env["YWF_FORMS_PIN"])}
"""


@pytest.mark.redis
def test_every_form_of_a_secret_is_masked_and_a_resume_gets_the_params_back(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"ywfforms{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("YWF_FORMS_TOKEN", FORMS_TOKEN)
    monkeypatch.setenv("YWF_FORMS_PIN", FORMS_PIN)
    monkeypatch.setenv("YAML_WORKFLOW_STATE_URL", redis_server.url)
    monkeypatch.setenv("YAML_WORKFLOW_KEY_PREFIX", prefix)
    wf = write(tmp_path / "wf.yaml", FORMS_WORKFLOW)
    base = tmp_path / "runs"
    seen: dict[str, str] = {}
    opts = json.dumps({"k": FORMS_TOKEN})
    code, out, err = cli("run", str(wf), "--base-dir", str(base), "--format", "json",
                         "--output", str(tmp_path / "out.json"), f"label={FORMS_TOKEN}", f"pin={FORMS_PIN}",
                         f"opts={opts}")
    assert code == 1, err
    seen["first run"] = out + err
    result = json.loads(out)
    workspace = Path(result["workspace"])
    assert result["failed_step"] == "gate"
    assert result["outputs"]["keyed"] == {"***": 1, "pin": "***", "pin_float": "***"}
    assert result["outputs"]["params_seen"] == {"label": True, "pin": True, "nested": True}

    # the stored params are references to the secrets, by name, never their values
    state = json.loads((workspace / STATE_FILE).read_text())
    assert state["params"]["label"] == "***" and state["params"]["pin"] == "***"
    assert state["params"]["opts"] == {"k": "***"}
    refs = {tuple(r["path"]): r["secret"] for r in state["param_secrets"]}
    assert refs == {("label",): "YWF_FORMS_TOKEN", ("pin",): "YWF_FORMS_PIN", ("opts", "k"): "YWF_FORMS_TOKEN"}

    # a resume takes the values from its own environment
    (workspace / "go").touch()
    code, out, err = cli("run", str(wf), "--resume", "--workspace", str(workspace), "--format", "json")
    assert code == 0, err
    seen["resume"] = out + err
    assert json.loads(out)["outputs"]["after_resume"] == {"label": True, "pin": True}
    # a resume in an environment without the secret is refused, naming it, not its value
    monkeypatch.delenv("YWF_FORMS_TOKEN")
    code, out, err = cli("run", str(wf), "--resume", "--workspace", str(workspace), "--from-step", "gate")
    assert code == 2 and "YWF_FORMS_TOKEN" in err, err
    monkeypatch.setenv("YWF_FORMS_TOKEN", FORMS_TOKEN)

    # a param error never quotes a secret's value
    code, out, err = cli("run", str(wf), "--base-dir", str(tmp_path / "refused"), f"pin={FORMS_TOKEN}")
    assert code == 2 and "parameter 'pin'" in err, err
    seen["param error"] = out + err
    code, out, err = cli("run", str(wf), "--resume", "--workspace", str(workspace), "--from-step", "gate",
                         "label=" + FORMS_TOKEN + "x")
    assert code == 2, err
    seen["resume refusal"] = out + err

    for argv in (["status", str(workspace), "--format", "json"], ["logs", str(workspace)]):
        code, out, err = cli(*argv)
        seen[argv[0]] = out + err
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "wf.yaml":
            seen[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    client = redis.Redis.from_url(redis_server.url)
    try:
        seen["redis"] = redis_dump(client, prefix).decode("utf-8", errors="replace")
    finally:
        client.close()

    forms = {**forms_of(FORMS_TOKEN), "pin": FORMS_PIN}
    leaks = [(where, form) for where, text in seen.items() for form, needle in forms.items() if needle in text]
    assert not leaks, leaks


def test_python_code_is_a_template_and_inputs_pass_values_as_data(tmp_path: Path) -> None:
    # What docs/security.md warns about: a param rendered into `code:` is code; the same
    # value passed through `inputs:` is a plain str.
    marker = tmp_path / "RAN"
    payload = f'x"; open({str(marker)!r}, "w").close(); y = "'
    wf = write(tmp_path / "wf.yaml", """
        params:
          name: {type: string}
        steps:
          - name: unsafe
            task: python_code
            inputs:
              code: |
                result = "Hello {{ args.name }}"
          - name: safe
            task: python_code
            inputs:
              name: "{{ args.name }}"
              code: |
                result = "Hello " + name
    """)
    code, out, err = cli("run", str(wf), f"name={payload}", "--base-dir", str(tmp_path / "runs"),
                         "--format", "json", "-q")
    assert code == 0, err
    assert marker.exists()  # the unsafe form ran the payload
    marker.unlink()
    assert json.loads(out)["outputs"]["safe"] == "Hello " + payload
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert "`python_code`: the code is a template" in text and "inputs:" in text
    assert "base64" in text and "split in pieces" in text


def test_a_forged_reference_to_another_secret_is_refused_by_the_params_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The references that stand for secret params are signed with the params: pointing
    # `label` at another declared secret would hand it that secret's value.
    monkeypatch.setenv("YWF_REF_ONE", "first-secret-value")
    monkeypatch.setenv("YWF_REF_TWO", "second-secret-value")
    wf = write(tmp_path / "wf.yaml", """
        secrets: [YWF_REF_ONE, YWF_REF_TWO]
        params:
          label: {type: string}
        steps:
          - name: gate
            task: shell
            inputs: {command: "test -f {{ workflow.workspace }}/go"}
    """)
    code, out, err = cli("run", str(wf), "--workspace", str(tmp_path / "ws"), "label=first-secret-value", "-q")
    assert code == 1, err
    path = tmp_path / "ws" / STATE_FILE
    state = json.loads(path.read_text())
    assert state["param_secrets"] == [{"path": ["label"], "secret": "YWF_REF_ONE"}]
    state["param_secrets"][0]["secret"] = "YWF_REF_TWO"
    path.write_text(json.dumps(state))
    (tmp_path / "ws" / "go").touch()
    code, out, err = cli("run", str(wf), "--resume", "--workspace", str(tmp_path / "ws"))
    assert code == 2 and "digest" in err, err
