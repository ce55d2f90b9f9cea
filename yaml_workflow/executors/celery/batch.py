"""A ``batch`` step over the fleet: one task per chunk, the last chunk aggregates.

The step task renders the batch inputs once and stores them with the fan-out; each chunk
task runs its items (side by side, ``max_workers`` threads, with the per-item retry of
the local batch) and stores one result per item.  The chunk whose count completes the
fan-out builds the result with exactly the shape of the local ``batch`` task and
records the step, then its successors are dispatched like any step's.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from ...engine.plan import fingerprint
from ...engine.step import (
    Outcome,
    _condition_holds,
    _failed_attempt,
    make_task_context,
    render_inputs,
    skip_step,
)
from ...exceptions import BatchItemsFailed, TaskError
from ...state.document import COMPLETED, RETRYING, RUNNING, step_event
from ...tasks import get_task
from ...tasks.builtin.batch import BatchInputs, _check_reserved, _run_item, _sub_inputs, item_key
from .dispatch import after_outcome, schedule_retry, send_chunk, send_step
from .progress import BatchProgress
from .runtime import FleetRun


def _validate(step: str, rendered: dict[str, Any]) -> BatchInputs:
    try:
        return BatchInputs.model_validate(rendered)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "inputs"
        raise TaskError(f"step '{step}': task 'batch' input '{where}': {first.get('msg')}") from None


def fan_out(app: Any, run: FleetRun, name: str, attempt: int, ns: dict[str, Any],
            again: bool) -> tuple[Outcome | None, list[str]]:
    """Render the batch and enqueue its chunks; an Outcome only when the step ended here."""
    step = run.step(name)
    key = run.fs.batch_key(run.run_id, name, attempt)
    if again:  # a redelivery of a fan-out that was stored: send what was not sent
        plan = json.loads(run.fs.r.hget(key, "plan") or "{}")
        chunks = [f"{name}#{attempt}#{c}" for c in range(plan.get("nchunks", 0))]
        for marker, sent in zip(chunks, run.fs.sent(run.run_id, chunks), strict=False):
            if not sent:
                send_chunk(app, run, name, attempt, int(marker.rsplit("#", 1)[1]))
        return None, chunks
    rc = run.context(ns)
    scope = rc.namespaces(step, attempt)
    started = time.time()
    try:
        if not _condition_holds(step, scope):
            return skip_step(rc, name, "condition was false"), []
        rc.record(step_event(name, RUNNING, attempt=attempt, started_at=started,
                             fingerprint=fingerprint(step), host=run.host, pid=os.getpid()))
        rendered = render_inputs(get_task("batch"), step.inputs, scope)
        inputs = _validate(name, rendered)
        ctx = make_task_context(rc, step, attempt, scope)
        _check_reserved(ctx, inputs.arg_name)
        get_task(inputs.task.task)
    except Exception as error:  # noqa: BLE001 - every failure goes through error handling
        return _failed_attempt(rc, step, attempt, started, error), []
    nchunks = math.ceil(len(inputs.items) / inputs.chunk_size)
    dumped = inputs.model_dump(mode="json")
    stored = run.masker.value(dumped)
    # Redis never holds a secret: items that carry one are stored masked, and each chunk
    # renders them again from the step's inputs (as this fan-out did) on its own worker.
    plan = {"inputs": stored, "started": started, "nchunks": nchunks, "rerender": stored != dumped}
    pipe = run.fs.r.pipeline(transaction=True)
    pipe.hset(key, "plan", json.dumps(plan))
    pipe.hset(run.fs.k(run.run_id, "fleet"), f"fanout:{name}", str(attempt))
    pipe.execute()
    if nchunks == 0:  # nothing to fan out: the step ends here, successors and all
        return None, aggregate(app, run, name, attempt, rc=rc)
    run.recorder.flush(name)  # the step runs on in its chunks: `running` goes to the store now
    for chunk in range(nchunks):
        send_chunk(app, run, name, attempt, chunk)
    return None, [f"{name}#{attempt}#{c}" for c in range(nchunks)]


def _item_outcomes(ctx: Any, inputs: BatchInputs, raw: dict[str, Any], indexes: range,
                   run: FleetRun, progress: BatchProgress | None = None) -> dict[int, Any]:
    """Run the items of one chunk side by side; item records as the local batch keeps them."""
    out: dict[int, Any] = {}

    def one(i: int) -> None:
        tries = [0]
        key = item_key(inputs.items[i])
        earlier = ctx.prior_items.get(str(i)) or {}
        if earlier.get("status") == "completed" and earlier.get("key") == key:
            out[i] = dict(earlier)  # done before a resume, for this very item: not run again
            return
        try:
            result = run.masker.value(_run_item(ctx, inputs, raw, inputs.items[i], i, tries))
            json.dumps(result)
            out[i] = {"status": "completed", "result": result, "attempts": tries[0], "key": key}
        except Exception as err:  # noqa: BLE001 - a failed item is listed, not raised
            out[i] = {"status": "failed", "error": run.masker.text(str(err) or type(err).__name__),
                      "error_type": type(err).__name__, "attempts": tries[0], "key": key}
        if progress is not None:
            progress.item(out[i]["status"] == "completed", tries[0])

    with ThreadPoolExecutor(max_workers=inputs.max_workers, thread_name_prefix=f"batch-{ctx.step}") as pool:
        list(pool.map(one, indexes))
    return out


def _chunk_inputs(run: FleetRun, name: str, attempt: int, ns: dict[str, Any],
                  plan: dict[str, Any]) -> BatchInputs:
    """The batch's inputs: as stored, or rendered again when the stored copy is masked."""
    if not plan.get("rerender"):
        return BatchInputs.model_validate(plan["inputs"])
    step = run.step(name)
    scope = run.context(ns).namespaces(step, attempt)
    return _validate(name, render_inputs(get_task("batch"), step.inputs, scope))


