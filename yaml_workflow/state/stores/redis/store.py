"""``redis://`` / ``rediss://``: runs as Redis hashes, the fleet's source of truth.

The keys are :mod:`.keys`'s, the layout of a document and the operations of each
transition :mod:`.layout`'s, and every write is one script run (:mod:`.scripts`), so a
transition is one round trip and all or nothing.  Here: the connection (password, ACL
user and TLS options come in the URL, as ``redis.Redis.from_url`` reads them; an
unreachable server is :class:`StoreUnavailable`, exit code 3, within about five
seconds), and leases (``SET NX PX`` to take a free one, a script to take a stale one,
renew or release).  ``YAML_WORKFLOW_FINISHED_TTL`` lets the keys of a finished run expire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from ....exceptions import RunNotFound, StateError, StoreUnavailable, UsageError
from ....settings import get_settings, mask_url
from ...document import CANCELLED, COMPLETED, FINISHED, RUNNING, SKIPPED, new_document
from ...lease import Lease, lease_is_live
from ...store import Store
from .connection import store_client_for
from .keys import Keyspace, RunKeys
from .layout import Op, decode, document_ops, dumps, event_ops
from .scripts import Scripts

T = TypeVar("T")
LEASE_GRACE = 86400.0  # seconds an expired lease stays readable (lease_holder shows it)


def finished_ttl() -> float | None:
    """``$YAML_WORKFLOW_FINISHED_TTL`` in seconds (unset: keep finished runs)."""
    return get_settings().finished_ttl


class RedisStore(Store):
    """Runs in Redis hashes; every transition is one script run (one round trip)."""

    def __init__(self, url: str, *, prefix: str | None = None, client: Any = None) -> None:
        # ``client``: a connection to use instead of one made from ``url`` (a test's
        # fakeredis); it must decode responses, as the one made here does.
        self.url = url
        self.keyspace = Keyspace(prefix or get_settings().key_prefix)
        self.prefix = self.keyspace.prefix
        self._r = client if client is not None else self._connect(url)
        self._scripts = Scripts(self._r)

    @staticmethod
    def _connect(url: str) -> Any:
        try:
            return store_client_for(url)  # one pool per URL per process
        except ValueError as err:
            raise UsageError(f"bad state URL '{mask_url(url)}': {err}") from None

    def keys(self, run_id: str) -> RunKeys:
        """The key names of a run."""
        return self.keyspace.run(run_id)

    @property
    def index_key(self) -> str:
        """The sorted set of run ids by start time."""
        return self.keyspace.runs_index

    def _call(self, action: Callable[[], T]) -> T:
        """Run a Redis call, turning connection trouble into StoreUnavailable."""
        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError) as err:  # AuthenticationError too
            raise StoreUnavailable(
                f"cannot reach the state store at {mask_url(self.url)}: {err}",
                hint="check that Redis is running and YAML_WORKFLOW_STATE_URL points at it",
            ) from None
        except redis.ResponseError as err:
            raise StateError(f"the state store at {mask_url(self.url)} answered: {err}") from None

    def _transaction(self, queue: Callable[[Any], None]) -> list[Any]:
        def run() -> list[Any]:
            pipe = self._r.pipeline(transaction=True)
            queue(pipe)
            return list(pipe.execute())

        return self._call(run)

    def _reads(self, queue: Callable[[Any], None]) -> list[Any]:
        def run() -> list[Any]:
            pipe = self._r.pipeline(transaction=False)
            queue(pipe)
            return list(pipe.execute())

        return self._call(run)

    # --- runs ------------------------------------------------------------------------

    def _apply(self, keys: RunKeys, ops: list[Op], *, must_exist: bool) -> bool:
        """Run operations atomically (one script, one round trip); False when the run
        had to exist and does not (then nothing was written)."""
        done = self._call(lambda: self._scripts.apply(keys=[keys.run],
                                                      args=[json.dumps(ops), "1" if must_exist else "0"]))
        return bool(done)

    def create_run(self, header: dict[str, Any]) -> None:
        doc = new_document(header)
        keys = self.keys(doc["workflow_id"])
        self._apply(keys, document_ops(keys, self.index_key, doc, keep_history=False), must_exist=False)

    def restore_run(self, doc: dict[str, Any]) -> None:
        """Recreate a whole run from its document in one script."""
        keys = self.keys(doc["workflow_id"])
        self._apply(keys, document_ops(keys, self.index_key, doc, keep_history=False), must_exist=False)

    def record(self, run_id: str, event: dict[str, Any]) -> None:
        self.record_many(run_id, [event])

    def record_many(self, run_id: str, events: list[dict[str, Any]]) -> None:
        """Record transitions in one round trip, all or nothing."""
        keys = self.keys(run_id)
        ops: list[Op] = []
        for event in events:
            ops += event_ops(keys, self.index_key, event)
            if event.get("t") == "status" and event.get("status") not in FINISHED:
                # A finished run that runs again (resume) must not expire under it.
                ops += [["PERSIST", key] for key in keys.data]
        starts = any(e.get("t") == "run" for e in events)
        if not self._apply(keys, ops, must_exist=not starts):
            raise RunNotFound(f"run '{run_id}' is not in {mask_url(self.url)} (prefix {self.prefix})")

    def load(self, run_id: str) -> dict[str, Any]:
        keys = self.keys(run_id)

        def queue(pipe: Any) -> None:
            pipe.hgetall(keys.run)
            pipe.hgetall(keys.steps)
            pipe.hgetall(keys.outputs)
            pipe.hgetall(keys.vars)
            pipe.lrange(keys.history, 0, -1)

        run, steps, outputs, variables, history = self._transaction(queue)
        if not run:
            raise RunNotFound(
                f"run '{run_id}' is not in {mask_url(self.url)} (prefix {self.prefix})",
                hint="it may have expired; its workspace's .workflow_metadata.json still holds it",
            )
        return decode(run, steps, outputs, variables, history)

    def exists(self, run_id: str) -> bool:
        return bool(self._call(lambda: self._r.exists(self.keys(run_id).run)))

    def list_runs(self, limit: int | None = None, *, offset: int = 0,
                  match: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Summaries, newest first: ``limit`` rows from ``offset`` among the runs ``match`` keeps.

        The run index is read a window at a time (ZREVRANGE), so a page near the top costs
        one window, not a summary of every run; ``match`` sees a row's run fields (before
        the step counts, which are read for kept rows only).
        """
        want = offset + limit if limit else None
        window = 500 if match is not None or want is None else max(50, want + 10)
        rows: list[dict[str, Any]] = []
        start = 0
        while want is None or len(rows) < want:
            ids = [str(i) for i in self._call(
                lambda s=start: self._r.zrevrange(self.index_key, s, s + window - 1))]  # type: ignore[misc]
            if not ids:
                break
            found = self._run_fields(ids)
            start += len(found)  # expired runs left the index: the next window starts sooner
            kept = [row for row in found if match is None or match(row)]
            rows.extend(self._with_counts(kept[:want - len(rows)] if want else kept))
            if len(ids) < window:
                break
        return rows[offset:want]

    _FIELDS = ("workflow_id", "name", "status", "start_time", "last_updated", "workspace",
               "current_step", "trigger")

    def _run_fields(self, ids: list[str]) -> list[dict[str, Any]]:
        """The list fields of runs (one pipelined round trip); expired ones leave the index."""
        def queue(pipe: Any) -> None:
            for run_id in ids:
                pipe.hmget(self.keys(run_id).run, self._FIELDS)

        rows, gone = [], []
        for run_id, values in zip(ids, self._transaction(queue), strict=True):
            if values[0] is None:
                gone.append(run_id)  # expired by its TTL: drop it from the index too
                continue
            row = dict(zip(self._FIELDS, values, strict=True))
            row["trigger"] = json.loads(row["trigger"]) if row["trigger"] else None
            rows.append(row)
        if gone:
            self._call(lambda: self._r.zrem(self.index_key, *gone))
        return rows

    def _with_counts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with steps_done, steps_total and hosts, counted server-side."""
        def queue(pipe: Any) -> None:
            for row in rows:
                keys = self.keys(row["workflow_id"])
                self._scripts.run_counts(keys=[keys.run, keys.steps], args=[dumps(COMPLETED), dumps(SKIPPED)],
                                         client=pipe)

        for row, (done, total, hosts) in zip(rows, self._reads(queue) if rows else [], strict=True):
            row.update(steps_done=int(done), steps_total=int(total) or None,
                       hosts=sorted(json.loads(h) for h in hosts))
        return rows

    def delete_run(self, run_id: str) -> None:
        keys = self.keys(run_id)

        def queue(pipe: Any) -> None:
            pipe.delete(*keys.data, keys.lease)
            pipe.zrem(self.index_key, run_id)

        self._transaction(queue)

    # --- what `clean` asks (the fleet keeps its own keys beside the run's) --------------

    def purge_run(self, run_id: str) -> None:
        """Every key of the run (``P:run:<id>`` and ``P:run:<id>:*``: the store's and the
        fleet's) and its entry in the index.  Glob characters in the id are escaped, so a
        forged id such as ``*`` names no other run's keys."""
        keys = self.keys(run_id)
        found = self._call(lambda: list(self._r.scan_iter(match=keys.pattern, count=1000)))

        def queue(pipe: Any) -> None:
            pipe.delete(*keys.data, keys.lease, *found)
            pipe.zrem(self.index_key, run_id)

        self._transaction(queue)

    def recorded_workspace(self, run_id: str) -> str | None:
        """The workspace in the run's hash, else in the fleet's compiled spec."""
        keys = self.keys(run_id)
        workspace = self._call(lambda: self._r.hget(keys.run, "workspace"))
        if workspace:
            return str(workspace)
        spec = self._call(lambda: self._r.get(keys.spec))
        try:
            found = json.loads(spec).get("workspace") if spec else None
        except (ValueError, AttributeError):
            return None
        return str(found) if found else None

    def still_running(self, run_id: str) -> str | None:
        """A live lease, or a fleet run whose steps are queued or running on workers (a
        fleet run holds no lease while its steps wait in the queue)."""
        reason = super().still_running(run_id)
        if reason:
            return reason
        keys = self.keys(run_id)

        def queue(pipe: Any) -> None:
            pipe.hget(keys.fleet, "status")
            pipe.hget(keys.run, "status")

        fleet_status, run_status = self._reads(queue)
        if fleet_status == RUNNING and run_status != CANCELLED:
            return "still running on the fleet (cancel it first)"
        return None

    def flush(self, run_id: str) -> None:
        """Nothing is buffered; a completed or cancelled run gets the retention TTL if set.

        Failed runs are kept until cleaned: they are the ones a user resumes.
        """
        ttl = finished_ttl()
        if ttl is None:
            return
        status = self._call(lambda: self._r.hget(self.keys(run_id).run, "status"))
        if status in (COMPLETED, CANCELLED):
            self.expire_finished(run_id, ttl)

    def expire_finished(self, run_id: str, seconds: float | None) -> None:
        """Let every key of the run expire after ``seconds`` (None: keep them for good)."""
        keys = self.keys(run_id)

        def queue(pipe: Any) -> None:
            for key in keys.data:
                if seconds is None:
                    pipe.persist(key)
                else:
                    pipe.pexpire(key, max(1, int(seconds * 1000)))

        self._transaction(queue)

    # --- leases ----------------------------------------------------------------------

    def _lease_args(self, lease: Lease) -> tuple[str, int]:
        # The key outlives the lease so that lease_holder() can still name an expired holder.
        ttl_ms = int((lease.expires_at - time.time() + LEASE_GRACE) * 1000)
        return json.dumps(lease.to_dict()), max(1, ttl_ms)

    def acquire_lease(self, run_id: str, lease: Lease) -> Lease | None:
        key = self.keys(run_id).lease
        value, ttl_ms = self._lease_args(lease)
        for _ in range(10):  # each pass loses only to a concurrent change; a few suffice
            if self._call(lambda: self._r.set(key, value, nx=True, px=ttl_ms)):
                return None
            raw = self._call(lambda: self._r.get(key))
            if raw is None:
                continue  # it expired between our two calls
            holder = Lease.from_dict(json.loads(raw))
            if holder.token != lease.token and lease_is_live(holder):
                return holder
            # Expired, ours, or a dead process on this host: take it if nobody changed it.
            if self._call(lambda: self._scripts.lease_swap(keys=[key], args=[raw, value, ttl_ms])):  # noqa: B023
                return None
        raise StateError(f"could not take the lease of run '{run_id}': it keeps changing hands")

    def renew_lease(self, run_id: str, lease: Lease) -> bool:
        value, ttl_ms = self._lease_args(lease)
        key = self.keys(run_id).lease
        return bool(self._call(lambda: self._scripts.lease_renew(keys=[key], args=[lease.token, value, ttl_ms])))

    def release_lease(self, run_id: str, token: str) -> None:
        key = self.keys(run_id).lease
        self._call(lambda: self._scripts.lease_release(keys=[key], args=[token]))

    def lease_holder(self, run_id: str) -> Lease | None:
        raw = self._call(lambda: self._r.get(self.keys(run_id).lease))
        return Lease.from_dict(json.loads(raw)) if raw else None

    def close(self) -> None:
        self._r.close()
