"""The run's state document and the transitions that change it.

The document has the seed's structure (``workflow_id``, ``name``, ``start_time``,
``last_updated``, ``status``, ``execution_state`` {``status``, ``current_step``,
``failed_step``, ``step_outputs``, ``retry_state``}, ``variables``) plus what resume
needs (``params``, ``fingerprints``, ``history``, the compiled ``workflow``).

Every change is a *transition*: a small JSON dict with a kind ``t``.  :func:`apply` is
the one place that says what a transition does to the document; the memory store, the
JSON mirror and the Redis store's reader all go through it, so the three cannot
disagree.
"""

from __future__ import annotations

import copy
import os
import socket
import time
from datetime import datetime, timezone
from typing import Any

SCHEMA_VERSION = 1

# Run statuses and step statuses (DESIGN.md, Names).
RUNNING, COMPLETED, FAILED, CANCELLED = "running", "completed", "failed", "cancelled"
RUN_STATUSES = (RUNNING, COMPLETED, FAILED, CANCELLED)
FINISHED = (COMPLETED, FAILED, CANCELLED)
PENDING, RETRYING, SKIPPED = "pending", "retrying", "skipped"
STEP_STATUSES = (PENDING, RUNNING, RETRYING, COMPLETED, FAILED, SKIPPED)

HOST = socket.gethostname()


