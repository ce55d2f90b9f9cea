"""`workspace list|clean|remove` and the cleanup library they share with `clean`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yaml_workflow.cli.main import run_cli
from yaml_workflow.exceptions import UsageError
from yaml_workflow.state.cleanup import RunEntry, parse_age, scan_workspaces, select
from yaml_workflow.state.document import HOST, now_iso
from yaml_workflow.state.mirror import STATE_FILE
from yaml_workflow.state.stores.json_file import LEASE_FILE

DAY = 86400.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43200), ("30d", 30 * DAY), ("2w", 14 * DAY),
     ("1.5h", 5400), ("7", 7 * DAY), (" 3D ", 3 * DAY), ("0", 0), (2, 2 * DAY)],
)
def test_parse_age(text: str | int, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-3d", "3y", "d", "1d2h"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="cannot read the age"):
        parse_age(text)


# --- workspaces made by real runs ------------------------------------------------------


def make_run(tmp_path: Path, base: Path, name: str = "demo", fail: bool = False) -> Path:
    """Run a one-step workflow into ``base`` and return its workspace."""
    wf = tmp_path / f"{name}.yaml"
    task = "fail" if fail else "echo"
    wf.write_text(f"name: {name}\nsteps:\n  - name: only\n    task: {task}\n")
    before = set(base.iterdir()) if base.exists() else set()
    assert run_cli(["run", str(wf), "--base-dir", str(base), "-q"]) == (1 if fail else 0)
    (workspace,) = set(base.iterdir()) - before
    return workspace


def edit_state(workspace: Path, **fields: object) -> None:
    """Change top-level fields of a (compacted) state file."""
    path = workspace / STATE_FILE
    doc = json.loads(path.read_text())
    doc.update(fields)
    if "status" in fields:
        doc["execution_state"]["status"] = fields["status"]
    path.write_text(json.dumps(doc))


def age(workspace: Path, days: float) -> None:
    """Make a run look last updated ``days`` ago."""
    edit_state(workspace, last_updated=now_iso(time.time() - days * DAY))


def hold_lease(workspace: Path, pid: int, expires_in: float = 60.0) -> None:
    """Write a lease file as a running process would."""
    path = workspace / LEASE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"token": "t", "host": HOST, "pid": pid,
                                "expires_at": time.time() + expires_in}))


def dead_pid() -> int:
    """The pid of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.fixture()
def runs(tmp_path: Path) -> dict[str, Path]:
    """A base dir with old and new completed runs, an old failed one, a live and an
    interrupted run (both `running` and old)."""
    base = tmp_path / "runs"
    found = {
        "old_ok": make_run(tmp_path, base),
        "new_ok": make_run(tmp_path, base),
        "old_failed": make_run(tmp_path, base, "broke", fail=True),
        "live": make_run(tmp_path, base, "busy"),
        "interrupted": make_run(tmp_path, base, "killed"),
    }
    for key in ("old_ok", "old_failed", "live", "interrupted"):
        age(found[key], 40)
    for key in ("live", "interrupted"):
        edit_state(found[key], status="running")
    hold_lease(found["live"], os.getpid())
    hold_lease(found["interrupted"], dead_pid())
    return found


