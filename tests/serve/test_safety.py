"""The dashboard is safe by default: each promise of issue #17's "Safe by default" has a test here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import TOKEN, make_client
from yaml_workflow import client
from yaml_workflow.exceptions import UsageError
from yaml_workflow.serve.security import ServeOptions, check_bind, host_name

HOSTILE = "<script>alert('x')</script>"
FAILING = """
name: breaks
steps:
  - name: ok
    task: echo
    inputs: {message: fine}
  - name: flaky
    task: shell
    inputs: {command: "test -f ready"}
  - name: last
    task: echo
    inputs: {message: end}
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``yaml-workflow ARGS`` as a user types it."""
    return subprocess.run([sys.executable, "-m", "yaml_workflow", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


# --- where it listens ----------------------------------------------------------------


def test_a_non_loopback_host_is_refused_without_a_token_unless_public_read_only() -> None:
    check_bind(ServeOptions())  # 127.0.0.1
    check_bind(ServeOptions(host="::1"))
    with pytest.raises(UsageError) as refused:
        check_bind(ServeOptions(host="192.0.2.10"))
    assert "YAML_WORKFLOW_UI_TOKEN" in refused.value.one_line() and "--public-read-only" in refused.value.one_line()
    check_bind(ServeOptions(host="192.0.2.10", public_read_only=True))
    check_bind(ServeOptions(host="192.0.2.10", token=TOKEN))
    # every address at once: the names browsers use must be given (DNS rebinding)
    with pytest.raises(UsageError) as wildcard:
        check_bind(ServeOptions(host="0.0.0.0", token=TOKEN))
    assert "--allow-host" in wildcard.value.one_line()
    check_bind(ServeOptions(host="0.0.0.0", token=TOKEN, allowed_hosts=("board.example",)))
    # --public-read-only wins over a token: no action is offered
    assert not ServeOptions(host="192.0.2.10", token=TOKEN, public_read_only=True).actions


def test_serve_refuses_a_public_host_in_one_line_with_exit_2() -> None:
    proc = cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "YAML_WORKFLOW_UI_TOKEN" in proc.stderr and "Traceback" not in proc.stderr


def test_without_the_extra_serve_names_it_in_one_line_and_exits_2(tmp_path: Path) -> None:
    # given an interpreter where starlette cannot be imported
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nclass _Block:\n    def find_spec(self, name, path=None, target=None):\n"
                       "        if name.split('.')[0] in ('starlette', 'uvicorn'):\n"
                       "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
                       "sys.meta_path.insert(0, _Block())\n")
    proc = cli("serve", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "pip install 'yaml-workflow[serve]'" in proc.stderr and "Traceback" not in proc.stderr


# --- the Host header -----------------------------------------------------------------


def test_the_host_header_must_name_the_bind_address_or_an_allowed_host(dashboard: Any, runs_dir: Path) -> None:
    assert dashboard.get("/", headers={"host": "127.0.0.1:8080"}).status_code == 200
    assert dashboard.get("/", headers={"host": "localhost:8080"}).status_code == 200
    # a rebinding page: attacker.example resolved to 127.0.0.1
    refused = dashboard.get("/", headers={"host": "attacker.example:8080"})
    assert refused.status_code == 400 and "<" not in refused.text
    assert dashboard.get("/api/runs", headers={"host": "attacker.example"}).status_code == 400
    public = make_client(ServeOptions(host="0.0.0.0", base_dir=runs_dir, token=TOKEN,
                                      allowed_hosts=("board.example",)))
    assert public.get("/", headers={"host": "board.example"}).status_code == 200
    assert public.get("/", headers={"host": "other.example"}).status_code == 400
    assert host_name("[::1]:8080") == "::1" and host_name("Example.COM:80") == "example.com"


# --- escaping ------------------------------------------------------------------------


def test_a_step_named_script_is_shown_not_run(dashboard: Any, local_run: Callable[..., Any]) -> None:
    # given a run whose workflow name, step name, param, output and log hold markup
    result = local_run(f"""
name: "{HOSTILE}"
params:
  text: {{type: string, default: "x"}}
steps:
  - name: "{HOSTILE}"
    task: shell
    inputs: {{command: "echo '<img src=x onerror=alert(1)>'"}}