def now_iso(ts: float | None = None) -> str:
    """UTC timestamp in ISO 8601 with a Z, as the seed writes it."""
    moment = datetime.fromtimestamp(ts if ts is not None else time.time(), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp (``Z`` or an offset), None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def new_document(header: dict[str, Any]) -> dict[str, Any]:
    """An empty document for a run described by a ``run`` transition."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "workflow_id": header["workflow_id"],
        "name": header.get("name"),
        "start_time": header.get("start_time") or now_iso(),
        "last_updated": header.get("start_time") or now_iso(),
        "status": header.get("status", RUNNING),
        "workflow_file": header.get("workflow_file"),
        "workspace": header.get("workspace"),
        "run_number": header.get("run_number"),
        "params": header.get("params", {}),
        "execution_state": {
            "status": header.get("status", RUNNING),
            "current_step": None,
            "failed_step": None,
            "step_outputs": {},
            "retry_state": {},
        },
        "variables": header.get("variables", {}),
        "fingerprints": header.get("fingerprints", {}),
        "history": [],
        "flags": {},
        "workflow": header.get("workflow"),
        "plan": header.get("plan"),
    }
    # param_secrets: params stored as references to secrets, by name (engine.secrets).
    for key in ("env", "mode", "options", "trigger", "workflow_digest", "params_digest", "param_secrets"):
        if key in header:
            doc[key] = header[key]
    return doc


def run_header(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``run`` transition that would recreate ``doc``'s header."""
    keys = (
        "workflow_id", "name", "start_time", "status", "workflow_file", "workspace",
        "run_number", "params", "variables", "fingerprints", "workflow", "plan", "env", "mode",
        "options", "trigger", "workflow_digest", "params_digest", "param_secrets",
    )
    header = {k: doc.get(k) for k in keys if k in doc}
    header["t"] = "run"
    return header


def step_event(step: str, status: str, **fields: Any) -> dict[str, Any]:
    """A step transition (status plus whatever the caller records: result, error...)."""
    event = {"t": "step", "step": step, "status": status, "at": time.time()}
    event.update(fields)
    return event


def status_event(status: str, **fields: Any) -> dict[str, Any]:
    """A run status transition."""
    event = {"t": "status", "status": status, "at": time.time()}
    event.update(fields)
    return event


def history_event(kind: str, **fields: Any) -> dict[str, Any]:
    """An entry of the execution history (start, resume, retry, skip, cancel)."""
    entry = {"event": kind, "at": now_iso(), "host": HOST, "pid": os.getpid()}
    entry.update(fields)
    return {"t": "history", "entry": entry, "at": time.time()}


# Fields of a step transition copied into the step's record.
STEP_FIELDS = (
    "status", "result", "attempt", "attempts", "error", "error_type", "error_message",
    "reason", "fingerprint", "started_at", "finished_at", "duration", "host", "pid",
    "progress", "worker", "resources", "action", "proc",
)


def apply(doc: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """Apply one transition to ``doc`` in place and return it."""
    kind = event.get("t")
    at = event.get("at")
    if kind == "run":
        fresh = new_document(event)
        fresh["history"] = doc.get("history", []) if doc else []
        doc.clear()
        doc.update(fresh)
        return doc
    state = doc["execution_state"]
    if kind == "step":
        _apply_step(doc, state, event)
    elif kind == "status":
        status = event["status"]
        doc["status"] = state["status"] = status
        if "failed_step" in event:
            state["failed_step"] = event["failed_step"]
        if "current_step" in event:
            state["current_step"] = event["current_step"]
    elif kind == "var":
        doc.setdefault("variables", {})[event["key"]] = event["value"]
    elif kind == "history":
        doc.setdefault("history", []).append(event["entry"])
    elif kind == "progress":
        record = state["step_outputs"].setdefault(event["step"], {"status": RUNNING})
        record["progress"] = event["progress"]
    elif kind == "proc":
        # The step's latest subprocess (pid, start time, host): a resume kills it if it
        # outlived the process that ran the step.
        record = state["step_outputs"].setdefault(event["step"], {"status": RUNNING})
        record["proc"] = event["proc"]
    elif kind == "items":
        # A batch's finished items (one transition per chunk): index -> {status, result...}
        record = state["step_outputs"].setdefault(event["step"], {"status": RUNNING})
        record.setdefault("items", {}).update(event["items"])
    elif kind == "flag":
        doc.setdefault("flags", {})[event["flag"]] = event.get("value", True)
    elif kind == "reset":
        # Resume from a step: forget the records of the steps that will run again.
        for name in event.get("steps", []):
            old = state["step_outputs"].pop(name, None)
            if old and "items" in old:  # item records outlive a reset (batch resume)
                state["step_outputs"][name] = {"items": old["items"]}
            state["retry_state"].pop(name, None)
        state["failed_step"] = None
    elif kind == "params":
        doc["params"] = event["params"]
        doc["param_secrets"] = event.get("param_secrets") or []
        if "params_digest" in event:
            doc["params_digest"] = event["params_digest"]
    if at is not None:
        doc["last_updated"] = now_iso(at)
    return doc


def _apply_step(doc: dict[str, Any], state: dict[str, Any], event: dict[str, Any]) -> None:
    name = event["step"]
    status = event["status"]
    outputs = state["step_outputs"]
    record = outputs.get(name)
    if record is None or status == RUNNING and record.get("status") in (COMPLETED, SKIPPED, FAILED):
        # A fresh record; a batch's item records survive so a re-run can reuse them.
        record = {"items": record["items"]} if record and "items" in record else {}
        outputs[name] = record
    for key in STEP_FIELDS:
        if key in event:
            record[key] = event[key]
    if status in (COMPLETED, SKIPPED):
        for stale in ("error", "error_type", "error_message"):
            record.pop(stale, None)
        state["retry_state"].pop(name, None)
    if status == RUNNING:
        state["current_step"] = name
    if status == RETRYING:
        state["retry_state"][name] = {
            "attempt": event.get("attempt", 1),
            "max_attempts": event.get("max_attempts"),
            "next_delay": event.get("next_delay"),
            "last_error": event.get("error"),
        }
    if "fingerprint" in event and event["fingerprint"] is not None:
        doc.setdefault("fingerprints", {})[name] = event["fingerprint"]


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The few fields that list views show."""
    state = doc.get("execution_state", {})
    steps = state.get("step_outputs", {})
    return {
        "workflow_id": doc.get("workflow_id"),
        "name": doc.get("name"),
        "status": doc.get("status"),
        "start_time": doc.get("start_time"),
        "last_updated": doc.get("last_updated"),
        "workspace": doc.get("workspace"),
        "current_step": state.get("current_step"),
        "steps_done": sum(1 for r in steps.values() if r.get("status") in (COMPLETED, SKIPPED)),
    }


def replay(events: list[dict[str, Any]], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build a document from ``base`` (copied) and transitions."""
    doc = copy.deepcopy(base) if base else {}
    for event in events:
        if not doc and event.get("t") != "run":
            continue  # nothing to apply to until the run header arrives
        apply(doc, event)
    return doc


# --- checking a document read from a file -------------------------------------------
#
# A state file may be truncated, corrupted or edited by hand.  Readers index into it
# freely, so every field they use is checked once, here, and a document that does not
# have the structure above is refused (by the caller, naming the file) instead of
# failing somewhere later with a traceback or being resumed from garbage.


def _text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _mapping(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _iso(value: Any) -> bool:
    return value is None or parse_iso(value) is not None


def _names(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


_TOP_FIELDS: dict[str, Any] = {
    "name": _text, "workflow_file": _text, "workspace": _text, "mode": _text,
    "start_time": _iso, "last_updated": _iso, "run_number": _int,
    "params": _mapping, "env": _mapping, "workflow": _mapping,
    "workflow_digest": _text, "params_digest": _text,
    # Transitions add to these in place: present means a real container.
    "variables": lambda v: isinstance(v, dict), "flags": lambda v: isinstance(v, dict),
    "fingerprints": lambda v: isinstance(v, dict) and all(_text(x) for x in v.values()),
    "history": lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
    "param_secrets": lambda v: isinstance(v, list) and all(
        isinstance(e, dict) and isinstance(e.get("path"), list) and _text(e.get("secret")) for e in v),
}

_RECORD_FIELDS: dict[str, Any] = {
    "attempt": _int, "attempts": _int, "pid": _int,
    "duration": _number, "started_at": _number, "finished_at": _number,
    "error": _text, "error_type": _text, "error_message": _text, "reason": _text,
    "fingerprint": _text, "host": _text,
    "resources": _mapping,
    "proc": lambda v: v is None or (isinstance(v, dict) and _int(v.get("pid")) and _int(v.get("started"))),
    "items": lambda v: _mapping(v) and all(isinstance(x, dict) for x in (v or {}).values()),
}


def _record_problem(name: str, record: Any) -> str | None:
    where = f"execution_state.step_outputs.{name}"
    if not isinstance(record, dict):
        return f"{where}: not an object"
    if "status" in record and record["status"] not in STEP_STATUSES:
        return f"{where}.status: {record['status']!r} is not a step status"
    for key, ok in _RECORD_FIELDS.items():
        if key in record and not ok(record[key]):
            return f"{where}.{key}: a {type(record[key]).__name__} is not expected there"
    return None


def _state_problem(state: Any) -> str | None:
    if not isinstance(state, dict):
        return "execution_state: not an object"
    if "status" in state and state["status"] not in RUN_STATUSES:
        return f"execution_state.status: {state['status']!r} is not a run status"
    if not _text(state.get("current_step")):
        return "execution_state.current_step: not a step name"
    failed = state.get("failed_step")
    if failed is not None and (
        not isinstance(failed, dict) or not all(_text(failed.get(k)) for k in ("step_name", "error", "failed_at"))
    ):
        return "execution_state.failed_step: not {step_name, error, failed_at}"
    outputs = state.get("step_outputs")
    if not isinstance(outputs, dict):
        return "execution_state.step_outputs: not an object"
    for name, record in outputs.items():
        problem = _record_problem(name, record)
        if problem:
            return problem
    retry = state.get("retry_state")
    if not isinstance(retry, dict) or not all(isinstance(v, dict) for v in retry.values()):
        return "execution_state.retry_state: not an object of objects"
    return None


def _plan_problem(doc: dict[str, Any]) -> str | None:
    plan = doc.get("plan")
    if plan is not None:
        if not isinstance(plan, dict) or not _names(plan.get("order")):
            return "plan.order: not a list of step names"
        if not _mapping(plan.get("skipped")):
            return "plan.skipped: not an object"
        deps = plan.get("deps")
        if not _mapping(deps) or not all(_names(v) for v in (deps or {}).values()):
            return "plan.deps: not an object of step name lists"
    options = doc.get("options")
    if options is not None and (
        not isinstance(options, dict) or not _text(options.get("flow"))
        or not _text(options.get("start_from")) or not _names(options.get("skip_steps"))
    ):
        return "options: not {flow, start_from, skip_steps}"
    return None


def document_problem(doc: Any, *, mirror_key: str = "mirror") -> str | None:
    """What is wrong with the structure of a state document, or None when nothing is."""
    if not isinstance(doc, dict):
        return "does not hold a JSON object"
    version = doc.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        return f"has schema version {version!r}; this release reads version {SCHEMA_VERSION}"
    missing = [k for k in ("workflow_id", "execution_state") if k not in doc]
    if missing:
        return f"lacks {', '.join(missing)}; it is not a run state file"
    if not isinstance(doc["workflow_id"], str) or not doc["workflow_id"]:
        return "is malformed: workflow_id: not a run id"
    if "status" in doc and doc["status"] not in RUN_STATUSES:
        return f"is malformed: status: {doc['status']!r} is not a run status"
    for key, ok in _TOP_FIELDS.items():
        if key in doc and not ok(doc[key]):
            return f"is malformed: {key}: a {type(doc[key]).__name__} is not expected there"
    problem = _state_problem(doc["execution_state"]) or _plan_problem(doc)
    if problem:
        return f"is malformed: {problem}"
    mirror = doc.get(mirror_key)
    if mirror is not None:
        offsets = mirror.get("offsets") if isinstance(mirror, dict) else None
        if not isinstance(offsets, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in offsets.values()
        ):
            return f"is malformed: {mirror_key}.offsets: not an object of byte offsets"
    return None


_EVENT_FIELDS: dict[str, dict[str, Any]] = {
    "run": {"workflow_id": lambda v: isinstance(v, str) and bool(v)},
    "step": {"step": lambda v: isinstance(v, str), "status": lambda v: v in STEP_STATUSES},
    "status": {"status": lambda v: v in RUN_STATUSES},
    "var": {"key": lambda v: isinstance(v, str), "value": lambda v: True},
    "history": {"entry": lambda v: isinstance(v, dict)},
    "progress": {"step": lambda v: isinstance(v, str), "progress": lambda v: True},
    "items": {"step": lambda v: isinstance(v, str), "items": lambda v: isinstance(v, dict)},
    "proc": {"step": lambda v: isinstance(v, str),
             "proc": lambda v: isinstance(v, dict) and _int(v.get("pid")) and _int(v.get("started"))},
    "flag": {"flag": lambda v: isinstance(v, str)},
    "reset": {"steps": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)},
    "params": {"params": lambda v: isinstance(v, dict)},
}


def event_problem(event: Any) -> str | None:
    """What keeps ``event`` from being a transition :func:`apply` can take, or None."""
    if not isinstance(event, dict) or not isinstance(event.get("t"), str):
        return "not a transition"
    if not _number(event.get("at")):
        return "its time is not a number"
    for key, ok in _EVENT_FIELDS.get(event["t"], {}).items():
        if key not in event or not ok(event[key]):
            return f"a {event['t']} transition with a bad {key}"
    if event["t"] == "step":
        fields = {k: event[k] for k in _RECORD_FIELDS if k in event}
        problem = _record_problem(event["step"], fields)
        if problem:
            return problem
    return None
