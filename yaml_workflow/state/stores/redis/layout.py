"""How a run's document lies in Redis, and what each transition does to it.

The keys are :mod:`.keys`'s.  Plain-text run fields (ids, names, statuses, times,
paths) are stored as they are so ``redis-cli`` and Lua scripts read them directly; every
other value is JSON.

:func:`event_ops` translates a transition into operations (Redis commands, see
``lua/_ops.lua``) that do to the hashes what :func:`..document.apply` does to the
document, field by field; the ``apply`` and ``commit`` scripts run them atomically.  The
one thing ``apply`` decides from what is already stored is whether a ``running`` step
starts a fresh record (its last record is done) or adds to it.  That is why step records
are stored field by field: adding to one is a plain HSET, and the fresh-record case is
the FRESH operation, which clears the step's fields when its stored status is done.  No
script ever decodes a stored JSON value (Redis's cjson rounds floats to 14 digits and
turns ``[]`` into ``{}``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ...document import (
    COMPLETED,
    RETRYING,
    RUNNING,
    SKIPPED,
    STEP_FIELDS,
    new_document,
    now_iso,
    parse_iso,
)
from .keys import RunKeys

Op = list[str]

# Run-hash fields stored as plain text; every other field is JSON.
_TEXT_FIELDS = frozenset(
    ("workflow_id", "name", "start_time", "last_updated", "status", "workflow_file",
     "workspace", "current_step")
)
# Top-level document keys every document has (None when unset, so stored as absent).
_BASE_FIELDS = (
    "schema_version", "workflow_id", "name", "start_time", "last_updated", "status",
    "workflow_file", "workspace", "run_number", "params", "workflow", "plan",
)
# Document keys that live in their own hash or under prefixed run fields.
_STRUCTURED = frozenset(("execution_state", "variables", "fingerprints", "history", "flags"))
_MAPS = {"fingerprint": "fingerprints", "flag": "flags", "retry": "retry_state"}
_RECORD_FIELDS = tuple(f for f in STEP_FIELDS if f != "result")  # results go to :outputs
_STALE_ON_SUCCESS = ("error", "error_type", "error_message")
_DONE_JSON = tuple(json.dumps(s) for s in (COMPLETED, SKIPPED, "failed"))
# Arguments per operation at most (Lua's unpack has a limit; a big document is split).
_CHUNK = 500


def dumps(value: Any) -> str:
    """Compact JSON; ``default=str`` as in the mirror, so both hold the same text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def start_score(start_time: Any) -> float:
    """The run index score of a start time (now when it does not parse)."""
    moment = parse_iso(start_time)
    return time.time() if moment is None else moment


# --- document <-> hashes -------------------------------------------------------------


def _run_field(key: str, value: Any) -> str:
    return value if key in _TEXT_FIELDS and isinstance(value, str) else dumps(value)


def encode(doc: dict[str, Any]) -> dict[str, Any]:
    """The hash contents (and history list) holding ``doc``."""
    state = doc.get("execution_state") or {}
    run: dict[str, str] = {}
    for key, value in doc.items():
        if key in _STRUCTURED or (value is None and key in _BASE_FIELDS):
            continue
        run[key] = _run_field(key, value)
    for key in ("current_step", "failed_step"):
        if state.get(key) is not None:
            run[key] = _run_field(key, state[key])
    for prefix, name in _MAPS.items():
        source = state.get(name) if name == "retry_state" else doc.get(name)
        for item, value in (source or {}).items():
            run[f"{prefix}:{item}"] = dumps(value)
    steps: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for step, record in (state.get("step_outputs") or {}).items():
        for field, value in record.items():
            if field == "result":
                outputs[step] = dumps(value)
            elif field == "items":
                for index, item in value.items():
                    steps[f"{step}.item:{index}"] = dumps(item)
            else:
                steps[f"{step}.{field}"] = dumps(value)
    return {
        "run": run, "steps": steps, "outputs": outputs,
        "vars": {str(k): dumps(v) for k, v in (doc.get("variables") or {}).items()},
        "history": [dumps(entry) for entry in doc.get("history") or []],
    }


def decode(run: dict[str, str], steps: dict[str, str], outputs: dict[str, str],
            variables: dict[str, str], history: list[str]) -> dict[str, Any]:
    """The document held by a run's hashes (the inverse of :func:`encode`)."""
    doc: dict[str, Any] = {key: None for key in _BASE_FIELDS}
    state: dict[str, Any] = {"current_step": None, "failed_step": None, "step_outputs": {}, "retry_state": {}}
    maps: dict[str, dict[str, Any]] = {"fingerprints": {}, "flags": {}, "retry_state": state["retry_state"]}
    for field, raw in run.items():
        prefix, colon, item = field.partition(":")
        if colon and prefix in _MAPS:
            maps[_MAPS[prefix]][item] = json.loads(raw)
            continue
        value = raw if field in _TEXT_FIELDS else json.loads(raw)
        if field in ("current_step", "failed_step"):
            state[field] = value
        else:
            doc[field] = value
    records = state["step_outputs"]
    for field, raw in steps.items():
        step, _, name = field.rpartition(".")
        if name.startswith("item:"):
            records.setdefault(step, {}).setdefault("items", {})[name[5:]] = json.loads(raw)
        else:
            records.setdefault(step, {})[name] = json.loads(raw)
    for step, raw in outputs.items():
        records.setdefault(step, {})["result"] = json.loads(raw)
    state["status"] = doc["status"]
    doc["execution_state"] = state
    doc["variables"] = {k: json.loads(v) for k, v in variables.items()}
    doc["fingerprints"] = maps["fingerprints"]
    doc["flags"] = maps["flags"]
    doc["history"] = [json.loads(entry) for entry in history]
    return doc


