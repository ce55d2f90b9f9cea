"""Finding runs from what a user types, in every place runs are kept.

Runs live in two kinds of places: the workspaces under the base dirs (each holds its
run's JSON state), and the state Redis.  The Redis is consulted when one is configured:
``YAML_WORKFLOW_STATE_URL``, or a ``redis://`` broker URL set on purpose (see
:attr:`Settings.redis_state_url`).  A run found in both is read from Redis (the fleet's
truth) with its workspace; a fleet run whose Redis record is gone is shown from its
workspace and marked lost; a Redis that cannot be reached is :class:`StoreUnavailable`
(exit 3) unless a workspace holds the run, which is then shown with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import RunNotFound, StateFileError, StoreUnavailable, UsageError
from ..settings import get_settings, mask_url
from .document import summary
from .mirror import JOURNAL_DIR, STATE_FILE, read_state
from .store import Store
from .stores import open_store
from .stores.json_file import JsonFileStore, find_run_workspace, find_workspaces

WORKSPACE_SOURCE = "workspace"
_MAX_RUN_REF = 4096  # a run id or path longer than this names nothing we could hold


@dataclass
class LocatedRun:
    """A run's document, the store that holds it, and its workspace."""

    run_id: str
    doc: dict[str, Any]
    store: Store
    workspace: Path | None
    # True when the configured store (Redis) lost a fleet run and the mirror stands in.
    lost_by_store: bool = False
    # Where the document was read: the store's URL (password masked) or "workspace".
    source: str = WORKSPACE_SOURCE
    # Set when a configured store could not be reached and a workspace stands in.
    warning: str | None = None


@dataclass
class RunListing:
    """Run summaries from every place, newest first, and what was read."""

    rows: list[dict[str, Any]]
    sources: list[str]
    warnings: list[str] = field(default_factory=list)
    store: str = WORKSPACE_SOURCE  # the state Redis read (masked URL), if one was
    more: bool = False  # rows follow the page
    total: int | None = None  # rows that matched, when every place was read to its end


def is_workspace(path: Path) -> bool:
    """A run workspace: a state file, or the journal of a run not yet compacted."""
    try:
        return (path / STATE_FILE).is_file() or (path / JOURNAL_DIR).is_dir()
    except OSError:  # a name too long for the file system names no workspace
        return False


def workspace_roots(extra: list[Path] | None = None) -> list[Path]:
    """Where workspaces are searched: given dirs, $YAML_WORKFLOW_WORKSPACE_ROOT, ./runs."""
    roots: list[Path] = []
    for root in [*(extra or []), Path(get_settings().workspace_root), Path("runs")]:
        if root not in roots:
            roots.append(root)
    return roots


def redis_store() -> Store | None:
    """The state Redis commands addressing runs consult, or None when none is configured."""
    url = get_settings().redis_state_url
    return open_store(url) if url else None


def _unreachable(store: Store, err: StoreUnavailable) -> str:
    return f"the state store {mask_url(store.url)} cannot be reached ({err.message})"


def _file_store(run_id: str, workspace: Path) -> JsonFileStore:
    store = JsonFileStore(root=workspace.parent)
    store.use_workspace(run_id, workspace)  # not a copy of it under the same root
    return store


def _from_workspace(run_id: str, workspace: Path, doc: dict[str, Any], redis: Store | None,
                    warning: str | None = None) -> LocatedRun:
    """A run whose workspace we hold: a fleet run that Redis should have is marked lost."""
    workspace = workspace.absolute()
    if redis is not None and warning is None and doc.get("mode") == "fleet":
        return LocatedRun(run_id, doc, redis, workspace, lost_by_store=True, source=WORKSPACE_SOURCE)
    return LocatedRun(run_id, doc, _file_store(run_id, workspace), workspace, warning=warning)


def check_run_reference(run: str) -> None:
    """Refuse what cannot name a run: empty, a NUL byte, longer than any path."""
    if not run or len(run) > _MAX_RUN_REF or "\x00" in run:
        raise UsageError(f"'{run[:60]}...' is not a run id or a workspace path" if run else
                         "an empty run id", hint="give a run id (`yaml-workflow runs`) or a workspace path")


