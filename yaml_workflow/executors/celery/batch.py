"""A ``batch`` step over the fleet: one task per chunk, the last chunk aggregates.

The step task begins the step like any other (:func:`engine.step.begin_attempt`),
renders the batch inputs once and stores them with the fan-out; each chunk task runs its
items with the batch algorithm of :mod:`tasks.batching` (side by side, ``max_workers``
threads, the per-item retry) and records each item as it finishes (at least every 0.5 s),
so a redelivered chunk runs only what its dead predecessor had not finished.  The chunk
whose count completes the fan-out builds the result with :func:`tasks.batching.batch_result`
and ends the step through :func:`engine.step.complete` / ``fail``, then its successors
are dispatched like any step's.
"""

from __future__ import annotations

import math
import time
from typing import Any

from pydantic import ValidationError

from ...engine.step import (
    Attempt,
    Outcome,
    begin_attempt,
    complete,
    make_task_context,
    render_inputs,
)
from ...exceptions import TaskError
from ...state.document import RETRYING
from ...tasks import get_task
from ...tasks.batching import (
    BatchInputs,
    ItemRecord,
    batch_result,
    check_arg_name,
    items_failed,
    must_stop,
    reusable,
    run_items,
    sub_inputs,
)
from .dispatch import after_outcome, schedule_retry, send_chunk, send_step
from .persist import persistently
from .progress import BatchProgress
from .runtime import FleetRun


def _validate(step: str, rendered: dict[str, Any]) -> BatchInputs:
    try:
        return BatchInputs.model_validate(rendered)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "inputs"
        raise TaskError(f"step '{step}': task 'batch' input '{where}': {first.get('msg')}") from None


def _render(run: FleetRun, begun: Attempt) -> BatchInputs:
    return _validate(begun.step.name, render_inputs(get_task("batch"), begun.step.inputs, begun.scope))


def fan_out(app: Any, run: FleetRun, name: str, attempt: int, ns: dict[str, Any],
            again: bool) -> tuple[Outcome | None, list[str]]:
    """Render the batch and enqueue its chunks; an Outcome only when the step ended here."""
    if again:  # a redelivery of a fan-out that was stored: send what was not sent
        plan = run.fs.fanout_plan(run.run_id, name, attempt) or {}
        chunks = [f"{name}#{attempt}#{c}" for c in range(plan.get("nchunks", 0))]
        for chunk, sent in enumerate(run.fs.sent(run.run_id, chunks)):
            if not sent:
                send_chunk(app, run, name, attempt, chunk)
        return None, chunks
    begun = begin_attempt(run.context(ns), run.step(name), attempt)
    if isinstance(begun, Outcome):
        return begun, []
    try:
        inputs = _render(run, begun)
        check_arg_name(name, inputs.arg_name)
        get_task(inputs.task.task)
    except Exception as error:  # noqa: BLE001 - every failure goes through error handling
        return begun.fail(error), []
    nchunks = math.ceil(len(inputs.items) / inputs.chunk_size)
    dumped = inputs.model_dump(mode="json")
    stored = run.masker.value(dumped)
    # Redis never holds a secret: items that carry one are stored masked, and each chunk
    # renders them again from the step's inputs (as this fan-out did) on its own worker.
    run.fs.store_fanout(run.run_id, name, attempt, {"inputs": stored, "started": begun.started,
                                                    "nchunks": nchunks, "rerender": stored != dumped})
    if nchunks == 0:  # nothing to fan out: the step ends here, successors and all
        return None, aggregate(app, run, name, attempt, rc=begun.rc)
    run.recorder.flush(name)  # the step runs on in its chunks: `running` goes to the store now
    for chunk in range(nchunks):
        send_chunk(app, run, name, attempt, chunk)
    return None, [f"{name}#{attempt}#{c}" for c in range(nchunks)]


def _chunk_inputs(run: FleetRun, name: str, attempt: int, ns: dict[str, Any],
                  plan: dict[str, Any]) -> BatchInputs:
    """The batch's inputs: as stored, or rendered again when the stored copy is masked."""
    if not plan.get("rerender"):
        return BatchInputs.model_validate(plan["inputs"])
    step = run.step(name)
    scope = run.context(ns).namespaces(step, attempt)
    return _validate(name, render_inputs(get_task("batch"), step.inputs, scope))


