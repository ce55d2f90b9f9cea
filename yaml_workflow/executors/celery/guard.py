"""The claim guard: one per worker, in its main process, keeping its steps single.

Each step a worker runs holds a claim in Redis (a token with a TTL, see
:mod:`yaml_workflow.state.stores.redis.fleet`).  The pool processes that run steps tell
the guard, through a pipe inherited from the main process, which claims they took, which
subprocess groups each step started, and which claims they gave back.  The guard renews
every claim of the worker in one round trip each third of the TTL, and decides what
happens to a step whose claim it cannot keep:

- **Redis unreachable for one TTL** — the step is *frozen*: its subprocess groups and the
  pool process running it get SIGSTOP.  Nothing of it runs any more, yet nothing is lost.
- **Redis back, and the claim still ours or free** (an outage: nobody could take the step
  meanwhile, and ``begin`` refuses to for one TTL after Redis starts) — the claim is taken
  back and the step thawed (SIGCONT).  It finishes; nothing ran twice.
- **The claim taken by another worker, or the step done elsewhere** (this worker was cut
  off while Redis stayed up) — the step is killed (SIGKILL to its groups and its pool
  process), so only the other copy goes on.  The other worker could only take the claim
  a third of a TTL after this one froze the step: that margin is the fencing rule.
- **Frozen past the longest outage we wait for** — killed; the step runs again elsewhere.
- **A pool process died** (killed, OOM) — its claims are given back at once, its steps'
  surviving subprocess groups killed, so the message Celery requeues runs immediately.

A step running in the main process itself (the ``solo`` and ``threads`` pools) cannot be
stopped without stopping the guard: there only its subprocess groups are frozen/killed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from ...settings import get_settings
from ...state.processes import ProcessRef, is_alive
from ...state.stores.redis.fleet import ClaimKeeper, FleetState, HeldClaim

log = logging.getLogger("yaml_workflow.fleet")

_LINE_LIMIT = 4000  # below PIPE_BUF: one write() of a line is atomic among writers


@dataclass
class Guarded:
    """A claim the guard keeps, and what stops its step."""

    claim: HeldClaim
    owner: ProcessRef  # the pool process running the step
    groups: set[ProcessRef] = field(default_factory=set)  # subprocess groups of the step
    last_ok: float = field(default_factory=time.monotonic)
    frozen_at: float | None = None


class Guard:
    """The main process's side: reads the pipe, renews, freezes, thaws, kills."""

    def __init__(self, fs: FleetState, holder: str) -> None:
        self.fs, self.holder = fs, holder
        self.read_fd, self.write_fd = os.pipe()
        self.pid = os.getpid()
        self.claims: dict[str, Guarded] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def start(self) -> None:
        """Start reading the pipe and beating (once, in the worker's main process)."""
        threading.Thread(target=self._read, name="ywf-guard-pipe", daemon=True).start()
        threading.Thread(target=self._beat, name="ywf-guard", daemon=True).start()

    # --- what the pool processes say -------------------------------------------------------

    def _read(self) -> None:
        with os.fdopen(self.read_fd, "rb", buffering=0) as pipe:
            buffer = b""
            while not self.stopped.is_set():
                chunk = pipe.read(65536)
                if not chunk:
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    try:
                        self._apply(json.loads(line))
                    except (ValueError, KeyError, TypeError) as err:
                        log.warning("claim guard: a message it cannot read: %r", err)

    def _apply(self, message: dict[str, Any]) -> None:
        op = message["op"]
        with self.lock:
            if op == "hold":
                claim = HeldClaim(message["key"], message["token"], message["run"], message["step"],
                                  int(message["attempt"]))
                self.claims[claim.key] = Guarded(claim, ProcessRef(int(message["pid"]), message.get("started")))
            elif op == "drop":
                self.claims.pop(message["key"], None)
            elif op == "proc":
                ref = ProcessRef(int(message["pid"]), message.get("started"))
                for guarded in self.claims.values():
                    same_step = guarded.claim.step.split("#")[0] == message["step"]
                    if guarded.claim.run_id == message["run"] and same_step and guarded.owner.pid == message["owner"]:
                        guarded.groups.add(ref)

    # --- the beat --------------------------------------------------------------------------

    def _beat(self) -> None:
        while not self.stopped.wait(get_settings().claim_ttl / 3):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the guard must outlive any one bad beat
                log.exception("claim guard: a beat failed")

    def check(self) -> None:
        """One beat: forget dead owners, renew the rest, act on what could not be renewed."""
        with self.lock:
            entries = list(self.claims.values())
        for guarded in [g for g in entries if g.owner.pid != self.pid and not is_alive(g.owner)]:
            self._owner_died(guarded)
            entries.remove(guarded)
        if not entries:
            return
        try:
            renewed = self.fs.renew_many([g.claim for g in entries], self.holder)
        except (redis.RedisError, OSError):
            self._unreachable(entries)
            return
        now = time.monotonic()
        ttl = get_settings().claim_ttl
        for guarded, ok in zip(entries, renewed, strict=True):
            if not ok and guarded.frozen_at is None and now - guarded.last_ok < ttl:
                # Renewed a beat ago and gone now: its step gave it back (the message
                # saying so is on its way), not lost.
                self._forget(guarded)
                continue
            if not ok:  # expired while Redis was away: ours again only if nobody took it
                ok = self._retake(guarded)
            if ok:
                guarded.last_ok = now
                if guarded.frozen_at is not None:
                    self._signal(guarded, signal.SIGCONT)
                    guarded.frozen_at = None
                    log.warning("claim of %s taken back after Redis came back: the step goes on",
                                guarded.claim.key)
            else:
                log.warning("claim of %s lost to another worker: stopping this copy of the step",
                            guarded.claim.key)
                self._kill(guarded)

    def _retake(self, guarded: Guarded) -> bool:
        try:
            return self.fs.retake(guarded.claim, self.holder)
        except (redis.RedisError, OSError):
            return True  # Redis went away between the two calls: judge it next beat

    def _unreachable(self, entries: list[Guarded]) -> None:
        now = time.monotonic()
        settings = get_settings()
        longest_wait = max(settings.reconnect_timeout, 10 * settings.claim_ttl)
        for guarded in entries:
            if guarded.frozen_at is None and now - guarded.last_ok >= settings.claim_ttl:
                log.warning("Redis unreachable for %.0fs: freezing the step of %s until it is back",
                            now - guarded.last_ok, guarded.claim.key)
                guarded.frozen_at = now
                self._signal(guarded, signal.SIGSTOP)
            elif guarded.frozen_at is not None and now - guarded.frozen_at >= longest_wait:
                log.warning("Redis unreachable for %.0fs: stopping the step of %s (it runs again later)",
                            now - guarded.last_ok, guarded.claim.key)
                self._kill(guarded)

    def _owner_died(self, guarded: Guarded) -> None:
        self._forget(guarded)
        for group in guarded.groups:
            _send_group(group, signal.SIGKILL)
        try:
            self.fs.release_claim(guarded.claim)  # its requeued message need not wait out the TTL
        except (redis.RedisError, OSError):
            pass  # the claim expires by itself

    def _kill(self, guarded: Guarded) -> None:
        self._forget(guarded)
        self._signal(guarded, signal.SIGKILL)
        self._signal(guarded, signal.SIGCONT)  # a stopped process dies only once it runs

    def _forget(self, guarded: Guarded) -> None:
        with self.lock:
            if self.claims.get(guarded.claim.key) is guarded:
                del self.claims[guarded.claim.key]

    def _signal(self, guarded: Guarded, signum: int) -> None:
        for group in guarded.groups:
            _send_group(group, signum)
        if guarded.owner.pid != self.pid and is_alive(guarded.owner):
            try:
                os.kill(guarded.owner.pid, signum)
            except ProcessLookupError:
                pass