def run_chunk(app: Any, run: FleetRun, name: str, attempt: int, chunk: int,
              ns: dict[str, Any]) -> list[str]:
    """Run one chunk's items and count the chunk; the last one aggregates."""
    key = run.fs.batch_key(run.run_id, name, attempt)
    plan = json.loads(run.fs.r.hget(key, "plan") or "null")
    if plan is None:
        return []  # the fan-out this chunk belonged to is gone (run finished or expired)
    inputs = _chunk_inputs(run, name, attempt, ns, plan)
    size, total = inputs.chunk_size, len(inputs.items)
    indexes = range(chunk * size, min((chunk + 1) * size, total))
    if run.fs.r.hget(key, "stop"):
        items: dict[int, Any] = {i: {"status": "not_run"} for i in indexes}  # already failing
    else:
        step = run.step(name)
        rc = run.context(ns)
        ctx = make_task_context(rc, step, attempt, rc.namespaces(step, attempt))
        # Items done/failed across all chunks, recorded at most once per progress_interval.
        progress = BatchProgress(run, rc, step, key, total, plan["nchunks"]) if step.progress_update else None
        items = _item_outcomes(ctx, inputs, _sub_inputs(inputs, get_task(inputs.task.task)), indexes,
                               run, progress)
        # The same per-chunk item records as the local batch (resume reuses them).
        ctx.record_items({str(i): {k: v for k, v in rec.items() if k != "error_type"}
                          for i, rec in items.items()})
        if progress is not None:
            progress.finish()
    return count_chunk(app, run, name, attempt, chunk, items, plan, inputs)


