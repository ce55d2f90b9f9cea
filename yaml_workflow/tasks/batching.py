"""The batch algorithm, once: run items, keep their records, the stop rule, the result.

The ``batch`` task runs its items chunk by chunk in one process; on the fleet each chunk
is a Celery task and the last one to finish builds the result.  Both run their items
with :func:`run_items`, decide with :func:`must_stop` and build the step's result with
:func:`batch_result`, so the two cannot disagree.

An item's record (what resume and the fleet's chunks keep) is one of::

    {"status": "completed", "result": ..., "attempts": n, "key": k}
    {"status": "failed", "error": "...", "error_type": "ValueError", "attempts": n, "key": k}
    {"status": "not_run"}            # a fleet chunk that found the step already failing

``key`` is a hash of the item's value: a record is reused only for the very same item.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..exceptions import BatchItemsFailed, TaskError
from ..templating import Namespace
from .context import TaskContext
from .registry import CALL_CONFIG, CALL_KWARGS, TaskSpec

# Template namespaces an item name must not hide.
_NAMESPACES = ("args", "env", "steps", "workflow", "current", "batch", "settings", "error")
# Finished items are handed to `flush` at least this often while a chunk runs, so a
# worker that dies loses only what finished in the last moments.
FLUSH_EVERY = 0.5

ItemRecord = dict[str, Any]


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

    def chunk_indexes(self, chunk: int) -> range:
        """The item indexes of chunk number ``chunk``."""
        return range(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, len(self.items)))


def check_arg_name(step: str, arg_name: str) -> None:
    """The item's variable name must be an identifier that hides no namespace."""
    if not arg_name.isidentifier() or arg_name in _NAMESPACES:
        raise TaskError(
            f"step '{step}': arg_name '{arg_name}' cannot be used",
            hint="use a plain identifier that is not a template namespace, e.g. 'item'",
        )


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


def sub_inputs(inputs: BatchInputs, spec: TaskSpec) -> dict[str, Any]:
    """The sub-task's raw inputs, with the item added when the sub-task takes it."""
    raw = dict(inputs.task.inputs)
    # As in the public dialect, the item is also an input of the sub-task (python_code
    # sees it as a variable).  It goes in as a template naming the extra namespace, so
    # the item value itself is never rendered.  An input the user wrote wins.
    if inputs.arg_name not in raw and _takes_input(spec, inputs.arg_name):
        raw[inputs.arg_name] = "{{ " + inputs.arg_name + " }}"
    return raw


