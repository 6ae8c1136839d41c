"""Each key's daily NEIS quota, as observed: the history behind every plan.

NEIS does not publish how many requests a key may make in a day; ERROR-337 is the only
signal. The shared budget (``collector.limiter``) counts each key's requests per quota day as
they start and, at the first ERROR-337 of a day, keeps the count before it: the key's
*observed cap* that day. Those counts live in Redis (or the budget's file) for
``limiter.USAGE_KEEP_DAYS``; ``flush`` copies them into ``QuotaDay`` rows, one per key and day,
from the watchdog (every minute) and at each quota hit, so the request path never writes to
the database.

A plan's daily budget for a key (``plan_for``) is the lowest cap observed in the last
``LOOKBACK_DAYS`` days, or ``NEIS_DAILY_QUOTA`` until one has been observed, less
``NEIS_QUOTA_MARGIN_PERCENT``. The console's quota panel, ``manage.py quota_plan`` and the key
choice (``limiter.KeyPool``) all read it from here.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time

from django.conf import settings
from django.db import models

from collector import clock
from collector.limiter import KeyPool, RequestBudget, api_keys, key_id, pool_from_settings

log = logging.getLogger(__name__)

# Observed caps older than this no longer bound a plan: NEIS may have raised a key's quota.
LOOKBACK_DAYS = 14
# How long a process trusts the planned caps it read before reading them again.
CAPS_CACHE_SECONDS = 60.0


class QuotaDayQuerySet(models.QuerySet):
    def recent(self, today: datetime.date, days: int = LOOKBACK_DAYS):
        return self.filter(day__gt=today - datetime.timedelta(days=days), day__lte=today)

    def lowest_caps(self, today: datetime.date) -> dict[str, int]:
        """Each key id's lowest cap observed in the last ``LOOKBACK_DAYS`` days."""
        rows = (
            self.recent(today)
            .filter(observed_cap__isnull=False)
            .values_list("key_id")
            .annotate(cap=models.Min("observed_cap"))
            .order_by()
        )
        return dict(rows)


class QuotaDay(models.Model):
    """One key's NEIS quota day: requests made, and the observed cap if ERROR-337 came."""

    key_id = models.CharField(
        "key id", max_length=16, help_text="limiter.key_id: a short hash of the key, never it."
    )
    day = models.DateField("quota day", help_text="The KST day from one quota reset to the next.")
    requests = models.PositiveIntegerField(
        "requests", default=0, help_text="Requests started with the key that day."
    )
    observed_cap = models.PositiveIntegerField(
        "observed cap",
        null=True,
        blank=True,
        help_text="Requests made before the day's first ERROR-337; empty if none came.",
    )
    capped_at = models.DateTimeField(
        "quota spent at", null=True, blank=True, help_text="When the first ERROR-337 was seen."
    )
    updated_at = models.DateTimeField("updated", default=clock.now)

    objects = QuotaDayQuerySet.as_manager()

    class Meta:
        verbose_name = "key quota day"
        verbose_name_plural = "key quota days"
        ordering = ["-day", "key_id"]
        constraints = [
            models.UniqueConstraint(fields=["key_id", "day"], name="quota_day_key_day_unique")
        ]

    def __str__(self):
        cap = f", cap {self.observed_cap:,}" if self.observed_cap is not None else ""
        return f"{self.key_id} {self.day}: {self.requests:,} requests{cap}"


def flush(pool: KeyPool | None = None) -> int:
    """Copy today's and yesterday's counts of every key from the shared budget into
    ``QuotaDay`` rows; returns how many rows were written. A count only grows and a cap only
    falls, so a late or repeated flush never undoes a newer one."""
    pool = pool or pool_from_settings()
    written = 0
    for budget in pool:
        written += flush_key(budget)
    return written


def flush_key(budget: RequestBudget) -> int:
    today = budget.quota_day()
    days = [today - datetime.timedelta(days=1), today]
    written = 0
    now = clock.now()
    for day, usage in budget.usage(days).items():
        row, _ = QuotaDay.objects.get_or_create(key_id=budget.key, day=day)
        changed = usage.requests > row.requests
        if changed:
            row.requests = usage.requests
        if usage.cap is not None and (row.observed_cap is None or usage.cap < row.observed_cap):
            row.capped_at = row.capped_at or now
            row.observed_cap, changed = usage.cap, True
        if changed:
            row.updated_at = now
            row.save()
            written += 1
    return written


@dataclasses.dataclass(frozen=True)
class KeyPlan:
    """What a plan may spend with one key in a day."""

    key: str  # key id
    cap: int  # the lowest recent observed cap, or the configured quota
    observed: bool  # True when ``cap`` was observed, not configured
    budget: int  # ``cap`` less the safety margin

    @property
    def source(self) -> str:
        return "observed" if self.observed else "configured (NEIS_DAILY_QUOTA)"


def with_margin(cap: int) -> int:
    return cap * (100 - settings.NEIS_QUOTA_MARGIN_PERCENT) // 100


def plan_for(key_ids: list[str], today: datetime.date | None = None) -> list[KeyPlan]:
    """Each key's daily budget for plans, in the order given."""
    lowest = QuotaDay.objects.lowest_caps(today or clock.today())
    plans = []
    for key in key_ids:
        cap = lowest.get(key)
        observed = cap is not None
        cap = cap if observed else settings.NEIS_DAILY_QUOTA
        plans.append(KeyPlan(key, cap, observed, with_margin(cap)))
    return plans


def configured_key_ids() -> list[str]:
    return [key_id(key) for key in api_keys()]


_cached: tuple[float, tuple, dict[str, int]] | None = None


def planned_caps() -> dict[str, int]:
    """Each configured key id's daily budget (``plan_for``), read from the database at most
    once every ``CAPS_CACHE_SECONDS`` per process: the key choice asks for it per unit."""
    global _cached
    keys = tuple(configured_key_ids())
    now = time.monotonic()
    if _cached is None or _cached[0] < now or _cached[1] != keys:
        caps = {plan.key: plan.budget for plan in plan_for(list(keys))}
        _cached = (now + CAPS_CACHE_SECONDS, keys, caps)
    return _cached[2]


def forget_cached_caps() -> None:
    global _cached
    _cached = None


def key_pool() -> KeyPool:
    """Every configured key's budget, each with its planned daily budget (for ``pick``)."""
    return pool_from_settings(
        caps=planned_caps(), default_cap=with_margin(settings.NEIS_DAILY_QUOTA)
    )
