"""Per-step log files in the workspace: ``logs/<step>.log``, one block per attempt.

`yaml-workflow logs RUN --step S` reads them back; on the fleet the worker that ran the
step writes them into the shared workspace, so a step's log is found wherever it ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..state.document import now_iso

LOG_DIR = "logs"


def log_path(workspace: str | Path, step: str) -> Path:
    """Where a step's log lives."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in step)
    return Path(workspace) / LOG_DIR / f"{safe}.log"


def append_step_log(workspace: str | Path, event: dict[str, Any]) -> None:
    """Append what an attempt came to; subprocess output is kept whole."""
    lines = [f"[{now_iso(event.get('at'))}] step {event['step']} attempt {event.get('attempt', 1)}: "
             f"{event['status']}" + (f" in {event['duration']:.3f}s" if "duration" in event else "")]
    if event.get("error"):
        lines.append(f"error: {event['error']}")
    if event.get("error_message") and event.get("error_message") != event.get("error"):
        lines.append(f"message: {event['error_message']}")
    result = event.get("result")
    if isinstance(result, dict):
        for stream in ("stdout", "stderr"):
            text = result.get(stream)
            if text:
                lines.append(f"--- {stream}")
                lines.append(str(text).rstrip("\n"))
    path = log_path(workspace, event["step"])
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    except OSError:
        pass  # a log that cannot be written never fails the step; the state has the facts
