"""How a run lies in Redis, and what each transition does to it (used by :mod:`.redis`).

Layout (``P`` = key prefix, ``$YAML_WORKFLOW_KEY_PREFIX``, default ``ywf``)::

    P:runs                  sorted set   run id, scored by start time (``runs``, ``clean``)
    P:run:<id>              hash  run fields: name, status, current_step, failed_step,
                                  start_time, last_updated, params, workflow, plan, ...
                                  plus ``fingerprint:<step>``, ``retry:<step>``, ``flag:<name>``
    P:run:<id>:steps        hash  ``<step>.<field>`` -> JSON (the step's status record)
    P:run:<id>:outputs      hash  step -> result JSON
    P:run:<id>:vars         hash  variable -> JSON
    P:run:<id>:history      list  history entries (JSON)
    P:run:<id>:lease        string  the lease (JSON), kept past expiry so holders show

Plain-text run fields (ids, names, statuses, times, paths) are stored as they are so
``redis-cli`` and Lua scripts read them directly; every other value is JSON.

:func:`queue_event` translates a transition into HSET/HDEL/RPUSH commands that do to
the hashes what :func:`..document.apply` does to the document, field by field.  The one
thing ``apply`` decides from what is already stored is whether a ``running`` step starts
a fresh record (its last record is done) or adds to it.  That is why step records are
stored field by field: adding to one is a plain HSET, and the fresh-record case is a
short Lua script, queued in the same MULTI, that clears the step's fields when its
stored status is done.  The script never decodes JSON (Redis's cjson rounds floats to
14 digits and turns ``[]`` into ``{}``), and it is sent by body (EVAL), not by SHA: a
restarted or flushed script cache can never fail half a transaction with NOSCRIPT.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..document import (
    COMPLETED,
    RETRYING,
    RUNNING,
    SKIPPED,
    STEP_FIELDS,
    new_document,
    now_iso,
    parse_iso,
)

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

# A ``running`` step after a done one starts a fresh record (document._apply_step).
_FRESH_RECORD = """
local status = redis.call('HGET', KEYS[1], ARGV[1] .. '.status')
if status == ARGV[2] or status == ARGV[3] or status == ARGV[4] then
  local fields = {}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[1] .. '.' .. ARGV[i] end
  redis.call('HDEL', KEYS[1], unpack(fields))
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 0
"""
# steps_done of a run for list views, counted server-side.
STEPS_DONE = """
local flat = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #flat, 2 do
  if string.sub(flat[i], -7) == '.status' and (flat[i + 1] == ARGV[1] or flat[i + 1] == ARGV[2]) then
    n = n + 1
  end
end
return n
"""


def dumps(value: Any) -> str:
    """Compact JSON; ``default=str`` as in the mirror, so both hold the same text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def start_score(start_time: Any) -> float:
    """The run index score of a start time (now when it does not parse)."""
    moment = parse_iso(start_time)
    return time.time() if moment is None else moment


class RunKeys:
    """The key names of one run."""

    def __init__(self, prefix: str, run_id: str) -> None:
        self.run = f"{prefix}:run:{run_id}"
        self.steps = f"{self.run}:steps"
        self.outputs = f"{self.run}:outputs"
        self.vars = f"{self.run}:vars"
        self.history = f"{self.run}:history"
        self.lease = f"{self.run}:lease"

    @property
    def data(self) -> tuple[str, ...]:
        """Every key holding the run's state (not its lease)."""
        return (self.run, self.steps, self.outputs, self.vars, self.history)


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


# --- transitions -> commands ---------------------------------------------------------


def queue_document(pipe: Any, keys: RunKeys, prefix: str, doc: dict[str, Any], *, keep_history: bool) -> None:
    """Replace the run's hashes with ``doc`` (history kept when a ``run`` event restarts it)."""
    encoded = encode(doc)
    drop = [k for k in keys.data if k != keys.history or not keep_history]
    pipe.delete(*drop)
    for key, name in ((keys.run, "run"), (keys.steps, "steps"), (keys.outputs, "outputs"), (keys.vars, "vars")):
        if encoded[name]:
            pipe.hset(key, mapping=encoded[name])
    if encoded["history"] and not keep_history:
        pipe.rpush(keys.history, *encoded["history"])
    pipe.zadd(f"{prefix}:runs", {doc["workflow_id"]: start_score(doc.get("start_time"))})


