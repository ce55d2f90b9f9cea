"""Schedules: ``schedule add|list|pause|resume|remove|run-now``, on the fleet's Redis.

A schedule is a workflow file with a ``schedule:`` block, loaded and checked as
``submit`` checks it (its params too) and stored compiled, so neither the beat nor the
workers need the file.  Its name is the workflow's ``name``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..engine.plan import build_plan
from ..exceptions import StoreUnavailable, UsageError, WaitTimeout
from ..settings import get_settings
from ..spec.models import Schedule
from ..spec.params import resolve_params
from ..spec.schedule import Ticks
from ..state.document import now_iso, parse_iso
from ..state.stores.redis import Schedules
from .models import FireResult, ScheduleInfo
from .start import load

POLL = 0.2


def _store() -> Schedules:
    """The schedules of the fleet's Redis (one line, exit 3, when it cannot be reached)."""
    from ..executors.celery.preflight import check_reachable

    url = get_settings().effective_state_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UsageError("schedules live in the fleet's Redis",
                         hint="set YAML_WORKFLOW_BROKER_URL (or YAML_WORKFLOW_STATE_URL) to redis://...")
    check_reachable(url, "state store", StoreUnavailable)
    return Schedules(url)


def _timing(definition: dict[str, Any]) -> dict[str, Any]:
    schedule = definition.get("schedule") or {}
    return {k: schedule.get(k) for k in ("cron", "every", "timezone")}


def add_schedule(workflow: str | Path) -> ScheduleInfo:
    """Load, check and store a workflow's schedule (replacing one of the same name)."""
    loaded = load(workflow)
    schedule = loaded.schedule
    if schedule is None:
        raise UsageError(f"{workflow} has no `schedule:`",
                         hint="add e.g. `schedule: \"0 3 * * *\"` or `schedule: {every: 5m}`")
    resolve_params(loaded, dict(schedule.params))  # refused now, not at every tick
    build_plan(loaded)
    store = _store()
    definition = {"workflow": loaded.model_dump(mode="json"), "schedule": schedule.model_dump(mode="json"),
                  "source": loaded.source, "added": now_iso()}
    old = store.definition(loaded.name)
    cursor = None
    if old is None or _timing(old) != _timing(definition):
        # From now on: ticks before the schedule existed (or had this timing) never run.
        last = Ticks(schedule).at_or_before(time.time())
        cursor = (last.text, last.at) if last is not None else (now_iso(), time.time())
    store.put(loaded.name, definition, paused=not schedule.enabled, cursor=cursor)
    return _info(store, loaded.name, store.definition(loaded.name) or definition,
                 store.states([loaded.name])[loaded.name])


def _info(store: Schedules, name: str, definition: dict[str, Any], state: dict[str, str],
          recent: int = 0) -> ScheduleInfo:
    schedule = Schedule.model_validate(definition["schedule"])
    paused = state.get("paused") == "1"
    last = _json(state.get("last"))
    run_id = (last or {}).get("run_id")
    cursor_at = float(state.get("cursor_at") or time.time())
    return ScheduleInfo(
        name=name, timing=schedule.timing, catchup=schedule.catchup,
        max_active_runs=schedule.max_active_runs, params=schedule.params, paused=paused,
        source=definition.get("source"), added=definition.get("added"),
        next_tick=None if paused else Ticks(schedule).after(max(cursor_at, time.time())).text,
        cursor=state.get("cursor"), last=last,
        last_status=store.run_status(run_id) if run_id else None,
        recent=store.recent(name, recent) if recent else [])


def _json(text: str | None) -> dict[str, Any] | None:
    import json

    try:
        return dict(json.loads(text)) if text else None
    except ValueError:
        return None


def schedules(*, recent: int = 0) -> list[ScheduleInfo]:
    """Every schedule, by name, with its next tick and last outcome (and ``recent`` log entries)."""
    store = _store()
    definitions = store.definitions()
    states = store.states(sorted(definitions))
    return [_info(store, name, definitions[name], states[name], recent) for name in sorted(definitions)]


def _known(store: Schedules, name: str) -> dict[str, Any]:
    definition = store.definition(name)
    if definition is None:
        known = sorted(store.definitions())
        raise UsageError(f"no schedule named '{name}'",
                         hint=f"schedules: {', '.join(known)}" if known else "add one with `yaml-workflow schedule add FILE`")
    return definition


def pause_schedule(name: str) -> ScheduleInfo:
    """Stop firing a schedule's ticks (a run in progress goes on)."""
    store = _store()
    definition = _known(store, name)
    store.set_paused(name, True)
    return _info(store, name, definition, store.states([name])[name])


def resume_schedule(name: str) -> ScheduleInfo:
    """Fire a paused schedule again, from its next tick (ticks while paused never run)."""
    store = _store()
    definition = _known(store, name)
    last = Ticks(Schedule.model_validate(definition["schedule"])).at_or_before(time.time())
    store.set_paused(name, False, cursor=(last.text, last.at) if last is not None else None)
    return _info(store, name, definition, store.states([name])[name])


def remove_schedule(name: str) -> None:
    """Forget a schedule and its log (its runs stay)."""
    store = _store()
    _known(store, name)
    store.remove(name)


def run_now(name: str, *, timeout: float | None = 60.0) -> FireResult:
    """Fire a tick of the schedule now (paused or not, whatever runs): the run a worker
    made of it; WaitTimeout when no worker decided it within ``timeout`` seconds."""
    from ..executors.celery.app import default_app
    from ..executors.celery.fire import FIRE_TASK

    store = _store()
    definition = _known(store, name)
    ticks = Ticks(Schedule.model_validate(definition["schedule"]))
    tick = ticks.tick(float(int(time.time())))
    default_app().send_task(FIRE_TASK, args=[name, tick.text], kwargs={"forced": True},
                            argsrepr=f"schedule={name} tick={tick.text} (run-now)")
    deadline = None if timeout is None else time.monotonic() + timeout
    at = parse_iso(tick.text)
    assert at is not None
    while deadline is None or time.monotonic() < deadline:
        found = store.outcome(name, at)
        if found is not None:
            return FireResult(name=name, tick=tick.text, outcome=found.get("outcome"),
                              run_id=found.get("run_id"), reason=found.get("reason"))
        time.sleep(POLL)
    raise WaitTimeout(f"no worker fired tick {tick.text} of schedule '{name}' within {timeout:g}s",
                      hint="start a worker (`yaml-workflow worker`); the tick stays queued for it")
