"""The JSON mirror of a run in its workspace: a journal plus a compacted snapshot.

Each transition is appended as one JSON line to this process's journal
(``.ywf/journal/<host>-<pid>-<token>.jsonl``) with a single unbuffered ``write``: once
the call returns, a kill -9 cannot lose it.  ``.workflow_metadata.json`` is rewritten
from snapshot + journals at least once a second while transitions arrive and whenever
the run stops, atomically (temp file, rename) under a lock, and it records up to where
it has read each journal.  A reader merges the snapshot with the journal lines past
those offsets, so it always sees every recorded transition and never half a file.

Compaction reads only the journal bytes written since the last one and rewrites the
document once, so keeping the file current costs the same per step at 10 or 10,000
steps.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from ..exceptions import StateFileError
from ..settings import get_settings
from .document import HOST, apply, document_problem, event_problem, new_document

STATE_FILE = ".workflow_metadata.json"
JOURNAL_DIR = Path(".ywf") / "journal"
LOCK_FILE = Path(".ywf") / "compact.lock"
COMPACT_INTERVAL = 1.0  # seconds; the file is never older than this while steps run
MIRROR_KEY = "mirror"  # where the snapshot keeps its journal offsets



def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def state_path(workspace: str | os.PathLike[str]) -> Path:
    """Where the JSON state file of a workspace lives."""
    return Path(workspace) / STATE_FILE


def _read_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateFileError(str(path), f"cannot be read: {err.strerror}") from None
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise StateFileError(str(path), "nests too deeply to be a state file; it is corrupted") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise StateFileError(str(path), f"is not valid JSON ({err}); it may be truncated or corrupted") from None
    _check_document(doc, path)
    return doc  # type: ignore[no-any-return]


def _check_document(doc: Any, path: Path) -> None:
    problem = document_problem(doc, mirror_key=MIRROR_KEY)
    if problem:
        raise StateFileError(str(path), problem)


def _journal_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete lines of a journal past ``offset``, and the offset after the last one."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset  # nothing complete yet (or a torn line from a killed writer)
    events = []
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            # A line torn by a crash in the middle is followed by nothing of its writer
            # (each process writes its own journal), so skipping it loses nothing recorded.
            continue
        if event_problem(event) is None:  # a damaged line is skipped like a torn one
            events.append(event)
    return events, offset + end + 1


def _pending(
    workspace: Path, offsets: dict[str, int], *, header_first: bool = False
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Journal events not yet in the snapshot, in time order, and the new offsets."""
    folder = workspace / JOURNAL_DIR
    events: list[tuple[float, int, dict[str, Any]]] = []
    new_offsets = dict(offsets)
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return [], new_offsets
    seq = 0
    for name in names:
        if not name.endswith(".jsonl"):
            continue
        lines, end = _journal_lines(folder / name, offsets.get(name, 0))
        new_offsets[name] = end
        # A journal's own order is the truth: an event without a time, or with a clock
        # that stepped back, sorts as of the latest time seen before it in its journal.
        clock = 0.0
        for event in lines:
            at = event.get("at")
            if isinstance(at, (int, float)) and at > clock:
                clock = float(at)
            events.append((clock, seq, event))
            seq += 1
    # Journals of different workers interleave by time.
    events.sort(key=lambda item: (item[0], item[1]))
    ordered = [e for _, _, e in events]
    if header_first:
        # With no snapshot yet, the run's header goes first even if another host's clock
        # runs behind; a later ``run`` transition (a restart) keeps its place in time.
        for i, event in enumerate(ordered):
            if event.get("t") == "run":
                ordered.insert(0, ordered.pop(i))
                break
    return ordered, new_offsets


