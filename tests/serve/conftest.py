"""Fixtures of the dashboard tests: runs to show (local workspaces, Redis), an app, a client."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import RedisServer
from yaml_workflow import client
from yaml_workflow.state.document import now_iso, status_event, step_event
from yaml_workflow.state.stores.redis import RedisStore

pytest.importorskip("starlette", reason="the serve extra is part of dev")

from starlette.testclient import TestClient  # noqa: E402

from yaml_workflow.serve.app import create_app  # noqa: E402
from yaml_workflow.serve.security import ServeOptions  # noqa: E402

BASE_URL = "http://127.0.0.1:8080"
TOKEN = "ui-token-for-tests-5d1e"


def write(path: Path, text: str) -> Path:
    """Write a file (parents made) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for the browser tests, installed with apt-get when missing."""
    from tests.support.browser import ensure_chromium

    return ensure_chromium()


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dashboard's --base-dir; the workspace root points there too, and the cwd is empty."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("YAML_WORKFLOW_WORKSPACE_ROOT", str(root))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return root


@pytest.fixture
def local_run(runs_dir: Path, tmp_path: Path) -> Callable[..., client.RunResult]:
    """Run a workflow text locally under the runs dir; its result."""
    def run(text: str, params: dict[str, Any] | None = None, name: str = "wf.yaml") -> client.RunResult:
        return client.run(write(tmp_path / "wf" / name, text), params, base_dir=runs_dir)

    return run


@pytest.fixture
def redis_env(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisStore]:
    """The session's redis-server as the state store, under a prefix of this test alone."""
    prefix = f"{redis_server.prefix}{os.urandom(3).hex()}"
    monkeypatch.setenv("YAML_WORKFLOW_STATE_URL", redis_server.url)
    monkeypatch.setenv("YAML_WORKFLOW_KEY_PREFIX", prefix)
    store = RedisStore(redis_server.url, prefix=prefix)
    yield store
    store.close()


def seed_fleet_run(store: RedisStore, run_id: str, *, name: str = "fleet_wf", start: float,
                   status: str = "completed", steps: tuple[str, ...] = ("a", "b"),
                   host: str = "w1@node") -> None:
    """A fleet run in Redis alone (no workspace here), its steps done on ``host``."""
    store.create_run({"t": "run", "at": start, "workflow_id": run_id, "name": name,
                      "start_time": now_iso(start), "status": "running", "workspace": f"/elsewhere/{run_id}",
                      "params": {}, "plan": {"order": list(steps)}, "mode": "fleet"})
    for step in steps:
        store.record(run_id, step_event(step, "completed", result={"step": step}, attempt=1,
                                        duration=0.5, host=host, at=start + 1))
    if status != "running":
        store.record(run_id, status_event(status, at=start + 2))


def make_client(options: ServeOptions) -> TestClient:
    """A TestClient of the app built for ``options``."""
    return TestClient(create_app(options), base_url=BASE_URL)


@pytest.fixture
def dashboard(runs_dir: Path) -> TestClient:
    """A read-only dashboard (no token) on the runs dir."""
    return make_client(ServeOptions(base_dir=runs_dir))


@pytest.fixture
def token_dashboard(runs_dir: Path) -> TestClient:
    """A dashboard started with the action token."""
    return make_client(ServeOptions(base_dir=runs_dir, token=TOKEN))
