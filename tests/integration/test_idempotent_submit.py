"""Idempotent submits on a real fleet: one run per key, however many submits race."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.workers import Fleet, fleet_fixture, wait_for
from yaml_workflow.engine.request import RunRequest
from yaml_workflow.exceptions import UsageError
from yaml_workflow.executors.celery.idempotent import PENDING_FOR, check_key, digests, submit_once
from yaml_workflow.settings import reset_settings
from yaml_workflow.spec.loader import load_workflow_file
from yaml_workflow.spec.params import resolve_params
from yaml_workflow.state.stores.redis import Binding, IdempotencyKeys

pytestmark = [pytest.mark.celery, pytest.mark.redis]

fleet = fleet_fixture(workers=2, concurrency=2)

# Each execution of `count` appends a line to the file named by `tally`: one line, one run.
WF = """\
name: once
params:
  tally: {type: string, required: true}
  n: {type: integer, default: 1}
steps:
  - name: count
    task: shell
    inputs:
      command: ["sh", "-c", "echo ran >> \\"$0\\"; sleep 1", "{{ args.tally }}"]
"""


def _workflow(tmp: Path) -> Path:
    path = tmp / "once.yaml"
    path.write_text(WF)
    return path


def test_ten_racing_submits_with_one_key_make_one_run_and_all_follow_it(fleet: Fleet, tmp_path: Path) -> None:
    # given ten CI retries of one submit, started at once
    wf, tally = _workflow(tmp_path), tmp_path / "tally.txt"

    def submit(_: int) -> subprocess.CompletedProcess[str]:
        return fleet.cli("submit", str(wf), f"tally={tally}", "--idempotency-key", "ci-build-42",
                         "--wait", "--quiet", timeout=120)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(submit, range(10)))
    # then all ten exit 0 with the same run id first on stdout
    assert all(r.returncode == 0 for r in results), [r.stderr[-500:] for r in results if r.returncode]
    ids = {r.stdout.splitlines()[0] for r in results}
    assert len(ids) == 1, ids
    # nine were told on stderr that the run existed; the step ran exactly once
    told = [r for r in results if "already submitted with idempotency key 'ci-build-42'" in r.stderr]
    assert len(told) == 9, [r.stderr for r in results]
    assert tally.read_text().splitlines() == ["ran"]
    listing = fleet.cli("runs", "--workflow", "once", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count('"run_id"') == 1


def test_the_same_key_with_other_params_is_refused_with_one_line(fleet: Fleet, tmp_path: Path) -> None:
    wf, tally = _workflow(tmp_path), tmp_path / "tally.txt"
    first = fleet.cli("submit", str(wf), f"tally={tally}", "n=1", "--idempotency-key", "k-params")
    assert first.returncode == 0, first.stderr
    # n=01 is the same integer: the same submit
    same = fleet.cli("submit", str(wf), f"tally={tally}", "n=01", "--idempotency-key", "k-params")
    assert same.returncode == 0 and same.stdout.split()[0] == first.stdout.split()[0], same.stderr
    other = fleet.cli("submit", str(wf), f"tally={tally}", "n=2", "--idempotency-key", "k-params")
    assert other.returncode == 2
    assert other.stdout == ""
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and "k-params" in lines[0] and "other params" in lines[0], other.stderr
    # another workflow under the key: refused too, naming it
    (tmp_path / "other.yaml").write_text(WF.replace("name: once", "name: other"))
    renamed = fleet.cli("submit", str(tmp_path / "other.yaml"), f"tally={tally}", "--idempotency-key", "k-params")
    assert renamed.returncode == 2 and "workflow 'once'" in renamed.stderr, renamed.stderr


def test_after_the_ttl_the_key_is_free(fleet: Fleet, tmp_path: Path) -> None:
    wf, tally = _workflow(tmp_path), tmp_path / "tally.txt"
    ttl = {"YAML_WORKFLOW_IDEMPOTENCY_TTL": "3s"}
    first = fleet.cli("submit", str(wf), f"tally={tally}", "--idempotency-key", "k-ttl", env=ttl)
    assert first.returncode == 0, first.stderr
    again = fleet.cli("submit", str(wf), f"tally={tally}", "--idempotency-key", "k-ttl", env=ttl)
    first_id = first.stdout.split()[0]
    if again.stdout.split()[0] != first_id:  # the machine was slow enough for the TTL to pass
        pytest.skip("the second submit came after the 3 s TTL")
    keys = IdempotencyKeys(fleet.server.url, fleet.server.prefix)
    wait_for(lambda: keys.get("k-ttl") is None, 30, "the binding to expire")
    later = fleet.cli("submit", str(wf), f"tally={tally}", "--idempotency-key", "k-ttl", env=ttl)
    assert later.returncode == 0, later.stderr
    assert later.stdout.split()[0] != first_id
    assert "already submitted" not in later.stderr


def test_a_pending_binding_whose_submit_died_is_taken_over(redis_server: RedisServer, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # given a key bound by a submit that died before it created its run (no worker needed:
    # the takeover happens before anything is enqueued, which fails here on a dead broker)
    monkeypatch.setenv("YAML_WORKFLOW_STATE_URL", redis_server.url)
    monkeypatch.setenv("YAML_WORKFLOW_KEY_PREFIX", redis_server.prefix + "idem")
    reset_settings()
    workflow = load_workflow_file(_workflow(tmp_path))
    keys = IdempotencyKeys(redis_server.url)
    request = RunRequest(workflow=workflow, params={"tally": "x"})
    wd, pd = digests(workflow, resolve_params(workflow, {"tally": "x"}), request)
    dead = Binding(run_id="deadbeef00000000", workflow="once", workflow_digest=wd, params_digest=pd,
                   pending_until=time.time() - 1)
    assert keys.bind("k-dead", dead) == (True, None)
    # when a submit comes: it takes the key over (then fails to reach the broker, and lets go)
    with pytest.raises(Exception) as caught:
        submit_once(request, "k-dead")
    assert "broker" in str(caught.value)
    # then the dead binding is gone: the key was taken over, then released
    assert keys.get("k-dead") is None
    # and a binding still within its pending window is waited for, not taken over
    alive = Binding(run_id="cafe000000000000", workflow="once", workflow_digest=wd, params_digest=pd,
                    pending_until=time.time() + PENDING_FOR)
    assert keys.bind("k-alive", alive)[0]
    keys.replace("k-alive", alive, alive.created("/ws"))
    found = submit_once(request, "k-alive")
    assert (found.run_id, found.existing, found.workspace) == ("cafe000000000000", True, "/ws")


def test_a_key_must_be_printable_and_bounded() -> None:
    for bad in ("", "a\nb", "x" * 257):
        with pytest.raises(UsageError):
            check_key(bad)
    check_key("schedule:nightly:2026-11-29T10:05:00+00:00")


def test_submit_refuses_a_key_with_resume(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "submit", "--resume", "abc",
                           "--idempotency-key", "k"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--idempotency-key" in proc.stderr, proc.stderr