def locate_run(run: str, *, roots: list[Path] | None = None) -> LocatedRun:
    """The run named by ``run`` (a run id or a workspace path), wherever it is kept."""
    check_run_reference(run)
    redis = redis_store()
    path = Path(run)
    if is_workspace(path):
        doc = read_state(path)
        run_id = str(doc["workflow_id"])
        if redis is not None:
            try:
                if redis.exists(run_id):
                    return LocatedRun(run_id, redis.load(run_id), redis, path.absolute(),
                                      source=mask_url(redis.url))
            except StoreUnavailable as err:
                return _from_workspace(run_id, path, doc, redis, _unreachable(redis, err))
        return _from_workspace(run_id, path, doc, redis)
    search = workspace_roots(roots)
    unreachable: str | None = None
    if redis is not None:
        try:
            if redis.exists(run):
                doc = redis.load(run)
                workspace = Path(doc["workspace"]) if doc.get("workspace") else None
                return LocatedRun(run, doc, redis, workspace, source=mask_url(redis.url))
        except StoreUnavailable as err:
            unreachable = _unreachable(redis, err)
    found = find_run_workspace(run, search)
    if found is not None:
        return _from_workspace(run, found, read_state(found), redis, unreachable)
    if unreachable is not None:
        raise StoreUnavailable(f"run '{run}': {unreachable}, and no workspace under "
                               f"{', '.join(str(r) for r in search)} holds it",
                               hint="start Redis, or check YAML_WORKFLOW_STATE_URL / YAML_WORKFLOW_BROKER_URL")
    places = [f"{mask_url(redis.url)}"] if redis is not None else []
    places.append("a workspace under " + ", ".join(str(r) for r in search))
    raise RunNotFound(f"run '{run}' is neither in {' nor in '.join(places)}",
                      hint="pass the run's workspace path or --base-dir, or check the run id with `yaml-workflow runs`")


def _workspace_row(doc: dict[str, Any]) -> dict[str, Any]:
    """A workspace run's list fields, with the figures Redis rows carry too."""
    records = doc["execution_state"]["step_outputs"]
    hosts = {r["host"] for r in records.values() if isinstance(r.get("host"), str)}
    order = (doc.get("plan") or {}).get("order")
    return {**summary(doc), "trigger": doc.get("trigger"), "hosts": sorted(hosts),
            "steps_total": len(order) if isinstance(order, list) else len(records) or None,
            "store": WORKSPACE_SOURCE}


def list_runs(*, roots: list[Path] | None = None, limit: int | None = None, offset: int = 0,
              match: Callable[[dict[str, Any]], bool] | None = None) -> RunListing:
    """Runs in the state Redis (if configured) and in the workspaces, each once, newest first.

    ``match`` keeps the rows it accepts; ``limit`` rows from ``offset`` are returned.  Redis
    is read only as far as the page needs (one row more, to know whether more follow), so
    the first page of a store with many runs is cheap; ``total`` is then unknown (None).
    """
    rows: dict[str, dict[str, Any]] = {}
    sources: list[str] = []
    warnings: list[str] = []
    complete = True
    store = WORKSPACE_SOURCE
    redis = redis_store()
    if redis is not None:
        from .stores.redis import RedisStore

        assert isinstance(redis, RedisStore)
        want = offset + limit + 1 if limit else None
        try:
            for row in redis.list_runs(want, match=match):
                rows[str(row["workflow_id"])] = {**row, "store": mask_url(redis.url)}
            complete = want is None or len(rows) < want
            sources.append(mask_url(redis.url))
            store = mask_url(redis.url)
        except StoreUnavailable as err:
            warnings.append(_unreachable(redis, err))
    for root in workspace_roots(roots):
        sources.append(f"{WORKSPACE_SOURCE}s under {root}")
        for workspace in find_workspaces(root):
            try:
                row = _workspace_row(read_state(workspace))
            except StateFileError:
                continue
            if match is None or match(row):
                rows.setdefault(str(row["workflow_id"]), row)
    ordered = sorted(rows.values(), key=lambda r: r.get("start_time") or "", reverse=True)
    end = offset + limit if limit else None
    return RunListing(ordered[offset:end], sources, warnings, store=store,
                      more=end is not None and len(ordered) > end,
                      total=len(ordered) if complete else None)
