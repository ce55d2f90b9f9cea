"""Reading runs: ``status``, ``runs`` and ``logs``, wherever the runs are kept."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..exceptions import StoreUnavailable, UsageError
from ..settings import get_settings
from ..state.document import parse_iso
from ..state.locate import LocatedRun, list_runs, locate_run
from ..state.progress import run_progress
from ..state.stalls import stalled_steps
from .models import LogEntry, RunList, RunStatus, RunSummary, StepOutput, StepState

LOG_LIMIT = 1_000_000  # characters of a step log returned at most (the rest is on disk)
_DONE = ("completed", "skipped", "failed")


def _roots(base_dir: str | Path | None) -> list[Path] | None:
    return [Path(base_dir)] if base_dir else None


def locate(run: str, *, base_dir: str | Path | None = None) -> LocatedRun:
    """The run named by a run id or a workspace path (see :func:`state.locate.locate_run`)."""
    return locate_run(str(run), roots=_roots(base_dir))


def _dependencies(doc: dict[str, Any], order: list[str]) -> dict[str, list[str]]:
    deps = (doc.get("plan") or {}).get("deps")
    if isinstance(deps, dict):
        return {name: list(deps.get(name) or []) for name in order}
    return {name: [order[i - 1]] if i else [] for i, name in enumerate(order)}


def step_states(doc: dict[str, Any], stalled: dict[str, str] | None = None) -> list[StepState]:
    """One row per planned step (pending ones too), in plan order."""
    records = doc["execution_state"]["step_outputs"]
    order = list((doc.get("plan") or {}).get("order") or records)
    order += [n for n in records if n not in order]
    deps = _dependencies(doc, order)
    stalled = stalled or {}
    rows = []
    for name in order:
        record = records.get(name, {})
        rows.append(StepState(
            step=name,
            status=record.get("status", "pending"),
            attempts=record.get("attempt"),
            duration=record.get("duration"),
            host=record.get("host"),
            error=record.get("error_message") or record.get("error"),
            reason=record.get("reason"),
            progress=record.get("progress") or None,
            resources=record.get("resources"),
            depends_on=deps.get(name, []),
            stalled=stalled.get(name),
        ))
    return rows


def secret_names(doc: dict[str, Any]) -> list[str]:
    """The secrets a run's workflow declares (names; their values never leave the process)."""
    declared = (doc.get("workflow") or {}).get("secrets") or []
    return [str(name) for name in declared] if isinstance(declared, list) else []


def status_of(located: LocatedRun) -> RunStatus:
    """A located run's state as the API returns it."""
    doc = located.doc
    rows = step_states(doc, stalled_steps(located) if doc.get("status") == "running" else {})
    state = doc["execution_state"]
    return RunStatus(
        run_id=located.run_id,
        workflow=doc.get("name"),
        status=doc.get("status"),
        workspace=str(located.workspace) if located.workspace else doc.get("workspace"),
        start_time=doc.get("start_time"),
        last_updated=doc.get("last_updated"),
        current_step=state.get("current_step"),
        failed_step=state.get("failed_step"),
        steps_done=sum(1 for r in rows if r.status in _DONE),
        steps_total=len(rows),
        lost_by_store=located.lost_by_store,
        store=located.source,
        warning=located.warning,
        mode=doc.get("mode"),
        params=doc.get("params") or {},
        trigger=doc.get("trigger"),
        flags=doc.get("flags") or {},
        history=doc.get("history") or [],
        progress=run_progress(doc),
        steps=rows,
        secrets=secret_names(doc),
    )


def status(run: str, *, base_dir: str | Path | None = None) -> RunStatus:
    """A run's state, its steps, progress and history; RunNotFound when nowhere."""
    return status_of(locate(run, base_dir=base_dir))


def _duration(row: dict[str, Any], now: float) -> float | None:
    started = parse_iso(row.get("start_time"))
    if started is None:
        return None
    end = now if row.get("status") == "running" else parse_iso(row.get("last_updated"))
    return round(max(0.0, end - started), 3) if end is not None else None


def _summary(row: dict[str, Any], now: float) -> RunSummary:
    return RunSummary(
        run_id=str(row["workflow_id"]), workflow=row.get("name"), status=row.get("status"),
        start_time=row.get("start_time"), last_updated=row.get("last_updated"),
        workspace=row.get("workspace"), current_step=row.get("current_step"),
        steps_done=row.get("steps_done"), steps_total=row.get("steps_total"),
        hosts=row.get("hosts") or [], duration=_duration(row, now),
        store=row.get("store", "workspace"), trigger=row.get("trigger"))