""", {"text": "<b>bold</b>"})
    pages = [dashboard.get("/"), dashboard.get(f"/runs/{result.run_id}"),
             dashboard.get(f"/runs/{result.run_id}/step", params={"name": HOSTILE}),
             dashboard.get(f"/runs/{result.run_id}/files")]
    for page in pages:
        assert page.status_code == 200, page.text
        # then no markup from the run reaches the page unescaped, in HTML or in the SVG
        assert "<script>alert" not in page.text and "<img src=x" not in page.text and "<b>bold" not in page.text
        assert "content-security-policy" in page.headers
    assert "&lt;script&gt;alert(" in pages[1].text and "&lt;img src=x" in pages[2].text
    svg = pages[1].text.split("<svg")[1].split("</svg>")[0]
    assert 'data-step="&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"' in svg
    assert "script-src 'self'" in pages[1].headers["content-security-policy"]


# --- files and logs ------------------------------------------------------------------


def test_file_views_refuse_paths_outside_the_workspace(dashboard: Any, local_run: Callable[..., Any],
                                                        tmp_path: Path) -> None:
    result = local_run(FAILING)
    workspace = Path(result.workspace)
    outside = tmp_path / "private.txt"
    outside.write_text("private-data-outside")
    (workspace / "link.txt").symlink_to(outside)
    (workspace / "linkdir").symlink_to(tmp_path)
    base = f"/runs/{result.run_id}/files/"
    for path in ("..%2F..%2Fprivate.txt", "%2E%2E/%2E%2E/private.txt", "logs/..%2F..%2F..%2Fprivate.txt",
                 "%2F" + str(outside).lstrip("/"), "/" + str(outside), "link.txt", "linkdir/private.txt"):
        answer = dashboard.get(base + path)
        assert answer.status_code in (400, 404), path
        assert "private-data-outside" not in answer.text, path
    # the listing shows the workspace's own files, not the links
    listing = dashboard.get(f"/runs/{result.run_id}/files").text
    assert "logs/flaky.log" in listing and "link.txt" not in listing and "linkdir" not in listing
    assert dashboard.get(base + "logs/flaky.log").status_code == 200
    # and the client says why, in one line
    with pytest.raises(UsageError, match="symbolic link"):
        client.read_file(result.run_id, "link.txt")
    with pytest.raises(UsageError, match="not a path inside the run's workspace"):
        client.read_file(result.run_id, "../x")
    with pytest.raises(UsageError):
        client.read_file(result.run_id, str(outside))


def test_a_step_log_that_is_a_link_out_of_the_workspace_is_not_shown(dashboard: Any, local_run: Callable[..., Any],
                                                                     tmp_path: Path) -> None:
    result = local_run(FAILING)
    log = Path(result.workspace) / "logs" / "flaky.log"
    outside = tmp_path / "secret.log"
    outside.write_text("private-log-outside")
    log.unlink()
    log.symlink_to(outside)
    page = dashboard.get(f"/runs/{result.run_id}/step", params={"name": "flaky"})
    assert page.status_code == 200 and "private-log-outside" not in page.text


def test_run_references_in_urls_are_run_ids_never_paths(dashboard: Any, local_run: Callable[..., Any]) -> None:
    result = local_run(FAILING)
    workspace = result.workspace
    assert dashboard.get("/runs/" + workspace.replace("/", "%2F")).status_code in (400, 404)
    assert dashboard.get("/runs/%2E%2E").status_code in (400, 404)
    assert dashboard.get("/api/runs/.%2E").status_code in (400, 404)


# --- actions -------------------------------------------------------------------------


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def test_read_only_offers_no_action_and_refuses_a_forged_post(dashboard: Any, local_run: Callable[..., Any]) -> None:
    result = local_run(FAILING)
    assert not result.ok
    page = dashboard.get(f"/runs/{result.run_id}").text
    assert "/actions/" not in page and "sign in" not in page and "read-only" in page
    for action in ("retry", "skip", "cancel", "resume"):
        forged = dashboard.post(f"/runs/{result.run_id}/actions/{action}", data={"step": "flaky"})
        assert forged.status_code == 403
        forged = dashboard.post(f"/runs/{result.run_id}/actions/{action}", data={"step": "flaky"},
                                headers={"authorization": f"Bearer {TOKEN}"})
        assert forged.status_code == 403
    assert dashboard.get("/login").status_code == 404
    assert client.status(result.run_id).status == "failed"  # nothing happened


def test_with_a_token_each_action_needs_the_session_the_csrf_token_and_this_origin(
        token_dashboard: Any, local_run: Callable[..., Any]) -> None:
    result = local_run(FAILING)
    url = f"/runs/{result.run_id}/actions/skip"
    page = token_dashboard.get(f"/runs/{result.run_id}").text
    assert "/actions/" not in page and "Sign in with the action token" in page
    csrf = _csrf(token_dashboard.get("/login").text)
    # not signed in: refused
    assert token_dashboard.post(url, data={"step": "flaky", "csrf": csrf}).status_code == 401
    # a wrong token does not sign in
    assert token_dashboard.post("/login", data={"token": "wrong", "csrf": csrf}).status_code == 403
    signed = token_dashboard.post("/login", data={"token": TOKEN, "csrf": csrf, "next": "//evil.example/"},
                                  follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    assert TOKEN not in signed.headers.get("set-cookie", "")
    # signed in, but no or a wrong CSRF token, or another site's Origin: refused
    assert token_dashboard.post(url, data={"step": "flaky"}).status_code == 403
    assert token_dashboard.post(url, data={"step": "flaky", "csrf": "x" + csrf}).status_code == 403
    assert token_dashboard.post(url, data={"step": "flaky", "csrf": csrf},
                                headers={"origin": "http://attacker.example"}).status_code == 403
    assert token_dashboard.post(url, data={"step": "flaky", "csrf": csrf},
                                headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert client.status(result.run_id).status == "failed"
    # the real form: the step is skipped and the run goes on to the end in a process of its own
    page = token_dashboard.get(f"/runs/{result.run_id}").text
    assert 'action="/runs/' in page and "act-retry" in page
    done = token_dashboard.post(url, data={"step": "flaky", "csrf": _csrf(page)},
                                headers={"origin": "http://127.0.0.1:8080"}, follow_redirects=False)
    assert done.status_code == 303
    from tests.support.workers import wait_for

    wait_for(lambda: client.status(result.run_id).status == "completed", 30, "the skipped run to complete")
    assert "is skipped" in token_dashboard.get(f"/runs/{result.run_id}").text  # the flash message


def test_a_script_acts_with_the_bearer_token(token_dashboard: Any, local_run: Callable[..., Any],
                                             runs_dir: Path) -> None:
    result = local_run(FAILING)
    url = f"/runs/{result.run_id}/actions/retry"
    assert token_dashboard.post(url, data={"step": "flaky"},
                                headers={"authorization": "Bearer nope"}).status_code == 401
    (Path(result.workspace) / "ready").touch()
    answer = token_dashboard.post(url, data={"step": "flaky"}, headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    from tests.support.workers import wait_for

    wait_for(lambda: client.status(result.run_id).status == "completed", 30, "the retried run to complete")
    # an action the run refuses comes back as a message, not a traceback
    again = token_dashboard.post(url, data={"step": "nosuch"}, headers={"authorization": f"Bearer {TOKEN}"})
    assert again.status_code == 409 and not again.json()["ok"] and "Traceback" not in again.text


def test_resume_and_cancel_through_the_dashboard(token_dashboard: Any, local_run: Callable[..., Any]) -> None:
    # given a failed local run whose cause is fixed
    result = local_run(FAILING)
    (Path(result.workspace) / "ready").touch()
    auth = {"authorization": f"Bearer {TOKEN}"}
    # cancel is refused for a run that already ended, in one line
    refused = token_dashboard.post(f"/runs/{result.run_id}/actions/cancel", headers=auth)
    assert refused.status_code == 409 and "already failed" in refused.json()["message"]
    # resume continues it in a process of its own, to the end
    resumed = token_dashboard.post(f"/runs/{result.run_id}/actions/resume", headers=auth)
    assert resumed.status_code == 200 and resumed.json()["ok"], resumed.text
    from tests.support.workers import wait_for

    wait_for(lambda: client.status(result.run_id).status == "completed", 30, "the resumed run to complete")
    history = [h["event"] for h in client.status(result.run_id).history]
    assert "resume" in history
