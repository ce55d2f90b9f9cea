"""A worker survives the loss of its Redis broker: one fix to kombu's Redis channel.

Root cause of the crash (``CRITICAL/MainProcess] Unrecoverable error:
AttributeError("'NoneType' object has no attribute 'hostname'")`` when Redis goes away
while a worker runs a step): when the consumer's connection breaks, Celery's
``Consumer.on_connection_error_after_connected`` calls ``connection.collect()``, which
detaches the kombu transport from the connection (``transport.client = None``) while
channels of that connection are still in use.  Two of them then need a new Redis client,
whose parameters kombu reads from ``transport.client`` in ``Channel._connparams``:

- closing the default channel (Celery 5.7 closes the collected connection, since
  celery/celery#10242, commit feb789acc, "prevent graceful shutdown regression in
  connection recovery"): the Redis QoS restores the messages the worker holds;
- the late ack of a step that finishes after the connection broke
  (``kombu.message.Message.ack_log_error``).

Both get AttributeError, which neither kombu's ``maybe_close_channel`` nor
``ack_log_error`` expects (they catch connection errors), so it reaches the worker's
blueprint and stops the worker.  Here a channel whose connection was collected raises
redis's ConnectionError instead: the close is ignored and the ack is logged as failed,
as for any connection error.  The message stays unacknowledged in Redis and comes back
by the visibility timeout; a delivery that finds its step done only replays the dispatch.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_original_connparams: Any = kombu_redis.Channel._connparams


def _connparams(self: Any, asynchronous: bool = False) -> Any:
    if self.connection.client is None:
        raise redis.ConnectionError("the broker connection of this channel was closed (Redis went away)")
    return _original_connparams(self, asynchronous)


def install() -> None:
    """Make channels of a collected connection fail as a lost connection (idempotent)."""
    setattr(kombu_redis.Channel, "_connparams", _connparams)  # noqa: B010 - mypy: a method assigned