def watch(run: str, *, base_dir: str | Path | None = None, interval: float = 1.0,
          on_notice: Callable[[str], None] | None = None) -> Iterator[RunStatus]:
    """A run's state every ``interval`` seconds until it is no longer running.

    A Redis that goes away is ridden out: ``on_notice`` hears once that it was lost and
    once that it is back; meanwhile the run's workspace is shown if one holds it.  Past
    ``YAML_WORKFLOW_RECONNECT_TIMEOUT`` it raises StoreUnavailable with what it last knew.
    """
    notice = on_notice or (lambda text: None)
    lost_at: float | None = None
    last: RunStatus | None = None
    limit = get_settings().reconnect_timeout
    while True:
        current: RunStatus | None = None
        problem: str | None = None
        try:
            current = status(run, base_dir=base_dir)
            problem = current.warning
        except StoreUnavailable as err:
            problem = err.message
        if problem:
            if lost_at is None:
                lost_at = time.monotonic()
                notice(f"lost Redis ({problem}); reconnecting for up to {limit:g}s")
            elif time.monotonic() - lost_at >= limit:
                known = f"{last.status}, {last.steps_done}/{last.steps_total} steps" if last else "nothing yet"
                raise StoreUnavailable(f"Redis unreachable for {limit:g} s; last recorded: {known}",
                                       hint=f"look again with `yaml-workflow status {run}`")
        elif lost_at is not None:
            notice(f"reconnected to Redis after {time.monotonic() - lost_at:.0f}s")
            lost_at = None
        if current is not None:
            last = current
            yield current
            if current.status != "running" and not problem:
                return
        time.sleep(interval)


def runs(*, base_dir: str | Path | None = None, limit: int | None = 50, offset: int = 0,
         status: str | None = None, workflow: str | None = None,
         schedule: str | None = None) -> RunList:
    """Runs in the state Redis (when configured) and the workspaces, newest first, filtered.

    A page (``limit`` rows from ``offset``) reads Redis only as far as it needs, so the
    first page of a store with many runs is cheap; ``total`` is None when not counted.
    """
    if offset < 0 or (limit is not None and limit < 1):
        raise UsageError(f"a page needs offset >= 0 and limit >= 1 (got offset {offset}, limit {limit})")

    def match(row: dict[str, Any]) -> bool:
        trigger = row.get("trigger") or {}
        return ((not status or row.get("status") == status)
                and (not workflow or row.get("name") == workflow)
                and (not schedule or (trigger.get("type") == "schedule" and trigger.get("name") == schedule)))

    filtered = bool(status or workflow or schedule)
    listing = list_runs(roots=_roots(base_dir), limit=limit, offset=offset,
                        match=match if filtered else None)
    now = time.time()
    return RunList(runs=[_summary(r, now) for r in listing.rows], store=listing.store, sources=listing.sources,
                   warnings=listing.warnings, total=listing.total, offset=offset, limit=limit,
                   more=listing.more)


def outputs(run: str, *, step: str | None = None, base_dir: str | Path | None = None) -> list[StepOutput]:
    """What each step (or the one ``step``) recorded: its result, stored masked as everywhere."""
    located = locate(run, base_dir=base_dir)
    records = located.doc["execution_state"]["step_outputs"]
    names = [r.step for r in step_states(located.doc)]
    if step is not None and step not in names:
        raise UsageError(f"run {located.run_id} has no step '{step}'",
                         hint=f"its steps: {', '.join(names[:20])}")
    found = []
    for name in [step] if step is not None else names:
        record = records.get(name, {})
        found.append(StepOutput(step=name, status=record.get("status", "pending"),
                                result=record.get("result"), has_result="result" in record))
    return found


def logs(run: str, *, step: str | None = None, base_dir: str | Path | None = None,
         limit: int = LOG_LIMIT) -> list[LogEntry]:
    """The step logs of a run, read from its workspace (only files of the run's own steps)."""
    from ..engine.step_log import log_path

    located = locate(run, base_dir=base_dir)
    if located.workspace is None:
        raise UsageError(f"run {located.run_id} has no workspace on this machine")
    names = [r.step for r in step_states(located.doc)]
    if step is not None and step not in names:
        raise UsageError(f"run {located.run_id} has no step '{step}'",
                         hint=f"its steps: {', '.join(names[:20])}")
    entries = []
    root = located.workspace.resolve()
    for name in [step] if step else names:
        path = log_path(located.workspace, name)
        if not path.is_file() or not path.resolve().is_relative_to(root):
            continue  # a log that is a link out of the workspace is not the run's to show
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(limit + 1)
        entries.append(LogEntry(step=name, path=str(path), text=text[:limit], truncated=len(text) > limit))
    if step and not entries:
        raise UsageError(f"no log for step '{step}' in {located.workspace}",
                         hint="the step has not run yet, or had nothing to log")
    return entries
