"""How many times a step runs and how long it waits between attempts.

Both the ``retry:`` block and ``on_error.retry`` come down to one :class:`RetryPlan`;
the local executor sleeps for :meth:`RetryPlan.delay_before`, the Celery executor hands
the same number to ``self.retry(countdown=...)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..spec.models import Step

DEFAULT_ON_ERROR_RETRIES = 3  # `on_error: {action: retry}` without a count


@dataclass(frozen=True)
class RetryPlan:
    """Executions allowed, the waits between them and which errors are retried."""

    max_attempts: int = 1
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None
    jitter: float = 0.0  # seconds of random extra wait at most, or a fraction when < 0
    retry_on: tuple[str, ...] | None = None  # exception class names; None = every error

    @classmethod
    def for_step(cls, step: Step) -> RetryPlan:
        """The plan a step's YAML asks for (one attempt when it asks for none)."""
        if step.retry is not None:
            policy = step.retry
            jitter = policy.jitter
            if jitter is True:
                jitter_value = -0.1  # up to 10% of the wait
            elif jitter is False:
                jitter_value = 0.0
            else:
                jitter_value = float(jitter)
            return cls(
                max_attempts=policy.max_attempts,
                delay=policy.delay,
                backoff=policy.backoff,
                max_delay=policy.max_delay,
                jitter=jitter_value,
                retry_on=tuple(policy.on_error) if policy.on_error else None,
            )
        on_error = step.on_error
        if on_error is not None and (on_error.retry or on_error.action == "retry"):
            extra = on_error.retry or DEFAULT_ON_ERROR_RETRIES
            return cls(max_attempts=extra + 1, delay=on_error.delay)
        return cls()

    def matches(self, error: BaseException) -> bool:
        """True when the error (by its class or a base class name) is one to retry."""
        if self.retry_on is None:
            return True
        names = {klass.__name__ for klass in type(error).__mro__}
        qualified = {f"{k.__module__}.{k.__name__}" for k in type(error).__mro__}
        return any(name in names or name in qualified for name in self.retry_on)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 = the first retry)."""
        try:
            wait = self.delay * (self.backoff ** max(0, attempt - 2))
        except OverflowError:  # float backoff over many attempts: past any max_delay
            wait = float("inf")
        if self.max_delay is not None:
            wait = min(wait, self.max_delay)
        if self.jitter > 0:
            wait += random.uniform(0, self.jitter)
        elif self.jitter < 0:
            wait += random.uniform(0, wait * -self.jitter)
        return wait

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """After ``attempt`` failed with ``error``: is there another attempt?"""
        return attempt < self.max_attempts and self.matches(error)
