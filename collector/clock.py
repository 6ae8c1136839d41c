"""Time, defined once: the injectable clock, Seoul's zone and the school calendar.

Every part of the collector that asks "what time is it" (the NEIS client choosing the archive
service and the quota reset, the pipeline's leases and deferrals, the schedules' school weeks,
the registry's staleness) asks ``now()`` or ``today()`` here, never the wall clock directly.
By default the clock is the real one. ``NEIS_CLOCK`` (settings) or ``install()`` (tests) pins
it: ``2026-11-21T10:00:00+09:00@1764400000`` means "that moment was real Unix time
1764400000", so every process given the same value agrees on the time while it runs on at
real speed; without ``@`` the moment is taken as the process's start. Tests pin the clock so
that none of them depends on today's date.

This module imports nothing from Django, so the NEIS client can use it on its own.
"""

from __future__ import annotations

import contextlib
import datetime
import time
import zoneinfo
from collections.abc import Iterator

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")


class Clock:
    """The real time, or time pinned to ``at``, running from ``since`` (or standing still).

    ``at`` is an aware moment; ``since`` is the real Unix time that moment corresponds to
    (default: now). ``frozen`` stops the clock at ``at``.
    """

    def __init__(
        self,
        at: datetime.datetime | None = None,
        *,
        since: float | None = None,
        frozen: bool = False,
    ):
        if at is not None and at.tzinfo is None:
            raise ValueError("a pinned clock needs an aware datetime")
        self.at = at
        self.since = time.time() if since is None else since
        self.frozen = frozen

    @classmethod
    def parse(cls, spec: str) -> Clock:
        """A clock from ``ISO-moment[@unix-seconds]``; raises ValueError on anything else."""
        moment, _, since = spec.strip().partition("@")
        try:
            at = datetime.datetime.fromisoformat(moment)
            real = float(since) if since else None
        except ValueError:
            raise ValueError(
                f"{spec!r} is not ISO-moment[@unix-seconds], "
                "e.g. 2026-11-21T10:00:00+09:00@1764400000"
            ) from None
        if at.tzinfo is None:
            raise ValueError(f"{spec!r} has no UTC offset (write +09:00 for Seoul)")
        if real is not None and not 0 <= real < 1e11:
            raise ValueError(f"{spec!r}: {since} is not a Unix time in seconds")
        return cls(at, since=real)

    def spec(self) -> str:
        """The ``NEIS_CLOCK`` value that gives another process this same clock."""
        if self.at is None:
            return ""
        return f"{self.at.isoformat()}@{self.since:.3f}"

    def now(self) -> datetime.datetime:
        if self.at is None:
            return datetime.datetime.now(datetime.UTC)
        if self.frozen:
            return self.at.astimezone(datetime.UTC)
        elapsed = datetime.timedelta(seconds=time.time() - self.since)
        return (self.at + elapsed).astimezone(datetime.UTC)

    def __repr__(self) -> str:
        return f"Clock({self.spec() or 'real'}{', frozen' if self.frozen else ''})"


_clock = Clock()


def now() -> datetime.datetime:
    """The current moment, aware, in UTC (what Django stores)."""
    return _clock.now()


def seoul_now() -> datetime.datetime:
    return _clock.now().astimezone(SEOUL)


def today() -> datetime.date:
    """Today's date in Seoul, where every school and every NEIS date lives."""
    return seoul_now().date()


def current() -> Clock:
    return _clock


def install(clock: Clock) -> Clock:
    """Make ``clock`` the process's clock; returns the one it replaces."""
    global _clock
    previous, _clock = _clock, clock
    return previous


@contextlib.contextmanager
def pinned(at: datetime.datetime, *, frozen: bool = False) -> Iterator[Clock]:
    """Run a block with the clock pinned to ``at`` (then running, unless ``frozen``)."""
    clock = Clock(at, frozen=frozen)
    previous = install(clock)
    try:
        yield clock
    finally:
        install(previous)


# --- The school calendar --------------------------------------------------------------------


def in_seoul(moment: datetime.datetime) -> datetime.datetime:
    """An aware moment in Seoul time; a naive one is taken to be Seoul wall time already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=SEOUL)
    return moment.astimezone(SEOUL)


def academic_year(moment: datetime.date | datetime.datetime) -> int:
    """The Korean school year (학년도) of a date or moment: it runs from March to February."""
    if isinstance(moment, datetime.datetime):
        moment = in_seoul(moment).date()
    return moment.year if moment.month >= 3 else moment.year - 1


def quota_day(moment: datetime.datetime, reset_hour: int = 0) -> datetime.date:
    """The NEIS quota day ``moment`` falls in: the Seoul date of the last reset at
    ``reset_hour``:00 KST (with a reset at 00:00, simply the Seoul date)."""
    return (in_seoul(moment) - datetime.timedelta(hours=reset_hour)).date()


def monday_of(day: datetime.date) -> datetime.date:
    """The Monday of ``day``'s week (weeks run Monday to Sunday)."""
    return day - datetime.timedelta(days=day.weekday())


def school_weeks_window(
    day: datetime.date | None = None, *, weeks_before: int = 1, weeks_after: int = 1
) -> tuple[datetime.date, datetime.date]:
    """Monday ``weeks_before`` weeks before ``day``'s week through Sunday ``weeks_after`` after.

    ``day`` defaults to today in Seoul. The default (1, 1) is the previous, current and next
    school week: three weeks. Weekends are inside the window so that the rare Saturday lesson
    is kept, and they cost nothing to ask for.
    """
    if weeks_before < 0 or weeks_after < 0:
        raise ValueError("weeks_before and weeks_after must not be negative")
    monday = monday_of(day or today())
    start = monday - datetime.timedelta(weeks=weeks_before)
    end = monday + datetime.timedelta(weeks=weeks_after, days=6)
    return start, end
