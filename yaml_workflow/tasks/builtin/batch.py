"""The ``batch`` task: run one sub-task per item, chunk by chunk, on a thread pool.

The algorithm (items, records, the stop rule, the result) is :mod:`..batching`'s, which
the fleet's chunks use too; this is its in-process driver.
"""

from __future__ import annotations

import time
from typing import Any

from ...exceptions import StepTimeoutError, TaskError
from ..batching import (
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
from ..context import TaskContext
from ..registry import builtin_task, get_task

__all__ = ["BatchInputs", "batch"]


@builtin_task("batch", inputs=BatchInputs, raw=("task",))
def batch(inputs: BatchInputs, ctx: TaskContext) -> dict[str, Any]:
    """Run a sub-task per item; result ``{processed, failed, results, stats}``."""
    if ctx.call_task is None:
        raise TaskError(f"step '{ctx.step}': batch needs an engine that can call sub-tasks")
    check_arg_name(ctx.step, inputs.arg_name)
    raw = sub_inputs(inputs, get_task(inputs.task.task))  # unknown sub-task: fail before any item runs
    total = len(inputs.items)
    started = time.monotonic()
    # Resume: items that succeeded in an earlier run of this step keep their results.
    records: dict[int, ItemRecord] = reusable(inputs, ctx.prior_items, range(total))
    if records:
        ctx.progress(len(records), total, f"{len(records)}/{total} items ({len(records)} from an earlier run)")
    counts = {"done": len(records), "failed": 0, "retries": 0}

    def on_item(record: ItemRecord) -> None:
        counts["done"] += 1
        counts["failed"] += record["status"] == "failed"
        counts["retries"] += max(0, record["attempts"] - 1)
        ctx.progress(counts["done"], total, f"{counts['done']}/{total} items",
                     failed=counts["failed"], retries=counts["retries"])

    def flush(new: dict[int, ItemRecord]) -> None:
        ctx.record_items({str(i): record for i, record in new.items()})

    for chunk in range(0, (total + inputs.chunk_size - 1) // inputs.chunk_size):
        if ctx.remaining() == 0:
            raise StepTimeoutError(f"step '{ctx.step}': timed out after {counts['done']}/{total} items")
        # Chunks run one after another; items of a chunk run side by side.
        indexes = [i for i in inputs.chunk_indexes(chunk) if i not in records]
        if indexes:
            records.update(run_items(ctx, inputs, raw, indexes, prior=ctx.prior_items,
                                     on_item=on_item, flush=flush))
        # Once the step is bound to fail, later chunks would only waste work.
        if must_stop(inputs, sum(1 for r in records.values() if r["status"] == "failed")):
            break
    result, stop = batch_result(inputs, records, time.monotonic() - started)
    if stop:
        raise items_failed(ctx.step, result)
    return result
