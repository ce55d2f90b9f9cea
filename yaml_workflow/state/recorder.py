"""Records one run's transitions in its store and, when the store is not the file, in the mirror.

The mirror is written from the same transitions as the store.  A mirror write that fails
(disk full, read-only volume) is reported once and flagged in the run; it never fails a
step, and the previous file stays valid because snapshots are replaced atomically.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from ..exceptions import StateFileError
from .mirror import Mirror
from .store import Store

log = logging.getLogger("yaml_workflow.state")


class RunRecorder:
    """The one writer of a run's transitions in this process."""

    def __init__(self, store: Store, run_id: str, workspace: str | Path | None) -> None:
        self.store = store
        self.run_id = run_id
        self.mirror = None if store.is_mirror or workspace is None else Mirror(workspace)
        self._mirror_failed = False
        self._lock = threading.Lock()

    def start(self, header: dict[str, Any], *, snapshot: bool = True) -> None:
        """Create the run in the store and start its file (``snapshot`` False: the header
        goes to the journal only, for a caller that closes the recorder moments later and
        so compacts once instead of twice)."""
        self.store.create_run(header)
        if self.mirror is not None:
            self._to_mirror(self.mirror.write_header if snapshot else self.mirror.append, header)

    def record(self, event: dict[str, Any]) -> None:
        """Record one transition everywhere it belongs."""
        self.store.record(self.run_id, event)
        if self.mirror is not None:
            self._to_mirror(self.mirror.append, event)

    def _to_mirror(self, write: Any, event: dict[str, Any]) -> None:
        try:
            write(event)
        except (OSError, StateFileError) as err:  # a damaged file is refused, not overwritten
            with self._lock:
                first = not self._mirror_failed
                self._mirror_failed = True
            if first:
                log.warning("the JSON mirror of run %s could not be written: %s", self.run_id, err)
                self.store.record(
                    self.run_id,
                    {"t": "flag", "flag": "mirror_write_failed", "value": str(err)},
                )

    def close(self) -> None:
        """Flush the store and compact the mirror a last time."""
        self.store.flush(self.run_id)
        if self.mirror is not None:
            try:
                self.mirror.close()
            except (OSError, StateFileError) as err:
                log.warning("the JSON mirror of run %s could not be compacted: %s", self.run_id, err)
