"""The ``batch`` task: run one sub-task per item, chunk by chunk, on a thread pool."""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ...exceptions import BatchItemsFailed, StepTimeoutError, TaskError
from ...templating import Namespace
from ..context import TaskContext
from ..registry import CALL_CONFIG, CALL_KWARGS, TaskSpec, builtin_task, get_task

# Template namespaces an item name must not hide.
_NAMESPACES = ("args", "env", "steps", "workflow", "current", "batch", "settings", "error")


class SubTask(BaseModel):
    """The task run for each item: ``{task: NAME, inputs: {...}}`` (inputs unrendered)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    task: str
    inputs: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("inputs", "params")
    )


class ItemRetry(BaseModel):
    """Per-item retry: ``max_attempts`` executions, ``delay * backoff**n`` seconds apart."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    max_attempts: int = Field(default=1, ge=1)
    delay: float = Field(default=0.0, ge=0)
    backoff: float = Field(default=1.0, ge=1)


class BatchInputs(BaseModel):
    """Inputs of ``batch``; ``task`` arrives raw and is rendered per item."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    items: list[Any]
    task: SubTask
    arg_name: str = "item"
    chunk_size: int = Field(default=10, ge=1)
    max_workers: int = Field(default=4, ge=1)
    retry: ItemRetry = Field(default_factory=ItemRetry)
    fail_on_item_error: bool = False
    max_failed_items: int | None = Field(default=None, ge=0)


def _takes_input(spec: TaskSpec, name: str) -> bool:
    """Whether the sub-task accepts an input called ``name`` (so the item can be passed)."""
    if spec.inputs_model is not None:
        return (
            spec.inputs_model.model_config.get("extra") == "allow"
            or name in spec.inputs_model.model_fields
        )
    if spec.call == CALL_CONFIG:
        return True  # a TaskConfig carries a dict: one more key harms nobody
    if spec.call == CALL_KWARGS:
        try:
            params = inspect.signature(spec.func).parameters.values()
        except (TypeError, ValueError):
            return False
        return any(p.kind is p.VAR_KEYWORD or p.name == name for p in params)
    return False


def _sub_inputs(inputs: BatchInputs, spec: TaskSpec) -> dict[str, Any]:
    raw = dict(inputs.task.inputs)
    # As in the public dialect, the item is also an input of the sub-task (python_code
    # sees it as a variable).  It goes in as a template naming the extra namespace, so
    # the item value itself is never rendered.  An input the user wrote wins.
    if inputs.arg_name not in raw and _takes_input(spec, inputs.arg_name):
        raw[inputs.arg_name] = "{{ " + inputs.arg_name + " }}"
    return raw


def _namespaces(ctx: TaskContext, inputs: BatchInputs, item: Any, index: int) -> dict[str, Any]:
    total = len(inputs.items)
    extra: dict[str, Any] = {
        "batch": Namespace(
            "batch",
            item=item,
            index=index,
            total=total,
            chunk_index=index // inputs.chunk_size,
            chunk_size=inputs.chunk_size,
            name=ctx.step,
        ),
        inputs.arg_name: item,
    }
    # The public dialect also puts the item in `args` under arg_name.
    args = ctx.namespaces.get("args")
    if isinstance(args, dict) and inputs.arg_name not in args:
        extra["args"] = Namespace("args", {**args, inputs.arg_name: item})
    return extra


def item_key(item: Any) -> str:
    """A short hash of an item's value: a stored item result is reused only for the same item."""
    text = json.dumps(item, sort_keys=True, default=str)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


