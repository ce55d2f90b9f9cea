"""The live terminal display of a run: a bar for the run, a bar per running batch, ETA,
retries and errors (rich).  Used when stderr is a terminal; otherwise, and with
``--quiet`` or ``--format json``, the plain one-line-per-event printer is used.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from .output import StepPrinter, format_step


def make_observer(*, quiet: bool, fmt: str) -> Any:
    """The observer a command should use for its situation."""
    if not quiet and fmt == "text" and sys.stderr.isatty():
        try:
            return LiveDisplay()
        except ImportError:  # rich is an optional extra
            pass
    return StepPrinter(quiet=quiet)


class LiveDisplay:
    """An executor observer drawing rich progress bars on stderr."""

    # Draws every progress report (the engine skips the per-item call for observers
    # without this flag: a plain printer has nothing to do with them).
    wants_progress = True

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        display = self

        class EtaColumn(ProgressColumn):
            """The run's ETA from step durations (as `status` computes it); a bar's own
            ETA from its rate."""

            def render(self, task: Any) -> Text:
                if task.id == display.run_task and display.stalled:
                    return Text(display.stalled, style="progress.remaining")
                eta = display.run_eta() if task.id == display.run_task else task.time_remaining
                return Text(f"ETA {_clock(eta)}", style="progress.remaining")

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TimeElapsedColumn(), EtaColumn(),
            console=self.console, transient=False,
        )
        self.durations: list[float] = []
        self.run_task = self.progress.add_task("run", total=None)
        self.batch_tasks: dict[str, Any] = {}
        self.errors = 0
        self.retries = 0
        self.finished: set[str] = set()  # a late progress report must not bring a bar back
        self._lock = threading.Lock()
        self._started = False
        self.stalled = ""  # "step: stalled (worker ...)" while a step's worker is silent

    def run_eta(self) -> float | None:
        """Seconds left: the running bars' own estimate plus the mean step time for each
        step not started yet (None before anything can be said)."""
        tasks = {t.id: t for t in self.progress.tasks}
        run = tasks[self.run_task]
        if run.total is None:
            return None
        remaining = run.total - run.completed
        if remaining <= 0:
            return 0.0
        bars = [tasks[t].time_remaining for t in self.batch_tasks.values() if t in tasks]
        known = [b for b in bars if b is not None]
        if not self.durations:
            return max(known) if known else None
        mean = sum(self.durations) / len(self.durations)
        return (max(known) if known else 0.0) + mean * max(0, remaining - len(bars))

    def _describe(self) -> str:
        return f"run  errors {self.errors}  retries {self.retries}"

    def __call__(self, kind: str, event: dict[str, Any]) -> None:
        with self._lock:
            if not self._started:
                self.progress.start()
                self._started = True
            if kind == "plan":
                self.progress.update(self.run_task, total=len(event["order"]),
                                     completed=len(event.get("done") or []))
            elif kind == "step":
                self._on_step(event)
            elif kind == "progress":
                self._on_progress(event)
            elif kind == "stalled":
                self.stalled = event.get("text") or ""
            elif kind == "notice":
                self.progress.console.print(f"warning: {event['text']}", highlight=False, markup=False)
            elif kind == "status" and event.get("status") != "running":
                self.stop()

    def _on_step(self, event: dict[str, Any]) -> None:
        status, name = event.get("status"), str(event.get("step"))
        if status == "retrying":
            self.retries += 1
        if status == "failed":
            self.errors += 1
        if status in ("completed", "skipped", "failed"):
            self.finished.add(name)
            if isinstance(event.get("duration"), (int, float)):
                self.durations.append(float(event["duration"]))
            self.progress.advance(self.run_task)
            task = self.batch_tasks.pop(name, None)
            if task is not None:
                self.progress.remove_task(task)
        self.progress.update(self.run_task, description=self._describe())
        line = format_step(event)
        if line:
            self.progress.console.print(line, highlight=False, markup=False)

    def _on_progress(self, event: dict[str, Any]) -> None:
        name = str(event["step"])
        if name in self.finished:
            return
        info = event.get("progress") or {}
        task = self.batch_tasks.get(name)
        if task is None:
            task = self.progress.add_task(f"  {name}", total=info.get("total"))
            self.batch_tasks[name] = task
        failed, retries = info.get("failed"), info.get("retries")
        description = (f"  {name}" + (f"  failed {failed}" if failed else "")
                       + (f"  retries {retries}" if retries else ""))
        self.progress.update(task, completed=info.get("done") or 0, total=info.get("total"),
                             description=description)

    def stop(self) -> None:
        """Leave the bars as they are and stop refreshing."""
        if self._started:
            self.progress.stop()
            self._started = False

    def __enter__(self) -> LiveDisplay:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
