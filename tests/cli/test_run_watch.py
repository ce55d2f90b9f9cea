"""`run --watch` as a user runs it: a run per change, errors that wait, Ctrl+C that cancels."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workers import wait_for

ECHO = """\
name: edited
params:
  word: {type: string, default: %s}
steps:
  - name: say
    task: shell
    inputs: {command: 'echo "{{ args.word }} {{ workflow.trigger.type }}" > said.txt'}
"""

SLOW = """\
name: slow
steps:
  - name: wait
    task: shell
    inputs: {command: 'echo $$ > %s; exec sleep 60'}
  - name: after
    task: echo
    inputs: {message: after}
"""


class Watch:
    """A `yaml-workflow run --watch` process; its stderr is read from a file as it grows."""

    def __init__(self, tmp: Path, workflow: Path, *flags: str) -> None:
        self.err_path = tmp / "watch.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "yaml_workflow", "run", str(workflow), "--watch",
             "--base-dir", str(tmp / "runs"), *flags],
            stdout=open(tmp / "watch.out", "wb"), stderr=open(self.err_path, "wb"),  # noqa: SIM115
            stdin=subprocess.DEVNULL, cwd=str(tmp))
        self.runs = tmp / "runs"

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_line(self, pattern: str, timeout: float = 30) -> str:
        """Until stderr has a line matching ``pattern`` (the watcher must still be alive)."""
        def found() -> str | None:
            assert self.proc.poll() is None or re.search(pattern, self.err), self.err
            match = re.search(pattern, self.err)
            return match.group(0) if match else None
        return str(wait_for(found, timeout, f"/{pattern}/ in: {self.err[-1500:]}"))

    def states(self) -> list[dict]:
        """The state file of every run so far, by run number."""
        files = sorted(self.runs.glob("*_run_*/.workflow_metadata.json"),
                       key=lambda p: int(p.parent.name.rsplit("_", 1)[1]))
        return [json.loads(p.read_text()) for p in files]

    def stop(self) -> int:
        """Ctrl+C, and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


@pytest.fixture()
def watches() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for watch in started:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait(10)


def test_two_saves_within_the_debounce_window_make_one_rerun(tmp_path: Path, watches: list[Watch]) -> None:
    # given a watched workflow that ran once at start
    wf = tmp_path / "wf.yaml"
    wf.write_text(ECHO % "first")
    watch = Watch(tmp_path, wf)
    watches.append(watch)
    watch.wait_line(r"run 1 ended \(completed\)")
    # when it is saved twice, 0.1 s apart
    wf.write_text(ECHO % "second")
    time.sleep(0.1)
    wf.write_text(ECHO % "again")
    watch.wait_line(r"run 2 ended \(completed\)")
    # and then once more, with a word that tells its run apart
    wf.write_text(ECHO % "third")
    watch.wait_line(r"run \d+ ended \(completed\)(?![\s\S]*run 2 ended)")
    wait_for(lambda: any(s["params"]["word"] == "third" and s["status"] == "completed"
                         for s in watch.states()), 30, "the run of the third save")
    # then the two quick saves were one re-run: the third save's run is run 3
    states = watch.states()
    assert [s["params"]["word"] for s in states] == ["first", "again", "third"], watch.err
    assert all(s["trigger"] == {"type": "watch", "name": None, "tick": None} for s in states)
    said = (Path(states[2]["workspace"]) / "said.txt").read_text()
    assert said.strip() == "third watch"
    assert "run 2 of wf.yaml (wf.yaml changed)" in watch.err
    assert watch.stop() == 0


