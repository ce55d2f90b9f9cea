"""Bookkeeping that outlives a Redis outage: retried in place until Redis answers.

A step that ran must have its end recorded, whatever happened to Redis meanwhile: running
it again because the commit failed would make an outage cause a second execution.  So
the writes after a step ran are retried here, with backoff, for as long as a worker waits
for Redis to come back (:func:`patience`); the worker's guard meanwhile freezes and, once
Redis is back, thaws the process (see :mod:`.guard`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from kombu.exceptions import OperationalError

from ...exceptions import StoreUnavailable
from ...settings import get_settings

log = logging.getLogger("yaml_workflow.fleet")

# Errors of the broker or Redis while a step's bookkeeping runs (the step's own
# failures never get here: run_step records them).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, OperationalError, ConnectionError, StoreUnavailable)


def patience() -> float:
    """Seconds a worker keeps retrying its bookkeeping while Redis is away."""
    settings = get_settings()
    return max(settings.reconnect_timeout, 10 * settings.claim_ttl)


def persistently(action: Any, what: str) -> Any:
    """``action()``, retried with backoff while Redis (or the broker) is unreachable."""
    deadline = time.monotonic() + patience()
    delay, told = 0.1, False
    while True:
        try:
            return action()
        except TRANSIENT as err:
            if time.monotonic() > deadline:
                raise
            if not told:
                log.warning("Redis unreachable while %s (%s); retrying until it is back", what, err)
                told = True
            time.sleep(delay)
            delay = min(2 * delay, 2.0)