# --- transitions -> operations -------------------------------------------------------


def _hset(key: str, mapping: dict[str, str]) -> list[Op]:
    items = [x for pair in mapping.items() for x in pair]
    return [["HSET", key, *items[i:i + _CHUNK]] for i in range(0, len(items), _CHUNK)]


def document_ops(keys: RunKeys, index: str, doc: dict[str, Any], *, keep_history: bool) -> list[Op]:
    """Replace the run's hashes with ``doc`` (history kept when a ``run`` event restarts it)."""
    encoded = encode(doc)
    drop = [k for k in keys.data if k != keys.history or not keep_history]
    ops: list[Op] = [["DEL", *drop]]
    for key, name in ((keys.run, "run"), (keys.steps, "steps"), (keys.outputs, "outputs"), (keys.vars, "vars")):
        if encoded[name]:
            ops += _hset(key, encoded[name])
    history = encoded["history"]
    if history and not keep_history:
        ops += [["RPUSH", keys.history, *history[i:i + _CHUNK]] for i in range(0, len(history), _CHUNK)]
    ops.append(["ZADD", index, repr(start_score(doc.get("start_time"))), str(doc["workflow_id"])])
    return ops


def _step_ops(keys: RunKeys, event: dict[str, Any]) -> list[Op]:
    name, status = event["step"], event["status"]
    ops: list[Op] = []
    if status == RUNNING:
        ops.append(["FRESH", keys.steps, keys.outputs, name, *_DONE_JSON, *_RECORD_FIELDS])
    fields = {f"{name}.{k}": dumps(event[k]) for k in _RECORD_FIELDS if k in event}
    if fields:
        ops += _hset(keys.steps, fields)
    if "result" in event:
        ops.append(["HSET", keys.outputs, name, dumps(event["result"])])
    if status in (COMPLETED, SKIPPED):
        ops.append(["HDEL", keys.steps, *(f"{name}.{k}" for k in _STALE_ON_SUCCESS)])
        ops.append(["HDEL", keys.run, f"retry:{name}"])
    if status == RUNNING:
        ops.append(["HSET", keys.run, "current_step", name])
    if status == RETRYING:
        ops.append(["HSET", keys.run, f"retry:{name}", dumps({
            "attempt": event.get("attempt", 1), "max_attempts": event.get("max_attempts"),
            "next_delay": event.get("next_delay"), "last_error": event.get("error"),
        })])
    if event.get("fingerprint") is not None:
        ops.append(["HSET", keys.run, f"fingerprint:{name}", dumps(event["fingerprint"])])
    return ops


def _set_or_clear(key: str, field: str, value: Any) -> Op:
    return ["HDEL", key, field] if value is None else ["HSET", key, field, _run_field(field, value)]


def event_ops(keys: RunKeys, index: str, event: dict[str, Any]) -> list[Op]:
    """The operations that do to the hashes what ``apply`` does to the document."""
    kind = event.get("t")
    if kind == "run":
        return document_ops(keys, index, new_document(event), keep_history=True)
        # apply() leaves last_updated at the header's start time
    ops: list[Op] = []
    if kind == "step":
        ops += _step_ops(keys, event)
    elif kind == "status":
        ops.append(["HSET", keys.run, "status", event["status"]])
        ops += [_set_or_clear(keys.run, f, event[f]) for f in ("failed_step", "current_step") if f in event]
    elif kind == "var":
        ops.append(["HSET", keys.vars, str(event["key"]), dumps(event["value"])])
    elif kind == "history":
        ops.append(["RPUSH", keys.history, dumps(event["entry"])])
    elif kind in ("progress", "proc"):
        ops.append(["HSETNX", keys.steps, f"{event['step']}.status", dumps(RUNNING)])
        ops.append(["HSET", keys.steps, f"{event['step']}.{kind}", dumps(event[kind])])
    elif kind == "items":
        ops.append(["HSETNX", keys.steps, f"{event['step']}.status", dumps(RUNNING)])
        ops += _hset(keys.steps, {f"{event['step']}.item:{i}": dumps(v) for i, v in event["items"].items()})
    elif kind == "flag":
        ops.append(["HSET", keys.run, f"flag:{event['flag']}", dumps(event.get("value", True))])
    elif kind == "reset":
        for name in event.get("steps", []):
            ops.append(["HDEL", keys.steps, *(f"{name}.{k}" for k in _RECORD_FIELDS)])
            ops.append(["HDEL", keys.outputs, name])
            ops.append(["HDEL", keys.run, f"retry:{name}"])
        ops.append(["HDEL", keys.run, "failed_step"])
    elif kind == "params":
        ops.append(["HSET", keys.run, "params", dumps(event["params"]),
                    "param_secrets", dumps(event.get("param_secrets") or [])])
        if "params_digest" in event:
            ops.append(["HSET", keys.run, "params_digest", dumps(event["params_digest"])])
    if event.get("at") is not None:
        ops.append(["HSET", keys.run, "last_updated", now_iso(event["at"])])
    return ops
