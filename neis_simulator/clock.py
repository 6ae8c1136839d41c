"""Simulated time: one settable, advanceable clock in KST, and the school-year arithmetic.

Everything time-dependent in the simulator (publication, quota days, maintenance windows,
the archive cut-off) reads ``SimClock.now()``, so a test can move time instead of waiting.
"""

from __future__ import annotations

import datetime
import threading
import time

KST = datetime.timezone(datetime.timedelta(hours=9), "KST")


def parse_time(value: str | datetime.datetime | datetime.date) -> datetime.datetime:
    """An aware datetime from ISO text, a datetime or a date; naive values are KST."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    elif not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=KST)
    return value.astimezone(KST)


class SimClock:
    """A wall clock that can be set, frozen and advanced; thread-safe.

    Unfrozen, it runs at real speed from the last time it was set (or is the real time if it
    was never set). Frozen, it only moves through ``set`` and ``advance``.
    """

    def __init__(self, start: str | datetime.datetime | None = None, *, frozen: bool = False):
        self._lock = threading.Lock()
        self._base = parse_time(start) if start is not None else None
        self._real = time.time()
        self._frozen = frozen and start is not None
        if frozen and start is None:
            self._base = datetime.datetime.now(KST)
            self._frozen = True

    def now(self) -> datetime.datetime:
        with self._lock:
            if self._base is None:
                return datetime.datetime.now(KST)
            if self._frozen:
                return self._base
            return self._base + datetime.timedelta(seconds=time.time() - self._real)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def set(self, when: str | datetime.datetime, *, frozen: bool | None = None) -> None:
        """Jump to ``when``; ``frozen`` None keeps the current running/frozen state."""
        when = parse_time(when)
        with self._lock:
            self._base, self._real = when, time.time()
            if frozen is not None:
                self._frozen = frozen

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime.datetime:
        """Move forward by ``seconds`` plus any ``timedelta`` keywords; return the new now."""
        step = datetime.timedelta(seconds=seconds, **delta)
        now = self.now()
        self.set(now + step)
        return now + step

    def freeze(self, frozen: bool = True) -> None:
        self.set(self.now(), frozen=frozen)


def academic_year(day: datetime.date) -> int:
    """School year (학년도) of a date: March to February, so January belongs to the last AY."""
    return day.year if day.month >= 3 else day.year - 1


def semester(day: datetime.date) -> int:
    """1 for March-August, 2 for September-February."""
    return 1 if 3 <= day.month <= 8 else 2


def ay_bounds(ay: int) -> tuple[datetime.date, datetime.date]:
    """First and last calendar day of an academic year."""
    return datetime.date(ay, 3, 1), datetime.date(ay + 1, 3, 1) - datetime.timedelta(days=1)


def monday_of(day: datetime.date) -> datetime.date:
    return day - datetime.timedelta(days=day.weekday())


def quota_day(now: datetime.datetime, reset: datetime.time) -> datetime.date:
    """The quota day a moment belongs to: days start at ``reset`` KST."""
    local = now.astimezone(KST)
    shifted = local - datetime.timedelta(hours=reset.hour, minutes=reset.minute)
    return shifted.date()


def next_reset(now: datetime.datetime, reset: datetime.time) -> datetime.datetime:
    """When the quota day that contains ``now`` ends."""
    day = quota_day(now, reset) + datetime.timedelta(days=1)
    return datetime.datetime.combine(day, reset, tzinfo=KST)
