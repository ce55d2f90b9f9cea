"""The Celery app factory: one app per process, configured from the environment."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from . import config

log = logging.getLogger("yaml_workflow.fleet")


def create_app(name: str = "yaml_workflow", config_object: Any = None) -> Celery:
    """A Celery app with the fleet's settings and tasks (``config_object``: a module name
    or object to load settings from instead of :func:`config.settings`)."""
    app = Celery(name)
    if config_object is None:
        app.conf.update(config.settings())
    else:
        app.config_from_object(config_object)
    from .dispatch import CHUNK_TASK, STEP_TASK
    from .malformed import guard
    from .tasks import register

    register(app)
    guard(app, (STEP_TASK, CHUNK_TASK))  # a malformed message is one log line, never a crash
    return app


_APPS: dict[str, Celery] = {}


def default_app() -> Celery:
    """The app ``submit`` publishes with (the same settings workers load)."""
    url = config.broker_url()
    if url not in _APPS:
        _APPS[url] = create_app()
    return _APPS[url]


@signals.worker_ready.connect
def _publish_visibility(sender: Any = None, **_: Any) -> None:
    """A worker that starts tells submitters how long its broker keeps a message unacked."""
    from .runtime import fleet_state

    hostname = getattr(sender, "hostname", "") or ""
    try:
        fleet_state().publish_visibility(hostname, config.visibility_timeout())
    except Exception as err:  # noqa: BLE001 - submit then falls back to its own setting
        log.warning("could not publish the visibility timeout: %s", err)


@signals.worker_shutdown.connect
def _forget_visibility(sender: Any = None, **_: Any) -> None:
    """A worker that stops cleanly takes its entry back."""
    from .runtime import fleet_state

    try:
        fleet_state().forget_worker(getattr(sender, "hostname", "") or "")
    except Exception:  # noqa: BLE001 - the broker may already be gone
        pass


@signals.worker_process_init.connect
def _release_claims_on_term(**_: Any) -> None:
    """A pool child told to stop (cold/soft shutdown, revoke with terminate) gives its
    step claims back before it dies, so the requeued message runs at once on another
    worker instead of waiting out the claim's TTL."""
    import signal

    signal.signal(signal.SIGTERM, _on_term)


def _on_term(signum: int, frame: Any) -> None:
    import os
    import signal

    from .runtime import release_held_claims

    release_held_claims()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
