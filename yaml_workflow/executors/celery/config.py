"""Celery settings of the fleet, from the environment (twelve-factor, no files to edit).

``settings()`` is what ``workers/celeryconfig.py`` exposes; every worker and every
``submit`` reads the same values, so the limits ``submit`` checks are the ones workers run.
"""

from __future__ import annotations

from typing import Any

from ...settings import DEFAULT_BROKER_URL, get_settings

__all__ = ["DEFAULT_BROKER_URL", "DEFAULT_QUEUE"]
DEFAULT_QUEUE = "celery"


def broker_url() -> str:
    """YAML_WORKFLOW_BROKER_URL (default redis://localhost:6379/0)."""
    return get_settings().broker_url


def state_url() -> str:
    """YAML_WORKFLOW_STATE_URL, else the broker's Redis."""
    return get_settings().effective_state_url


def visibility_timeout() -> float:
    """Seconds an unacked message stays with its worker before Redis gives it to another."""
    return get_settings().visibility_timeout


def step_timeout() -> float:
    """The limit of a fleet step that has no ``timeout`` of its own."""
    return get_settings().step_timeout


def retry_countdown_cap(vt: float | None = None) -> float:
    """The longest countdown we give Celery: a message waiting for its ETA sits unacked
    in a worker, so a countdown past the visibility timeout would be delivered twice."""
    vt = visibility_timeout() if vt is None else vt
    return max(1.0, min(600.0, vt / 4))


# A hard limit a little past the soft one: the soft limit lets the step record its own
# failure, the hard one frees the process if the step ignores it.
SOFT_GRACE = 5.0
HARD_GRACE = 30.0


def restore_interval() -> float:
    """Seconds between a worker's sweeps for messages of dead workers (kombu's default is
    10 s x a throttle of 10): a lost message comes back within vt + this."""
    return get_settings().restore_interval


def soft_shutdown_timeout() -> float:
    """YAML_WORKFLOW_SOFT_SHUTDOWN_TIMEOUT: seconds a stopping worker lets its running
    steps finish before it hands them back to the queue (0: Celery's warm shutdown,
    which waits for them however long they take)."""
    return get_settings().soft_shutdown_timeout


def settings() -> dict[str, Any]:
    """Every Celery setting the fleet depends on."""
    vt = visibility_timeout()
    url = broker_url()
    transport = {
        "visibility_timeout": vt,
        "unacked_restore_interval": restore_interval(),
        "unacked_restore_throttle": 1,  # the interval alone decides the sweep period
        "unacked_restore_limit": 100,
        # One worker sweeps at a time under this mutex; a worker killed while holding it
        # must not stop every sweep for kombu's default of five minutes.
        "unacked_mutex_expire": int(max(10, 2 * restore_interval())),
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
    }
    return {
        "broker_url": url,
        "result_backend": url,  # for other tasks on the app: the fleet's ignore results
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": vt},
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],  # a pickled message is refused, never executed
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_default_queue": DEFAULT_QUEUE,
        "result_expires": 86400,
        "task_publish_retry_policy": {
            "max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1,
        },
        "worker_hijack_root_logger": False,
        "worker_soft_shutdown_timeout": soft_shutdown_timeout(),
        "broker_channel_error_retry": True,
    }