def read_state(workspace: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's document: snapshot merged with journal lines past its offsets."""
    workspace = Path(workspace)
    path = state_path(workspace)
    doc = _read_snapshot(path)
    offsets = dict((doc or {}).get(MIRROR_KEY, {}).get("offsets", {}))
    events, _ = _pending(workspace, offsets, header_first=doc is None)
    if doc is None:
        if not events:
            raise StateFileError(str(path), "does not exist; this is not a run workspace")
        doc = {}
    for event in events:
        if doc or event.get("t") == "run":
            apply(doc, event)
    if not doc:
        raise StateFileError(str(path), "has no run header; the run never started")
    doc.pop(MIRROR_KEY, None)
    if events:  # the snapshot alone was checked when it was read
        problem = document_problem(doc)
        if problem:
            raise StateFileError(str(path), f"{problem} (with the journal in {JOURNAL_DIR} merged)")
    return doc


# Indented JSON is for people; past this many steps the file is for tools, and Python's
# indenting encoder (pure Python) would make each rewrite about 5x slower.
INDENT_UP_TO_STEPS = 500


def render_document(doc: dict[str, Any]) -> str:
    """The state file's text: indented for readable runs, compact for very large ones."""
    steps = len(doc.get("execution_state", {}).get("step_outputs", {}))
    if steps <= INDENT_UP_TO_STEPS:
        return json.dumps(doc, indent=2, ensure_ascii=False, default=str)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if get_settings().fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


class Mirror:
    """Appends transitions to this process's journal and compacts the workspace's file."""

    def __init__(self, workspace: str | os.PathLike[str]) -> None:
        self.workspace = Path(workspace)
        self.journal_name = f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._dirty = False
        # Counted from creation: the header is compacted on purpose, the rest within a second.
        self._last_compact = time.monotonic()
        # The snapshot as we last wrote it, so compaction need not re-read it when no
        # other process has written it since (the local case).
        self._doc: dict[str, Any] | None = None
        self._doc_stat: tuple[int, int] | None = None
        self.closed = False

    # --- writing ---------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            folder = self.workspace / JOURNAL_DIR
            folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(folder / self.journal_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self._fd

    def append(self, event: dict[str, Any]) -> None:
        """Record one transition: one line, one write() call; compact if a second passed."""
        line = (_dumps(event) + "\n").encode("utf-8")
        with self._lock:
            fd = self._open()
            written = os.write(fd, line)
            if written != len(line):  # a short write means the disk is full
                raise OSError(28, "short write to the journal (disk full?)")
            if get_settings().fsync:
                os.fsync(fd)
            self._dirty = True
        if time.monotonic() - self._last_compact >= COMPACT_INTERVAL:
            self.compact()
        else:
            _FLUSHER.watch(self)

    # --- compaction ------------------------------------------------------------------

    def compact(self, *, force: bool = False) -> None:
        """Rewrite the state file from snapshot + journals (skipped when nothing is new)."""
        with self._lock:
            if not (self._dirty or force):
                return
            self._dirty = False
            self._last_compact = time.monotonic()
            lock_path = self.workspace / LOCK_FILE
            if self._fd is None:  # an open journal means .ywf exists already
                lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "a+") as lock_fh:
                fcntl.flock(lock_fh, fcntl.LOCK_EX)
                try:
                    self._compact_locked()
                finally:
                    fcntl.flock(lock_fh, fcntl.LOCK_UN)

    def _compact_locked(self) -> None:
        path = state_path(self.workspace)
        doc = self._cached_snapshot(path)
        offsets = dict((doc or {}).get(MIRROR_KEY, {}).get("offsets", {}))
        events, new_offsets = _pending(self.workspace, offsets, header_first=doc is None)
        if not events and doc is not None and new_offsets == offsets:
            return
        if doc is None:
            doc = {}
        for event in events:
            if doc or event.get("t") == "run":
                apply(doc, event)
        if not doc:
            return
        doc[MIRROR_KEY] = {"offsets": new_offsets, "compacted_at": time.time()}
        write_atomically(path, render_document(doc))
        stat = os.stat(path)
        self._doc, self._doc_stat = doc, (stat.st_ino, stat.st_mtime_ns)

    def _cached_snapshot(self, path: Path) -> dict[str, Any] | None:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return None
        if self._doc is not None and self._doc_stat == (stat.st_ino, stat.st_mtime_ns):
            return self._doc
        return _read_snapshot(path)

    def write_header(self, header: dict[str, Any]) -> None:
        """Start the file: the run transition goes to the journal and straight into a snapshot."""
        self.append(header)
        self.compact(force=True)

    def close(self) -> None:
        """Compact a last time and close the journal."""
        if self.closed:
            return
        try:
            self.compact(force=True)
        finally:  # a failed compaction still closes the journal (its lines stay readable)
            with self._lock:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self.closed = True
            _FLUSHER.forget(self)


class _Flusher:
    """One daemon thread per process that compacts dirty mirrors about once a second."""

    def __init__(self) -> None:
        self._mirrors: weakref.WeakSet[Mirror] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def watch(self, mirror: Mirror) -> None:
        if mirror in self._mirrors and self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread is not ours
                self._thread, self._pid = None, os.getpid()
            self._mirrors.add(mirror)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ywf-mirror", daemon=True)
                self._thread.start()

    def forget(self, mirror: Mirror) -> None:
        self._mirrors.discard(mirror)

    def _loop(self) -> None:
        while True:
            time.sleep(COMPACT_INTERVAL / 4)  # a quiet run is compacted within 1.25 s
            for mirror in list(self._mirrors):
                if mirror.closed:
                    self._mirrors.discard(mirror)
                    continue
                if time.monotonic() - mirror._last_compact >= COMPACT_INTERVAL:
                    try:
                        mirror.compact()
                    except Exception:  # noqa: BLE001 - a mirror failure never stops the run
                        mirror._dirty = True


_FLUSHER = _Flusher()


def fresh_snapshot(header: dict[str, Any]) -> dict[str, Any]:
    """A document for a header, as the first snapshot of a run holds it."""
    return new_document(header)