def _run_item(
    ctx: TaskContext, inputs: BatchInputs, raw: dict[str, Any], item: Any, index: int,
    attempts: list[int],
) -> Any:
    """Run one item with its own retries; ``attempts[0]`` counts its executions so far."""
    assert ctx.call_task is not None
    extra = _namespaces(ctx, inputs, item, index)
    policy = inputs.retry
    for attempt in range(1, policy.max_attempts + 1):
        attempts[0] += 1
        try:
            return ctx.call_task(inputs.task.task, raw, extra)
        except Exception:
            if attempt >= policy.max_attempts:
                raise
            time.sleep(policy.delay * policy.backoff ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _check_reserved(ctx: TaskContext, arg_name: str) -> None:
    if not arg_name.isidentifier() or arg_name in _NAMESPACES:
        raise TaskError(
            f"step '{ctx.step}': arg_name '{arg_name}' cannot be used",
            hint="use a plain identifier that is not a template namespace, e.g. 'item'",
        )


@builtin_task("batch", inputs=BatchInputs, raw=("task",))
def batch(inputs: BatchInputs, ctx: TaskContext) -> dict[str, Any]:
    """Run a sub-task per item; result ``{processed, failed, results, stats}``."""
    if ctx.call_task is None:
        raise TaskError(f"step '{ctx.step}': batch needs an engine that can call sub-tasks")
    _check_reserved(ctx, inputs.arg_name)
    spec = get_task(inputs.task.task)  # unknown sub-task: fail before any item runs
    raw = _sub_inputs(inputs, spec)
    items, total = inputs.items, len(inputs.items)
    started = time.monotonic()
    results: list[Any] = [None] * total
    ok = [False] * total
    failed: list[dict[str, Any]] = []
    done = 0
    retries = 0  # item attempts beyond the first, for progress reports
    stop = False
    keys = [item_key(item) for item in items]
    # Resume: items that succeeded in an earlier run of this step keep their results.
    earlier = ctx.prior_items
    for i in range(total):
        record = earlier.get(str(i))
        if record and record.get("status") == "completed" and record.get("key") == keys[i]:
            results[i], ok[i] = record.get("result"), True
            done += 1
    if done:
        ctx.progress(done, total, f"{done}/{total} items ({done} from an earlier run)")

    with ThreadPoolExecutor(
        max_workers=inputs.max_workers, thread_name_prefix=f"batch-{ctx.step}"
    ) as pool:
        for chunk_start in range(0, total, inputs.chunk_size):
            if ctx.remaining() == 0:
                raise StepTimeoutError(f"step '{ctx.step}': timed out after {done}/{total} items")
            # Chunks run one after another; items of a chunk run side by side.
            chunk = [i for i in range(chunk_start, min(chunk_start + inputs.chunk_size, total)) if not ok[i]]
            if not chunk:
                continue
            tries = {i: [int((earlier.get(str(i)) or {}).get("attempts") or 0)] for i in chunk}
            futures: dict[Future[Any], int] = {
                pool.submit(_run_item, ctx, inputs, raw, items[i], i, tries[i]): i for i in chunk
            }
            finished: dict[str, dict[str, Any]] = {}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                    ok[i] = True
                    finished[str(i)] = {"status": "completed", "result": results[i],
                                        "attempts": tries[i][0], "key": keys[i]}
                except Exception as err:
                    failed.append(
                        {
                            "index": i,
                            "item": items[i],
                            "error": _describe(err),
                            "error_type": type(err).__name__,
                        }
                    )
                    finished[str(i)] = {"status": "failed", "error": _describe(err),
                                        "attempts": tries[i][0], "key": keys[i]}
                done += 1
                retries += max(0, tries[i][0] - 1)
                # Progress is reported from this thread only, never from the pool.
                ctx.progress(done, total, f"{done}/{total} items", failed=len(failed), retries=retries)
            # One durable record per chunk: a kill loses at most the chunk in flight.
            ctx.record_items(finished)
            # Once the step is bound to fail, later chunks would only waste work.
            limit = inputs.max_failed_items
            if (inputs.fail_on_item_error and failed) or (
                limit is not None and len(failed) > limit
            ):
                stop = True
                break

    failed.sort(key=lambda entry: entry["index"])
    processed = [item for item, good in zip(items, ok, strict=True) if good]
    result = {
        "processed": processed,
        "failed": failed,
        "results": results,
        "stats": {
            "total": total,
            "processed": len(processed),
            "failed": len(failed),
            "skipped": total - done,
            "success_rate": 100.0 * len(processed) / total if total else 100.0,
            "duration": round(time.monotonic() - started, 6),
        },
    }
    if stop:
        first = failed[0]
        raise BatchItemsFailed(
            f"step '{ctx.step}': {len(failed)} of {total} items failed "
            f"(first: item {first['index']}: {first['error']})",
            result=result,
        )
    return result