def test_list_shows_every_workspace(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = runs["old_ok"].parent
    assert run_cli(["workspace", "list", "--base-dir", str(base)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["WORKSPACE", "RUN", "ID", "STATUS", "UPDATED", "SIZE"]
    by_name = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(by_name) == {p.name for p in runs.values()}
    assert by_name["demo_run_1"][2] == "completed"
    assert by_name["broke_run_1"][2] == "failed"
    assert by_name["busy_run_1"][2] == "running"
    assert by_name["killed_run_1"][2] == "interrupted"
    run_id = json.loads((runs["new_ok"] / STATE_FILE).read_text())["workflow_id"]
    assert by_name["demo_run_2"][1] == run_id

    assert run_cli(["workspace", "list", "--base-dir", str(base), "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["busy_run_1"]["live"] is True and rows["killed_run_1"]["live"] is False
    assert rows["demo_run_1"]["size"] > 0


def test_list_empty_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["workspace", "list", "--base-dir", str(tmp_path / "none")]) == 0
    assert "no workspaces under" in capsys.readouterr().out


def test_list_marks_unreadable_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace = make_run(tmp_path, tmp_path / "runs")
    (workspace / STATE_FILE).write_text("{ torn")
    assert run_cli(["workspace", "list", "--base-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr()
    assert "unknown" in out.out and "not valid JSON" in out.err


def test_clean_removes_old_finished_runs_only(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = runs["old_ok"].parent
    assert run_cli(["workspace", "clean", "--base-dir", str(base), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and "(dry run: nothing removed)" in out
    assert all(p.exists() for p in runs.values())

    assert run_cli(["workspace", "clean", "--base-dir", str(base)]) == 0
    out = capsys.readouterr().out
    assert "removed 2 workspace(s)" in out
    gone = {k for k, p in runs.items() if not p.exists()}
    assert gone == {"old_ok", "old_failed"}


def test_clean_running_needs_status_and_never_takes_a_live_run(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = runs["old_ok"].parent
    assert run_cli(["workspace", "clean", "--base-dir", str(base), "--status", "running"]) == 0
    out = capsys.readouterr().out
    assert f"kept {runs['live']}: still running" in out
    assert not runs["interrupted"].exists() and runs["live"].exists()
    assert runs["old_ok"].exists()  # --status narrows to running runs


def test_clean_status_and_age_filters(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = runs["old_ok"].parent
    assert run_cli(["workspace", "clean", "--base-dir", str(base), "--status", "failed"]) == 0
    assert not runs["old_failed"].exists() and runs["old_ok"].exists()
    assert run_cli(["workspace", "clean", "--base-dir", str(base), "--older-than", "50d"]) == 0
    assert runs["old_ok"].exists()
    assert run_cli(["workspace", "clean", "--base-dir", str(base), "--older-than", "0s",
                    "--status", "completed,failed"]) == 0
    assert not runs["old_ok"].exists() and not runs["new_ok"].exists()
    assert runs["live"].exists() and runs["interrupted"].exists()


@pytest.mark.parametrize("argv", [["--older-than", "soon"], ["--status", "done"]])
def test_clean_refuses_bad_flags(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    base = runs["old_ok"].parent
    assert run_cli(["workspace", "clean", "--base-dir", str(base), *argv]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert all(p.exists() for p in runs.values())


def test_clean_missing_base_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["workspace", "clean", "--base-dir", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_remove_by_name_path_and_run_id(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = runs["old_ok"].parent
    run_id = json.loads((runs["new_ok"] / STATE_FILE).read_text())["workflow_id"]
    argv = ["workspace", "remove", "--base-dir", str(base), "demo_run_1", run_id, str(runs["old_failed"])]
    assert run_cli(argv) == 0
    assert not runs["old_ok"].exists() and not runs["new_ok"].exists()
    assert not runs["old_failed"].exists()
    assert capsys.readouterr().out.count("removed ") == 3


def test_remove_unknown_name_removes_nothing(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = runs["old_ok"].parent
    assert run_cli(["workspace", "remove", "--base-dir", str(base), "demo_run_1", "ghost"]) == 2
    assert "no workspace 'ghost'" in capsys.readouterr().err
    assert runs["old_ok"].exists()


def test_remove_live_and_interrupted(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = runs["old_ok"].parent
    assert run_cli(["workspace", "remove", "--base-dir", str(base), "busy_run_1", "--force"]) == 2
    assert "still running" in capsys.readouterr().err and runs["live"].exists()
    assert run_cli(["workspace", "remove", "--base-dir", str(base), "killed_run_1"]) == 2
    assert "--force" in capsys.readouterr().err and runs["interrupted"].exists()
    assert run_cli(["workspace", "remove", "--base-dir", str(base), "killed_run_1", "--force"]) == 0
    assert not runs["interrupted"].exists()


def test_select_is_pure() -> None:
    now = 1_000_000.0

    def entry(name: str, status: str, days: float, live: bool = False, run_id: str = "") -> RunEntry:
        return RunEntry(Path(name), run_id or name, "wf", status, now - days * DAY, 1, live)

    entries = [entry("a", "completed", 40), entry("b", "completed", 1), entry("c", "cancelled", 40),
               entry("d", "running", 40, live=True), entry("e", "unknown", 40), entry("f", "failed", 40, run_id="x")]
    chosen = select(entries, older_than=30 * DAY, now=now)
    assert [e.name for e in chosen.remove] == ["a", "c", "f"] and chosen.kept == []
    chosen = select(entries, older_than=30 * DAY, statuses=["running"], now=now)
    assert [e.name for e in chosen.remove] == [] and [e.name for e, _ in chosen.kept] == ["d"]
    # A workspace whose state cannot be read is no run by our record: never selectable.
    with pytest.raises(UsageError, match="state cannot be read"):
        select(entries, statuses=["running", "unknown"], now=now)
    assert [e.name for e in select(entries, run_ids=["x"], now=now).remove] == ["f"]


def test_scan_ignores_plain_folders(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    make_run(tmp_path, tmp_path / "runs")
    (tmp_path / "runs" / "stray").mkdir()
    assert [e.name for e in scan_workspaces(tmp_path / "runs")] == ["demo_run_1"]


def test_subprocess_workspace_list(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    make_run(tmp_path, base)
    done = subprocess.run([sys.executable, "-m", "yaml_workflow", "workspace", "list", "--base-dir", str(base)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "demo_run_1" in done.stdout and "completed" in done.stdout
    done = subprocess.run([sys.executable, "-m", "yaml_workflow", "workspace"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