def _send_group(group: ProcessRef, signum: int) -> None:
    try:
        os.killpg(group.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class PipeKeeper(ClaimKeeper):
    """A pool process's side: claims are reported to the worker's guard, which keeps them."""

    def __init__(self, write_fd: int) -> None:
        super().__init__()
        self.write_fd = write_fd
        self.me = ProcessRef.of(os.getpid())

    def _send(self, message: dict[str, Any]) -> bool:
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        if len(line) > _LINE_LIMIT:
            return False
        try:
            os.write(self.write_fd, line)
        except OSError:
            return False
        return True

    def hold(self, fs: FleetState, claim: HeldClaim) -> None:
        """Hand the claim to the guard (or keep it here when it cannot be told)."""
        sent = self._send({"op": "hold", "key": claim.key, "token": claim.token, "run": claim.run_id,
                           "step": claim.step, "attempt": claim.attempt, "pid": self.me.pid,
                           "started": self.me.started})
        if not sent:
            super().hold(fs, claim)

    def drop(self, key: str) -> None:
        """The claim was given back."""
        super().drop(key)
        self._send({"op": "drop", "key": key})

    def process(self, run_id: str, step: str, ref: ProcessRef) -> None:
        """A step of this process started a subprocess group."""
        self._send({"op": "proc", "run": run_id, "step": step, "pid": ref.pid, "started": ref.started,
                    "owner": self.me.pid})


_GUARD: dict[str, Guard] = {}


def start_guard(fs: FleetState, holder: str) -> Guard:
    """Start this worker's guard (in its main process, before the pool forks)."""
    guard = _GUARD.get("guard")
    if guard is None or guard.pid != os.getpid():
        guard = _GUARD["guard"] = Guard(fs, holder)
        guard.start()
    return guard


def guard_write_fd() -> int | None:
    """The pipe to this worker's guard, inherited by its pool processes (None outside a worker)."""
    guard = _GUARD.get("guard")
    return guard.write_fd if guard is not None else None


def watch_parent(on_orphan: Any) -> None:
    """In a pool process: when the worker's main process dies (OOM, SIGKILL), stop at once
    (``on_orphan``, then exit), so no step goes on without a guard keeping its claim."""
    parent = os.getppid()

    def loop() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        try:
            on_orphan()
        finally:
            os._exit(137)

    threading.Thread(target=loop, name="ywf-orphan-watch", daemon=True).start()
