"""The Celery fleet executor: steps of a run as Celery tasks, state in Redis.

``submit_run`` compiles a workflow into a run in Redis and enqueues its first steps;
each step task runs one attempt through ``engine.step.run_step`` and enqueues the
steps it makes ready.  ``create_app`` builds the Celery app workers and submitters use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "submit_run", "wait_for_run"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "submit_run":
        from .submit import submit_run

        return submit_run
    if name == "wait_for_run":
        from .follow import wait_for_run

        return wait_for_run
    raise AttributeError(name)