def _queue_step(pipe: Any, keys: RunKeys, event: dict[str, Any]) -> None:
    name, status = event["step"], event["status"]
    if status == RUNNING:
        pipe.eval(_FRESH_RECORD, 2, keys.steps, keys.outputs, name, *_DONE_JSON, *_RECORD_FIELDS)
    fields = {f"{name}.{k}": dumps(event[k]) for k in _RECORD_FIELDS if k in event}
    if fields:
        pipe.hset(keys.steps, mapping=fields)
    if "result" in event:
        pipe.hset(keys.outputs, name, dumps(event["result"]))
    if status in (COMPLETED, SKIPPED):
        pipe.hdel(keys.steps, *(f"{name}.{k}" for k in _STALE_ON_SUCCESS))
        pipe.hdel(keys.run, f"retry:{name}")
    if status == RUNNING:
        pipe.hset(keys.run, "current_step", name)
    if status == RETRYING:
        pipe.hset(keys.run, f"retry:{name}", dumps({
            "attempt": event.get("attempt", 1), "max_attempts": event.get("max_attempts"),
            "next_delay": event.get("next_delay"), "last_error": event.get("error"),
        }))
    if event.get("fingerprint") is not None:
        pipe.hset(keys.run, f"fingerprint:{name}", dumps(event["fingerprint"]))


def _set_or_clear(pipe: Any, key: str, field: str, value: Any) -> None:
    if value is None:
        pipe.hdel(key, field)
    else:
        pipe.hset(key, field, _run_field(field, value))


def queue_event(pipe: Any, keys: RunKeys, prefix: str, event: dict[str, Any]) -> None:
    """Queue the commands that do to the hashes what ``apply`` does to the document."""
    kind = event.get("t")
    if kind == "run":
        queue_document(pipe, keys, prefix, new_document(event), keep_history=True)
        return  # apply() leaves last_updated at the header's start time
    if kind == "step":
        _queue_step(pipe, keys, event)
    elif kind == "status":
        pipe.hset(keys.run, "status", event["status"])
        for field in ("failed_step", "current_step"):
            if field in event:
                _set_or_clear(pipe, keys.run, field, event[field])
    elif kind == "var":
        pipe.hset(keys.vars, str(event["key"]), dumps(event["value"]))
    elif kind == "history":
        pipe.rpush(keys.history, dumps(event["entry"]))
    elif kind == "progress":
        pipe.hsetnx(keys.steps, f"{event['step']}.status", dumps(RUNNING))
        pipe.hset(keys.steps, f"{event['step']}.progress", dumps(event["progress"]))
    elif kind == "proc":
        pipe.hsetnx(keys.steps, f"{event['step']}.status", dumps(RUNNING))
        pipe.hset(keys.steps, f"{event['step']}.proc", dumps(event["proc"]))
    elif kind == "items":
        pipe.hsetnx(keys.steps, f"{event['step']}.status", dumps(RUNNING))
        pipe.hset(keys.steps, mapping={f"{event['step']}.item:{i}": dumps(v) for i, v in event["items"].items()})
    elif kind == "flag":
        pipe.hset(keys.run, f"flag:{event['flag']}", dumps(event.get("value", True)))
    elif kind == "reset":
        for name in event.get("steps", []):
            pipe.hdel(keys.steps, *(f"{name}.{k}" for k in _RECORD_FIELDS))
            pipe.hdel(keys.outputs, name)
            pipe.hdel(keys.run, f"retry:{name}")
        pipe.hdel(keys.run, "failed_step")
    elif kind == "params":
        pipe.hset(keys.run, "params", dumps(event["params"]))
    if event.get("at") is not None:
        pipe.hset(keys.run, "last_updated", now_iso(event["at"]))
