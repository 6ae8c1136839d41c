"""The retry policy for transient NEIS errors, defined once.

Both ways of collecting use it: the Celery task (``collector.tasks.collect_school`` asks it
for each retry's countdown and for the retry limit) and ``pipeline.run_in_process`` (which
sleeps for the same countdowns). Its numbers come from settings, read when a policy is made,
so ``NEIS_MAX_RETRIES`` and ``NEIS_RETRY_BACKOFF_*`` govern a running worker, not whatever
was current when a module was imported.
"""

from __future__ import annotations

import dataclasses
import random

# Retries for an infrastructure error (the database, the broker or the request budget's Redis
# unreachable): enough to ride out a restart or a failover at the backoff cap (five minutes),
# about two hours in all, before the unit is recorded as failed.
INFRASTRUCTURE_RETRIES = 30


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for errors of our own services that go away by themselves: a lost or restarting
    database (connection closed, server shutting down, serialization failure, lock timeout),
    an unreachable Redis or broker. These are retried like transient NEIS errors."""
    import kombu.exceptions
    import redis.exceptions
    from django.db import InterfaceError, OperationalError

    return isinstance(
        exc,
        OperationalError
        | InterfaceError
        | redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError
        | kombu.exceptions.OperationalError,
    )


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped.

    The n-th retry (n from 0) waits a random time between ``backoff_min`` and
    ``min(backoff_max, backoff_base * 2**n)`` seconds: random, so that many units failing
    together do not come back together; capped, so that a long outage is probed steadily.
    """

    max_retries: int
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    backoff_min: float = 0.0

    @classmethod
    def for_infrastructure(cls) -> RetryPolicy:
        """The settings' backoff, with ``INFRASTRUCTURE_RETRIES`` retries."""
        return dataclasses.replace(cls.from_settings(), max_retries=INFRASTRUCTURE_RETRIES)

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        from django.conf import settings

        return cls(
            max_retries=settings.NEIS_MAX_RETRIES,
            backoff_base=settings.NEIS_RETRY_BACKOFF_BASE,
            backoff_max=settings.NEIS_RETRY_BACKOFF_MAX,
        )

    def ceiling(self, retries: int) -> float:
        """The longest the retry after ``retries`` earlier ones may wait."""
        return min(self.backoff_max, self.backoff_base * 2 ** min(retries, 32))

    def countdown(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the retry that follows ``retries`` earlier ones."""
        ceiling = self.ceiling(retries)
        return (rng or random).uniform(min(self.backoff_min, ceiling), ceiling)

    def exhausted(self, retries: int) -> bool:
        """True when ``retries`` retries have been made and no more are allowed."""
        return retries >= self.max_retries
