"""Progress: the throttle, what is recorded, the run's figures and the terminal views."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from yaml_workflow.cli.live import LiveDisplay, make_observer
from yaml_workflow.cli.output import StepPrinter
from yaml_workflow.cli.watch import StatusView
from yaml_workflow.engine.load import load_workflow
from yaml_workflow.engine.request import RunRequest
from yaml_workflow.engine.step import _Progress
from yaml_workflow.executors.local_run import start_run
from yaml_workflow.spec.models import Step
from yaml_workflow.state.progress import run_progress

BATCH = """
name: prog
steps:
  - name: gen
    task: python_code
    inputs:
      code: "result = list(range(30))"
  - name: work
    task: batch
    progress_update: true
    progress_interval: 0.05
    inputs:
      items: "{{ steps.gen.result }}"
      chunk_size: 5
      max_workers: 2
      retry: {max_attempts: 2}
      task:
        task: python_code
        inputs:
          code: |
            import time
            time.sleep(0.005)
            if item % 10 == 3:
                raise ValueError("bad item")
            result = item
"""


class _Rc:
    """Just what _Progress uses of a RunContext."""

    def __init__(self, observer: Any) -> None:
        self.observer = observer
        self.recorded: list[dict[str, Any]] = []

    def record(self, event: dict[str, Any]) -> None:
        self.recorded.append(event)
        self.observer(event["t"], event)


def _step(interval: float, enabled: bool = True) -> Step:
    return Step.model_validate({"name": "s", "task": "noop", "progress_update": enabled,
                                "progress_interval": interval})


def test_reports_are_recorded_at_most_once_per_interval_and_always_at_the_end() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    rc = _Rc(lambda kind, event: seen.append((kind, event)))
    report = _Progress(rc, _step(60))  # type: ignore[arg-type]
    for done in range(1, 1001):
        report(done, 1000, "items", failed=done // 100)
    # the first report and the final one; nothing in between was due
    assert [e["progress"]["done"] for e in rc.recorded] == [1, 1000]
    final = rc.recorded[-1]["progress"]
    assert final == {"done": 1000, "total": 1000, "message": "items", "failed": 10, "percent": 100.0}
    # an observer that does not draw every report sees only the recorded ones
    assert len(seen) == 2 and all("t" in event for _, event in seen)


def test_a_live_display_sees_every_report_even_when_recording_is_off() -> None:
    class Live:
        wants_progress = True

        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, kind: str, event: dict[str, Any]) -> None:
            self.calls += 1

    live = Live()
    rc = _Rc(live)
    report = _Progress(rc, _step(5, enabled=False))  # type: ignore[arg-type]
    for done in range(1, 101):
        report(done, 100)
    assert live.calls == 100 and rc.recorded == []


def test_interval_is_respected_over_time() -> None:
    rc = _Rc(lambda kind, event: None)
    report = _Progress(rc, _step(0.05))  # type: ignore[arg-type]
    # Report until five were recorded (a condition, not a time budget: a loaded machine
    # only takes longer); the reports in between are dropped by the interval.
    start = time.monotonic()
    done = 0
    while len(rc.recorded) < 5:
        assert time.monotonic() - start < 30, "five reports were never recorded"
        done += 1
        report(done, None)
    elapsed = time.monotonic() - start
    stamps = [e["at"] for e in rc.recorded]
    assert all(b - a >= 0.045 for a, b in zip(stamps, stamps[1:], strict=False))
    assert len(stamps) <= 1 + elapsed / 0.05  # never more often than the interval
    assert done > len(stamps)  # the calls in between were not recorded


def test_a_local_batch_records_items_done_failed_and_retries(tmp_path: Path) -> None:
    wf = tmp_path / "prog.yaml"
    wf.write_text(BATCH)
    out = io.StringIO()
    result = start_run(RunRequest(workflow=load_workflow(wf), base_dir=tmp_path / "runs",
                                  observer=StepPrinter(stream=out)))
    assert result.ok, result.error
    doc = json.loads((Path(result.workspace) / ".workflow_metadata.json").read_text())
    progress = doc["execution_state"]["step_outputs"]["work"]["progress"]
    assert progress["done"] == progress["total"] == 30 and progress["percent"] == 100.0
    assert progress["failed"] == 3 and progress["retries"] == 3  # items 3, 13, 23, one retry each
    # the plain printer shows recorded reports, one line each
    lines = [line for line in out.getvalue().splitlines() if line.startswith("  ..    work")]
    assert lines and lines[-1].startswith("  ..    work 30/30 (100.0%) failed 3 retries 3")
    # and the run's figures are complete
    figures = run_progress(doc)
    assert (figures["done"], figures["total"], figures["percent"], figures["eta"]) == (2, 2, 100.0, None)


def test_run_eta_counts_a_running_step_at_its_own_rate() -> None:
    now = 1000.0
    doc = {
        "status": "running", "start_time": "1970-01-01T00:15:00+00:00",
        "plan": {"order": ["a", "b", "c", "d"]},
        "execution_state": {"retry_state": {}, "step_outputs": {
            "a": {"status": "completed", "duration": 2.0, "attempt": 2},
            "b": {"status": "running", "started_at": now - 10, "progress": {"done": 25, "total": 100}},
        }},
    }
    figures = run_progress(doc, now=now)
    # b: 10 s for a quarter, 30 s left; c and d: the mean step time so far (2 s) each
    assert figures["eta"] == pytest.approx(34.0)
    assert figures["done"] == 1 and figures["retries"] == 1 and figures["elapsed"] == 100.0


def _recording() -> Any:
    from rich.console import Console

    return Console(record=True, file=io.StringIO(), width=120)


def test_live_display_draws_the_run_and_the_batch() -> None:
    console = _recording()
    display = LiveDisplay(console=console)
    display("plan", {"order": ["gen", "work", "end"], "done": []})
    display("step", {"step": "gen", "status": "retrying", "attempt": 1, "max_attempts": 2,
                     "next_delay": 0.1, "error": "boom"})
    display("step", {"step": "gen", "status": "completed", "duration": 0.5})
    display("progress", {"step": "work", "progress": {"done": 6, "total": 10, "failed": 2, "retries": 1}})
    display.stop()
    text = console.export_text()
    assert "retry gen attempt 1/2" in text and "ok    gen" in text
    assert "run  errors 0  retries 1" in text and "1/3" in text
    assert "work  failed 2  retries 1" in text and "6/10" in text and "ETA" in text


def test_status_view_draws_a_snapshot() -> None:
    console = _recording()
    view = StatusView(console)
    rows = [{"step": "gen", "status": "completed", "duration": 1.0, "error": None, "reason": None,
             "attempts": 1, "progress": None},
            {"step": "work", "status": "running", "duration": None, "error": None, "reason": None,
             "attempts": 1, "progress": {"done": 4, "total": 8, "failed": 1}}]
    view.update({"run_id": "r1", "workflow": "wf", "workspace": "/w", "status": "running", "steps": rows,
                 "progress": {"done": 1, "total": 2, "elapsed": 5.0, "eta": 70.0, "errors": 0, "retries": 2}})
    view.stop()
    text = console.export_text()
    assert "run r1  workflow wf" in text and "ok    gen" in text
    assert "1/2" in text and "ETA 1m10s" in text and "retries 2" in text
    assert "work" in text and "4/8" in text and "failed 1" in text


def test_plain_output_when_not_a_terminal_or_quiet_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert isinstance(make_observer(quiet=False, fmt="text"), StepPrinter)
    assert isinstance(make_observer(quiet=True, fmt="text"), StepPrinter)
    assert isinstance(make_observer(quiet=False, fmt="json"), StepPrinter)


def test_a_custom_task_reports_through_its_context(tmp_path: Path) -> None:
    from yaml_workflow.tasks import register_task

    @register_task("progress_probe_task")
    def probe(config: Any) -> int:
        for done in range(1, 6):
            config.task_context.progress(done, 5, f"part {done}", stage="copy")
        return 5

    wf = tmp_path / "custom.yaml"
    wf.write_text("name: custom\nsteps:\n  - name: copy\n    task: progress_probe_task\n"
                  "    progress_update: true\n    progress_interval: 60\n")
    result = start_run(RunRequest(workflow=load_workflow(wf), base_dir=tmp_path / "runs"))
    assert result.ok, result.error
    doc = json.loads((Path(result.workspace) / ".workflow_metadata.json").read_text())
    record = doc["execution_state"]["step_outputs"]["copy"]
    assert record["progress"] == {"done": 5, "total": 5, "message": "part 5", "stage": "copy", "percent": 100.0}
    assert record["resources"]["cpu_seconds"] >= 0 and "process_max_rss_kb" in record["resources"]
