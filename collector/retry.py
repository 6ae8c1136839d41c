"""The retry policy for transient NEIS errors, defined once.

``pipeline.collect_unit`` asks it, for the Celery task and for ``pipeline.run_in_process``
alike, whether a school that failed transiently is retried and after how long. Its numbers
come from settings, read when a policy is made, so ``NEIS_MAX_RETRIES``,
``NEIS_RETRY_WINDOW_SECONDS`` and ``NEIS_RETRY_BACKOFF_*`` govern a running worker, not
whatever was current when a module was imported.

A NEIS outage lasts minutes to hours (maintenance, an overloaded hub), so the limit is a time
window: a school is retried until its first failure in a row is ``window`` seconds old (and at
least ``max_retries`` times), waiting at most ``backoff_max`` between tries.
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
    """Exponential backoff with full jitter, capped, within a time window.

    The n-th retry (n from 0) waits a random time between ``backoff_min`` and
    ``min(backoff_max, backoff_base * 2**n)`` seconds: random, so that many units failing
    together do not come back together; capped, so that a long outage is probed steadily.
    Retries stop once ``max_retries`` have been made *and* the failures began ``window``
    seconds ago (``window`` 0: the count alone decides).
    """

    max_retries: int
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    backoff_min: float = 0.0
    window: float = 0.0

    @classmethod
    def for_infrastructure(cls) -> RetryPolicy:
        """The settings' backoff, with ``INFRASTRUCTURE_RETRIES`` retries and no window: the
        database may be the thing that is away, so a failure's age cannot be looked up."""
        return dataclasses.replace(
            cls.from_settings(), max_retries=INFRASTRUCTURE_RETRIES, window=0.0
        )

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        from django.conf import settings

        return cls(
            max_retries=settings.NEIS_MAX_RETRIES,
            backoff_base=settings.NEIS_RETRY_BACKOFF_BASE,
            backoff_max=settings.NEIS_RETRY_BACKOFF_MAX,
            window=settings.NEIS_RETRY_WINDOW_SECONDS,
        )

    def ceiling(self, retries: int) -> float:
        """The longest the retry after ``retries`` earlier ones may wait."""
        return min(self.backoff_max, self.backoff_base * 2 ** min(retries, 32))

    def countdown(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the retry that follows ``retries`` earlier ones."""
        ceiling = self.ceiling(retries)
        return (rng or random).uniform(min(self.backoff_min, ceiling), ceiling)

    def exhausted(self, retries: int, failing_for: float = float("inf")) -> bool:
        """True when no more retries are allowed: ``retries`` have been made, and the first
        of the failures in a row was ``failing_for`` seconds ago (unknown: as old as can be)."""
        return retries >= self.max_retries and failing_for >= self.window