def _earlier_items(run: FleetRun, name: str, attempt: int, indexes: range) -> dict[str, ItemRecord]:
    """Item records of this very fan-out that an earlier delivery of the chunk recorded."""
    recorded = run.store.load(run.run_id)["execution_state"]["step_outputs"].get(name, {}).get("items") or {}
    return {str(i): recorded[str(i)] for i in indexes
            if str(i) in recorded and recorded[str(i)].get("fanout") == attempt}


def run_chunk(app: Any, run: FleetRun, name: str, attempt: int, chunk: int,
              ns: dict[str, Any], again: bool = False) -> list[str]:
    """Run one chunk's items and count the chunk; the last one aggregates."""
    plan = run.fs.fanout_plan(run.run_id, name, attempt)
    if plan is None:
        return []  # the fan-out this chunk belonged to is gone (run finished or expired)
    inputs = _chunk_inputs(run, name, attempt, ns, plan)
    indexes = inputs.chunk_indexes(chunk)
    if run.fs.batch_stopped(run.run_id, name, attempt):
        items: dict[int, ItemRecord] = {i: {"status": "not_run"} for i in indexes}  # already failing
        return count_chunk(app, run, name, attempt, chunk, items, plan, inputs)
    step = run.step(name)
    rc = run.context(ns)
    ctx = make_task_context(rc, step, attempt, rc.namespaces(step, attempt))
    # A redelivered chunk (its worker died) keeps what was recorded before the death;
    # a resumed run brings the items of its earlier run (ctx.prior_items).
    prior = {**ctx.prior_items, **(_earlier_items(run, name, attempt, indexes) if again else {})}
    items = reusable(inputs, prior, indexes)
    # Items done/failed across all chunks, recorded at most once per progress_interval.
    progress = BatchProgress(run, rc, step, attempt, len(inputs.items), plan["nchunks"]) \
        if step.progress_update else None

    def flush(new: dict[int, ItemRecord]) -> None:
        ctx.record_items({str(i): {**record, "fanout": attempt} for i, record in new.items()})

    items.update(run_items(
        ctx, inputs, sub_inputs(inputs, get_task(inputs.task.task)), [i for i in indexes if i not in items],
        prior=prior, clean=run.masker.value, flush=flush,
        on_item=(lambda r: progress.item(r["status"] == "completed", r["attempts"])) if progress else None))
    if progress is not None:
        progress.finish()
    # The items ran: counting them (and, for the last chunk, recording the step) is
    # retried in place until Redis answers, never by running the items again.
    sent: list[str] = persistently(lambda: count_chunk(app, run, name, attempt, chunk, items, plan, inputs),
                                   f"recording chunk {chunk} of {name}")
    return sent


def count_chunk(app: Any, run: FleetRun, name: str, attempt: int, chunk: int,
                items: dict[int, ItemRecord], plan: dict[str, Any], inputs: BatchInputs) -> list[str]:
    """Store a chunk's items; the chunk that completes the count aggregates."""
    counted = run.fs.chunk_done(run.run_id, name, attempt, chunk, items)
    if counted is None:  # this chunk was counted by an earlier delivery
        if run.fs.is_done(run.run_id, name):
            return []
        counted = run.fs.chunks_done(run.run_id, name, attempt)
    if any(v.get("status") == "failed" for v in items.values()):
        # Once the step is bound to fail, later chunks skip their items (as locally).
        records = run.fs.batch_items(run.run_id, name, attempt)
        if must_stop(inputs, sum(1 for r in records.values() if r.get("status") == "failed")):
            run.fs.stop_batch(run.run_id, name, attempt)
    if counted < plan["nchunks"]:
        return []
    return aggregate(app, run, name, attempt)


def aggregate(app: Any, run: FleetRun, name: str, attempt: int, rc: Any = None) -> list[str]:
    """Build the batch result, record the step and act on it (dispatch, retry, fail)."""
    plan = run.fs.fanout_plan(run.run_id, name, attempt)
    assert plan is not None
    inputs = BatchInputs.model_validate(plan["inputs"])
    result, stop = batch_result(inputs, run.fs.batch_items(run.run_id, name, attempt),
                                time.time() - plan["started"])
    begun = Attempt(rc or run.context({}), run.step(name), attempt, plan["started"], {})
    outcome = begun.fail(items_failed(name, result)) if stop else complete(begun, result)
    if outcome.status == RETRYING:
        send_step(app, run, name, countdown=schedule_retry(run, name, attempt, outcome))
        return []
    return after_outcome(app, run, name, attempt, outcome)