def _namespaces(ctx: TaskContext, inputs: BatchInputs, item: Any, index: int) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "batch": Namespace(
            "batch", item=item, index=index, total=len(inputs.items),
            chunk_index=index // inputs.chunk_size, chunk_size=inputs.chunk_size, name=ctx.step,
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


def run_item(ctx: TaskContext, inputs: BatchInputs, raw: dict[str, Any], item: Any, index: int,
             attempts: list[int]) -> Any:
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


def reusable(inputs: BatchInputs, prior: Mapping[str, ItemRecord], indexes: range | list[int]) -> dict[int, ItemRecord]:
    """Items of ``indexes`` that completed before (a resume, a redelivered chunk) for this very item."""
    found = {}
    for i in indexes:
        record = prior.get(str(i)) or {}
        if record.get("status") == "completed" and record.get("key") == item_key(inputs.items[i]):
            found[i] = dict(record)
    return found


def run_items(ctx: TaskContext, inputs: BatchInputs, raw: dict[str, Any], indexes: list[int], *,
              prior: Mapping[str, ItemRecord] | None = None,
              clean: Callable[[Any], Any] = lambda value: value,
              on_item: Callable[[ItemRecord], None] | None = None,
              flush: Callable[[dict[int, ItemRecord]], None] | None = None) -> dict[int, ItemRecord]:
    """Run items side by side (``max_workers`` threads); their records by index.

    ``prior`` records count their attempts on; ``clean`` masks a result before it is
    kept; ``on_item`` sees each record as it is made, and ``flush`` gets the records made
    since its last call at least every :data:`FLUSH_EVERY` seconds and at the end — both
    are called from this thread, never from the pool.
    """
    prior = prior or {}
    records: dict[int, ItemRecord] = {}
    unflushed: dict[int, ItemRecord] = {}
    keys = {i: item_key(inputs.items[i]) for i in indexes}
    tries = {i: [int((prior.get(str(i)) or {}).get("attempts") or 0)] for i in indexes}
    last_flush = time.monotonic()
    with ThreadPoolExecutor(max_workers=inputs.max_workers, thread_name_prefix=f"batch-{ctx.step}") as pool:
        pending: dict[Future[Any], int] = {
            pool.submit(run_item, ctx, inputs, raw, inputs.items[i], i, tries[i]): i for i in indexes
        }
        while pending:
            finished, _ = wait(list(pending), timeout=FLUSH_EVERY, return_when=FIRST_COMPLETED)
            for future in finished:
                i = pending.pop(future)
                try:
                    result = clean(future.result())
                    json.dumps(result)
                    record = {"status": "completed", "result": result, "attempts": tries[i][0], "key": keys[i]}
                except Exception as err:  # noqa: BLE001 - a failed item is listed, not raised
                    record = {"status": "failed", "error": clean(str(err) or type(err).__name__),
                              "error_type": type(err).__name__, "attempts": tries[i][0], "key": keys[i]}
                records[i] = unflushed[i] = record
                if on_item is not None:
                    on_item(record)
            if flush is not None and unflushed and (not pending or time.monotonic() - last_flush >= FLUSH_EVERY):
                flush(dict(unflushed))
                unflushed.clear()
                last_flush = time.monotonic()
    return records


def must_stop(inputs: BatchInputs, failed: int) -> bool:
    """The stop rule: once true the step fails, and items not yet run are not run."""
    limit = inputs.max_failed_items
    return bool((inputs.fail_on_item_error and failed) or (limit is not None and failed > limit))


def batch_result(inputs: BatchInputs, records: Mapping[int, ItemRecord], duration: float) -> tuple[dict[str, Any], bool]:
    """The step's result ``{processed, failed, results, stats}`` and whether it fails."""
    items, total = inputs.items, len(inputs.items)
    results: list[Any] = [None] * total
    ok = [False] * total
    failed: list[dict[str, Any]] = []
    done = 0
    for i, record in sorted(records.items()):
        status = record.get("status")
        if status == "not_run":
            continue  # the step was already failing
        done += 1
        if status == "completed":
            results[i], ok[i] = record.get("result"), True
        else:
            failed.append({"index": i, "item": items[i], "error": record.get("error"),
                           "error_type": record.get("error_type")})
    processed = [item for item, good in zip(items, ok, strict=True) if good]
    result = {
        "processed": processed, "failed": failed, "results": results,
        "stats": {"total": total, "processed": len(processed), "failed": len(failed),
                  "skipped": total - done,
                  "success_rate": 100.0 * len(processed) / total if total else 100.0,
                  "duration": round(duration, 6)},
    }
    return result, must_stop(inputs, len(failed))


_RESULT_KEYS = frozenset({"processed", "failed", "results", "stats"})


def failed_item_counts(result: Any) -> tuple[int, int] | None:
    """(failed, total) of a batch step's result when some of its items failed, else None.

    What the step lines of ``run`` and ``submit --wait`` add to ``ok STEP``, so that a
    batch that completed with failed items is not mistaken for a clean one.
    """
    if not isinstance(result, dict) or set(result) != _RESULT_KEYS or not isinstance(result["stats"], dict):
        return None
    failed, total = result["stats"].get("failed"), result["stats"].get("total")
    if isinstance(failed, int) and isinstance(total, int) and failed > 0:
        return failed, total
    return None


def items_failed(step: str, result: dict[str, Any]) -> BatchItemsFailed:
    """The error of a batch step that its items failed."""
    failed, total = result["failed"], result["stats"]["total"]
    first = failed[0]
    return BatchItemsFailed(
        f"step '{step}': {len(failed)} of {total} items failed (first: item {first['index']}: {first['error']})",
        result=result,
    )
