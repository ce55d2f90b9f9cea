"""What a new user copies from the README works: `make run`, the PATH hint, `make flower`.

The targets run as a user types them (`make run`, `make flower FLOWER_PORT=...`), with
the virtualenv the tests run in; ``-o STAMP`` keeps make from reinstalling it.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer, free_port
from tests.support.workers import stop_group, wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent  # the virtualenv running the tests
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _make(*args: str) -> list[str]:
    return [str(MAKE), "-s", "-C", str(ROOT), f"VENV={VENV}", "-o", f"{VENV}/.installed", *args]


def test_make_run_ends_by_saying_how_to_put_yaml_workflow_on_path(tmp_path: Path) -> None:
    # given a shell whose PATH does not hold the virtualenv (a fresh clone)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    # when the user types `make run`
    proc = subprocess.run(_make("run", f"RUNS={tmp_path}"), env=env, capture_output=True,
                          text=True, timeout=120)
    # then the example ran, and the last line is the command that puts it on PATH
    assert proc.returncode == 0, proc.stderr
    assert "Workflow 'hello_world' completed" in proc.stdout
    assert list(tmp_path.glob("hello_world_run_*/.workflow_metadata.json"))
    last = proc.stdout.strip().splitlines()[-1].strip()
    assert last == f". {VENV}/bin/activate", proc.stdout
    # and that line, typed in a shell, makes the bare name resolve
    which = subprocess.run(["sh", "-c", f"{last} && command -v yaml-workflow"], env=env,
                           capture_output=True, text=True, timeout=30)
    assert which.returncode == 0 and which.stdout.strip() == f"{VENV}/bin/yaml-workflow"


def test_readme_says_to_activate_before_its_first_bare_command() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    activate = text.find(". .venv/bin/activate")
    bare = re.search(r"^(\$ )?yaml-workflow ", text, re.MULTILINE)
    assert activate != -1, "the README never says how to put yaml-workflow on PATH"
    assert bare is not None and activate < bare.start(), "a bare command comes before the PATH hint"


def test_readme_documents_flower_port_and_api_auth() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for needed in ("make flower FLOWER_PORT=", "FLOWER_BASIC_AUTH", "--basic_auth",
                   "FLOWER_UNAUTHENTICATED_API"):
        assert needed in text, needed


def test_readme_fleet_section_names_the_settings_of_each_run_command() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    fleet = text[text.index("## Running on a fleet"):text.index("## Idempotent submits")]
    table = [line for line in fleet.splitlines() if line.startswith("| `")]
    covered = " ".join(line.split("|")[1] for line in table)
    for command in ("worker", "submit", "status", "runs", "logs", "cancel", "retry", "skip",
                    "clean", "submit --resume", "run"):
        assert f"`{command}`" in covered, command
    assert all("YAML_WORKFLOW_" in line or "nothing" in line for line in table)


@pytest.fixture
def flower_on_port(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[int, str]]:
    """`make flower FLOWER_PORT=<free port>` with basic auth from the environment."""
    port, password = free_port(), "s3cret-for-the-test"
    env = {**os.environ, "YAML_WORKFLOW_BROKER_URL": redis_server.url,
           "FLOWER_BASIC_AUTH": f"admin:{password}"}
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    log = open(tmp_path / "flower.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(_make("flower", f"FLOWER_PORT={port}"), env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield port, password
    finally:
        stop_group(proc)
        log.close()


def _status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0  # not listening yet


@pytest.mark.redis
def test_make_flower_listens_on_flower_port_and_its_api_takes_basic_auth(
        flower_on_port: tuple[int, str]) -> None:
    port, password = flower_on_port
    api = f"http://127.0.0.1:{port}/api/workers"
    # when Flower answers on the port given to make
    wait_for(lambda: _status(api) == 401, 60, f"Flower to answer on port {port}", interval=0.3)
    # then the API refuses a wrong password and serves the right one
    assert _status(api, "admin:wrong") == 401
    assert _status(api, f"admin:{password}") == 200
