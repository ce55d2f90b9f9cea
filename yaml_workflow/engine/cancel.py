"""The cancel marker: how `cancel` tells a run in progress, without reading the store.

`cancel` records the ``cancelled`` status in the store (which every executor checks
before a step starts) and also leaves this marker in the workspace: a local run looks
for it with one ``stat`` before each step, so noticing a cancel costs it nothing.
"""

from __future__ import annotations

from pathlib import Path

CANCEL_MARKER = Path(".ywf") / "cancel"


def request_cancel(workspace: Path) -> None:
    """Leave the marker in the run's workspace."""
    marker = workspace / CANCEL_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def cancel_requested(workspace: Path) -> bool:
    """True once `cancel` has been asked for this workspace's run (one stat call)."""
    return (workspace / CANCEL_MARKER).exists()


def clear_cancel(workspace: Path) -> None:
    """A resumed (or repaired) run is no longer cancelled."""
    (workspace / CANCEL_MARKER).unlink(missing_ok=True)