def test_a_broken_save_prints_the_error_and_waits_then_a_fix_runs(tmp_path: Path, watches: list[Watch]) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(ECHO % "good")
    watch = Watch(tmp_path, wf)
    watches.append(watch)
    watch.wait_line(r"run 1 ended \(completed\)")
    # when a save makes the file invalid (an unknown key on line 4)
    wf.write_text(ECHO.replace("steps:", "stepz:") % "bad")
    line = watch.wait_line(r"error: .*\n")
    # then one line naming file and line, and the watcher waits
    assert "wf.yaml:4" in line and "stepz" in line, line
    watch.wait_line("waiting for the next change")
    assert watch.proc.poll() is None
    assert len(watch.states()) == 1
    # when it is fixed, it runs again
    wf.write_text(ECHO % "fixed")
    watch.wait_line(r"run 2 ended \(completed\)")
    assert [s["params"]["word"] for s in watch.states()] == ["good", "fixed"]
    assert "Traceback" not in watch.err
    assert watch.stop() == 0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_during_a_run_cancels_it_and_stops_cleanly(tmp_path: Path, watches: list[Watch]) -> None:
    # given a watched run in the middle of a long step
    pid_file = tmp_path / "step.pid"
    wf = tmp_path / "wf.yaml"
    wf.write_text(SLOW % pid_file)
    watch = Watch(tmp_path, wf)
    watches.append(watch)
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "the step to start")
    step_pid = int(pid_file.read_text())
    # when Ctrl+C
    code = watch.stop()
    # then it exits 0, the run is recorded cancelled, the step's process is gone
    assert code == 0, watch.err
    assert "cancelled" in watch.err and watch.err.rstrip().endswith("watch: stopped"), watch.err
    assert "Traceback" not in watch.err
    (state,) = watch.states()
    assert state["status"] == "cancelled"
    assert state["execution_state"]["step_outputs"].get("after") is None
    wait_for(lambda: _gone(step_pid), 10, "the step's process to be killed")


def test_a_change_during_a_run_waits_for_it_or_restarts_it(tmp_path: Path, watches: list[Watch]) -> None:
    # given --watch-restart and a run in its long step
    pid_file = tmp_path / "step.pid"
    wf = tmp_path / "wf.yaml"
    wf.write_text(SLOW % pid_file)
    watch = Watch(tmp_path, wf, "--watch-restart")
    watches.append(watch)
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "the step to start")
    first_pid = int(pid_file.read_text())
    pid_file.unlink()
    # when the file changes: the run is cancelled and a new one starts
    wf.write_text(SLOW % pid_file + "# edited\n")
    watch.wait_line(r"run 1 cancelled")
    watch.wait_line(r"run 2 of wf.yaml")
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "run 2's step to start")
    assert _gone(first_pid)
    assert [s["status"] for s in watch.states()][0] == "cancelled"
    assert watch.stop() == 0


def test_without_restart_a_change_during_a_run_lets_it_finish(tmp_path: Path, watches: list[Watch]) -> None:
    gate = tmp_path / "gate"
    wf = tmp_path / "wf.yaml"
    body = ("name: gated\nsteps:\n  - name: wait\n    task: shell\n"
            f"    inputs: {{command: 'while [ ! -e {gate} ]; do sleep 0.05; done'}}\n")
    wf.write_text(body)
    watch = Watch(tmp_path, wf)
    watches.append(watch)
    wait_for(lambda: watch.states() and watch.states()[0]["status"] == "running", 30, "run 1 to start")
    wf.write_text(body + "# edited\n")
    watch.wait_line("running again when run 1 ends")
    gate.touch()  # run 1 may finish now
    watch.wait_line(r"run 2 ended \(completed\)")
    assert [s["status"] for s in watch.states()] == ["completed", "completed"]
    assert watch.stop() == 0


def test_watch_flags_are_checked(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(ECHO % "x")
    for flags, message in ((["--watch-restart"], "--watch-restart needs --watch"),
                           (["--watch", "--dry-run"], "--dry-run"),
                           (["--watch", "--resume"], "--resume")):
        proc = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", str(wf), *flags],
                              capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    missing = subprocess.run([sys.executable, "-m", "yaml_workflow", "run", "nope.yaml", "--watch"],
                             capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_a_change_in_an_imported_file_runs_again(tmp_path: Path, watches: list[Watch]) -> None:
    # given a workflow that imports a file from another folder
    (tmp_path / "lib").mkdir()
    lib = tmp_path / "lib" / "common.yaml"
    lib.write_text("params:\n  word: {type: string, default: one}\nsteps:\n  - {name: first, task: noop}\n")
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: main\nimports: [lib/common.yaml]\nsteps:\n  - name: say\n    task: echo\n"
                  "    inputs: {message: '{{ args.word }}'}\n")
    watch = Watch(tmp_path, wf)
    watches.append(watch)
    watch.wait_line(r"run 1 ended \(completed\)")
    # when only the imported file changes
    lib.write_text(lib.read_text().replace("default: one", "default: two"))
    # then the workflow runs again, with the imported default
    watch.wait_line(r"run 2 of wf.yaml \(common.yaml changed\)")
    watch.wait_line(r"run 2 ended \(completed\)")
    assert [s["params"]["word"] for s in watch.states()] == ["one", "two"]
    assert watch.stop() == 0
