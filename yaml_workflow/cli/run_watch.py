"""``yaml-workflow run --watch``: run a workflow, then again each time its files change.

The files are the workflow and everything it imports (found again after each change).
The operating system reports changes (watchfiles: inotify, FSEvents, ...); a thread
turns its reports into *changes*: saves less than :data:`QUIET` seconds apart are one
change, reported :data:`QUIET` seconds after the last save.

Each run is a ``yaml-workflow run`` child process recording ``trigger: {type: watch}``,
printing to this terminal as a plain ``run`` would.  A child of its own session: Ctrl+C
reaches this process only, which then stops the run the way ``cancel`` does (SIGTERM:
the run cancels itself, kills its steps' processes and records ``cancelled``) and exits.
A change during a run waits for its end (or, with ``--watch-restart``, cancels it); a
change that makes the workflow invalid prints the one-line error and waits for the next.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import client
from ..exceptions import EXIT_OK, UsageError, WorkflowError
from ..spec.loader import workflow_files

QUIET = 0.5  # seconds without a save that end one change
STOP_GRACE = 30.0  # seconds a cancelled run has to record its end before it is killed
# Flags of `run` handed to each run as given.
_PASSED = (("--workspace", "workspace"), ("--base-dir", "base_dir"), ("--flow", "flow"),
           ("--start-from", "start_from"), ("--skip-steps", "skip_steps"), ("--format", "format"),
           ("--output", "output"))


def say(message: str) -> None:
    """One line of the watcher's own on stderr (stdout stays the runs' output)."""
    print(f"watch: {message}", file=sys.stderr, flush=True)


class ChangeWatcher:
    """A thread that puts one set of changed paths on :attr:`changes` per change."""

    def __init__(self) -> None:
        self.changes: queue.Queue[set[str]] = queue.Queue()
        self.files: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dirs: set[str] = set()

    def watch(self, files: list[Path]) -> None:
        """Watch these files from now on (the thread restarts when their folders changed)."""
        self.files = {str(f) for f in files}
        dirs = {str(f.parent) for f in files}
        if dirs == self._dirs and self._thread is not None and self._thread.is_alive():
            return
        self.stop()
        self._dirs, self._stop = dirs, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sorted(dirs), self._stop),
                                        name="ywf-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (watchfiles sees the event within its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self, dirs: list[str], stop: threading.Event) -> None:
        import watchfiles

        collected: set[str] = set()
        last = 0.0
        # The OS's events arrive within ~50 ms (step); a timeout every 100 ms lets this
        # loop see the quiet time pass and report the change it collected.
        for batch in watchfiles.watch(*dirs, watch_filter=lambda _, path: path in self.files,
                                      step=50, rust_timeout=100, yield_on_timeout=True,
                                      stop_event=stop, recursive=False, raise_interrupt=False):
            now = time.monotonic()
            if batch:
                collected |= {path for _, path in batch}
                last = now
            elif collected and now - last >= QUIET:
                self.changes.put(collected)
                collected = set()


class Runner:
    """The run in progress, a ``yaml-workflow run`` child process."""

    def __init__(self, args: argparse.Namespace, params: dict[str, str]) -> None:
        self.argv = [sys.executable, "-m", "yaml_workflow", "run", str(args.workflow),
                     *[f"{k}={v}" for k, v in params.items()], "--trigger-type", "watch"]
        for flag, name in _PASSED:
            value = getattr(args, name)
            if value not in (None, "", "text"):
                self.argv += [flag, str(value)]
        if args.quiet:
            self.argv.append("--quiet")
        self.proc: subprocess.Popen[bytes] | None = None
        self.count = 0

    @property
    def running(self) -> bool:
        """True while a run's process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, why: str) -> None:
        """Start the next run."""
        self.count += 1
        say(f"run {self.count} of {Path(self.argv[4]).name} ({why}) at {time.strftime('%H:%M:%S')}")
        # Its own session: the terminal's Ctrl+C is ours to pass on as a cancel.
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, start_new_session=True)

    def reap(self) -> int | None:
        """The exit code of a run that ended since the last call (None: none did)."""
        if self.proc is None or self.proc.poll() is None:
            return None
        code, self.proc = self.proc.returncode, None
        say(f"run {self.count} ended ({_outcome(code)}); waiting for a change (Ctrl+C stops)")
        return code

    def cancel(self) -> None:
        """Stop the run in progress as `cancel` would, and wait for it to record its end."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.reap()
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.proc = None
        say(f"run {self.count} cancelled")


def _outcome(code: int) -> str:
    return {0: "completed", 1: "failed", 2: "refused"}.get(code, f"exit code {code}")


def _check_flags(args: argparse.Namespace) -> None:
    for flag in ("resume", "dry_run"):
        if getattr(args, flag):
            raise UsageError(f"--watch cannot be used with --{flag.replace('_', '-')}")
    if args.workflow is None:
        raise UsageError("run --watch needs a workflow file")
    if not args.workflow.is_file():
        raise UsageError(f"workflow file not found: {args.workflow}", hint="check the path")


def _valid(path: Path) -> bool:
    """Load the workflow as `run` would; print the one-line error when it does not load."""
    try:
        client.load(path)
    except WorkflowError as err:
        print(f"error: {err.one_line()}", file=sys.stderr, flush=True)
        say("waiting for the next change")
        return False
    return True


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a process manager stopping us) ends the watch as Ctrl+C does."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def watch_and_run(args: argparse.Namespace, params: dict[str, str]) -> int:
    """Run now and once per change until Ctrl+C; exit 0."""
    _check_flags(args)
    path: Path = args.workflow
    watcher, runner = ChangeWatcher(), Runner(args, params)
    queued = False  # a change came during a run: run again when it ends
    with _sigterm_as_interrupt():
        try:
            watcher.watch(workflow_files(path))
            if _valid(path):
                runner.start("start")
            while True:
                try:
                    changed: set[str] | None = watcher.changes.get(timeout=0.1)
                except queue.Empty:
                    changed = None
                if runner.reap() is not None and queued:
                    queued = False
                    changed = changed or {str(path)}
                if not changed:
                    continue
                names = ", ".join(sorted(Path(p).name for p in changed))
                if runner.running and not args.watch_restart:
                    if not queued:
                        say(f"{names} changed; running again when run {runner.count} ends")
                    queued = True
                    continue
                if runner.running:
                    say(f"{names} changed; cancelling run {runner.count} (--watch-restart)")
                    runner.cancel()
                watcher.watch(workflow_files(path))  # imports may have changed
                if _valid(path):
                    runner.start(f"{names} changed")
        except KeyboardInterrupt:
            if runner.running:
                say(f"stopping: cancelling run {runner.count}")
            runner.cancel()
            say("stopped")
        finally:
            watcher.stop()
    return EXIT_OK