def count_chunk(app: Any, run: FleetRun, name: str, attempt: int, chunk: int,
                items: dict[int, Any], plan: dict[str, Any], inputs: BatchInputs) -> list[str]:
    """Store a chunk's items; the chunk that completes the count aggregates."""
    key = run.fs.batch_key(run.run_id, name, attempt)
    n = run.fs.chunk_done(key, chunk, plan["nchunks"], items)
    if n == -1:  # this chunk was counted by an earlier delivery
        n = int(run.fs.r.hget(key, "chunks_done") or 0)
        if run.fs.field(run.run_id, f"done:{name}"):
            return []
    failed = any(v.get("status") == "failed" for v in items.values())
    if failed and (inputs.fail_on_item_error or inputs.max_failed_items is not None):
        _maybe_stop(run, key, inputs)
    if n < plan["nchunks"]:
        return []
    return aggregate(app, run, name, attempt)


def _maybe_stop(run: FleetRun, key: str, inputs: BatchInputs) -> None:
    """Once the step is bound to fail, later chunks skip their items (as locally)."""
    values: dict[bytes, bytes] = run.fs.r.hgetall(key)  # type: ignore[assignment]
    failed = sum(1 for k, v in values.items()
                 if k.startswith(b"item:") and json.loads(v).get("status") == "failed")
    limit = inputs.max_failed_items
    if (inputs.fail_on_item_error and failed) or (limit is not None and failed > limit):
        run.fs.r.hset(key, "stop", "1")


def _result(inputs: BatchInputs, values: dict[bytes, bytes], started: float) -> tuple[dict[str, Any], bool]:
    items, total = inputs.items, len(inputs.items)
    results: list[Any] = [None] * total
    failed: list[dict[str, Any]] = []
    ok = [False] * total
    done = 0
    for raw_key, raw in values.items():
        key = raw_key.decode()
        if not key.startswith("item:"):
            continue
        i, entry = int(key[5:]), json.loads(raw)
        if entry.get("status") == "not_run":
            continue  # the step was already failing
        done += 1
        if entry["status"] == "completed":
            results[i], ok[i] = entry.get("result"), True
        else:
            failed.append({"index": i, "item": items[i], "error": entry["error"],
                           "error_type": entry["error_type"]})
    failed.sort(key=lambda e: e["index"])
    processed = [item for item, good in zip(items, ok, strict=True) if good]
    result = {
        "processed": processed, "failed": failed, "results": results,
        "stats": {"total": total, "processed": len(processed), "failed": len(failed),
                  "skipped": total - done,
                  "success_rate": 100.0 * len(processed) / total if total else 100.0,
                  "duration": round(time.time() - started, 6)},
    }
    limit = inputs.max_failed_items
    stop = bool((inputs.fail_on_item_error and failed) or (limit is not None and len(failed) > limit))
    return result, stop


def aggregate(app: Any, run: FleetRun, name: str, attempt: int, rc: Any = None) -> list[str]:
    """Build the batch result, record the step and act on it (dispatch, retry, fail)."""
    key = run.fs.batch_key(run.run_id, name, attempt)
    values = run.fs.r.hgetall(key)
    plan = json.loads(values[b"plan"])
    inputs = BatchInputs.model_validate(plan["inputs"])
    result, stop = _result(inputs, values, plan["started"])  # type: ignore[arg-type]
    step = run.step(name)
    rc = rc or run.context({})
    started = plan["started"]
    if stop:
        first = result["failed"][0]
        error = BatchItemsFailed(
            f"step '{name}': {len(result['failed'])} of {len(inputs.items)} items failed "
            f"(first: item {first['index']}: {first['error']})", result=result)
        outcome = _failed_attempt(rc, step, attempt, started, error)
    else:
        finished = time.time()
        event = step_event(name, COMPLETED, result=result, attempt=attempt, started_at=started,
                           finished_at=finished, duration=round(finished - started, 6))
        rc.record(event)
        outcome = Outcome(COMPLETED, result=result, attempt=attempt)
    if outcome.status == RETRYING:
        send_step(app, run, name, countdown=schedule_retry(run, name, attempt, outcome))
        return []
    return after_outcome(app, run, name, attempt, outcome)
