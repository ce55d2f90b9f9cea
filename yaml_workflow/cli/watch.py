"""``status RUN --watch`` on a terminal: the live view of a run started elsewhere.

It draws what ``run`` draws (a bar for the run, a bar per running step that reports
progress, ETA, errors, retries) from the run's document, read again every second from
wherever the run lives (Redis or the workspace), until the run ends.  The figures come
from :func:`state.progress.run_progress`, so they are the ones `status` prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .output import format_step, short

RUNNING = ("running", "retrying")
FINISHED_STEP = ("completed", "skipped", "failed")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = int(round(value))
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


class StatusView:
    """Rich bars for snapshots of a run's status document."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
        )

        self.console = console or Console()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[info]}"), console=self.console, transient=False,
        )
        self.run_task: Any = None
        self.bars: dict[str, Any] = {}
        self.seen: dict[str, str] = {}  # step -> status already reported by a line

    def update(self, info: dict[str, Any]) -> None:
        """Show one snapshot (``status_document``)."""
        if self.run_task is None:
            self.console.print(f"run {info['run_id']}  workflow {info['workflow']}  "
                               f"workspace {info['workspace']}", highlight=False, markup=False)
            self.progress.start()
            self.run_task = self.progress.add_task("run", total=None, info="")
        p = info["progress"]
        stalled = [f"{row['step']} {row['stalled']}" for row in info["steps"] if row.get("stalled")]
        # A step whose worker stopped answering makes any ETA meaningless: say so instead.
        ahead = "; ".join(stalled) if stalled else f"ETA {_seconds(p.get('eta'))}"
        summary = (f"{info['status']}  elapsed {_seconds(p.get('elapsed'))}  {ahead}  "
                   f"errors {p['errors']}  retries {p['retries']}")
        self.progress.update(self.run_task, completed=p["done"], total=p["total"] or None, info=summary)
        self._lines(info["steps"])
        self._bars(info["steps"])

    def _lines(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            status = row["status"]
            if self.seen.get(row["step"]) == status or status not in (*FINISHED_STEP, "retrying"):
                continue
            self.seen[row["step"]] = status
            line: str | None
            if status == "retrying":
                line = f"  retry {row['step']} attempt {row.get('attempts')} failed: {short(row.get('error'))}"
            else:
                line = format_step({"step": row["step"], "status": status, "duration": row.get("duration") or 0,
                                    "error": row.get("error"), "reason": row.get("reason")})
            if line:
                self.progress.console.print(line, highlight=False, markup=False)

    def _bars(self, rows: list[dict[str, Any]]) -> None:
        live = set()
        for row in rows:
            info = row.get("progress")
            if row["status"] not in RUNNING or not isinstance(info, dict) or info.get("total") is None:
                continue
            name = row["step"]
            live.add(name)
            extra = "  ".join(f"{k} {info[k]}" for k in ("failed", "retries") if info.get(k))
            if name not in self.bars:
                self.bars[name] = self.progress.add_task(f"  {name}", total=info["total"], info=extra)
            self.progress.update(self.bars[name], completed=info.get("done") or 0, total=info["total"],
                                 info=extra)
        for name in [n for n in self.bars if n not in live]:
            self.progress.remove_task(self.bars.pop(name))

    def stop(self) -> None:
        """Leave the last picture on the screen."""
        self.progress.stop()


def watch(snapshot: Callable[[], dict[str, Any]], *, interval: float = 1.0, console: Any = None) -> dict[str, Any]:
    """Draw ``snapshot()`` every ``interval`` seconds until the run is no longer running."""
    view = StatusView(console)
    try:
        while True:
            info = snapshot()
            view.update(info)
            if info["status"] != "running":
                return info
            time.sleep(interval)
    finally:
        view.stop()
