"""The Celery app factory: one app per process, configured from the environment."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, signals

from . import config, redis_broker

log = logging.getLogger("yaml_workflow.fleet")

# A worker's consumer and the fleet tasks' strategy check each message's shape first (a
# malformed one is one log line, never a crash: see .malformed).  Named, not imported:
# a submitter need not import Celery's worker modules.
GUARDED_CONSUMER = f"{__package__}.malformed:GuardedConsumer"
GUARDED_STRATEGY = f"{__package__}.malformed:guarded_strategy"


def create_app(name: str = "yaml_workflow", config_object: Any = None) -> Celery:
    """A Celery app with the fleet's settings and tasks (``config_object``: a module name
    or object to load settings from instead of :func:`config.settings`)."""
    redis_broker.install()  # a worker survives losing its Redis broker (see .redis_broker)
    app = Celery(name)
    if config_object is None:
        app.conf.update(config.settings())
    else:
        app.config_from_object(config_object)
    from .dispatch import CHUNK_TASK, STEP_TASK
    from .tasks import register

    register(app)
    app.conf.worker_consumer = GUARDED_CONSUMER
    for task in (STEP_TASK, CHUNK_TASK):
        app.tasks[task].Strategy = GUARDED_STRATEGY
    return app


_APPS: dict[str, Celery] = {}


def default_app() -> Celery:
    """The app ``submit`` publishes with (the same settings workers load)."""
    url = config.broker_url()
    if url not in _APPS:
        _APPS[url] = create_app()
    return _APPS[url]


@signals.worker_init.connect
def _start_guard(sender: Any = None, **_: Any) -> None:
    """The worker's claim guard (see .guard), started before the pool forks its processes,
    and its stall sweep (see .sweep)."""
    from ...state.stores.redis.fleet import use_keeper
    from .guard import PipeKeeper, start_guard
    from .runtime import fleet_state
    from .sweep import start_sweep

    hostname = getattr(sender, "hostname", "") or ""
    guard = start_guard(fleet_state(), hostname)
    use_keeper(PipeKeeper(guard.write_fd))  # steps of the solo and threads pools run here
    start_sweep(getattr(sender, "app", None) or default_app(), hostname or str(os.getpid()))


@signals.worker_process_init.connect
def _join_guard(**_: Any) -> None:
    """A pool process hands its claims to the worker's guard, stops at once if the worker
    dies, and, told to stop (cold/soft shutdown, revoke with terminate), gives its claims
    back before it dies, so the requeued message runs at once elsewhere."""
    import signal

    from ...state.stores.redis.fleet import use_keeper
    from ...tasks.builtin.shell import terminate_running
    from .guard import PipeKeeper, guard_write_fd, watch_parent

    write_fd = guard_write_fd()
    if write_fd is not None:
        use_keeper(PipeKeeper(write_fd))
    watch_parent(on_orphan=terminate_running)
    signal.signal(signal.SIGTERM, _on_term)


def _on_term(signum: int, frame: Any) -> None:
    import os
    import signal

    from .runtime import release_held_claims

    release_held_claims()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
