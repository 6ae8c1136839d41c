"""Date windows in school weeks, computed in Asia/Seoul."""

from __future__ import annotations

import datetime

from django.utils import timezone


def school_weeks_window(
    today: datetime.date | None = None, *, weeks_before: int = 1, weeks_after: int = 1
) -> tuple[datetime.date, datetime.date]:
    """Monday of ``weeks_before`` weeks ago through Sunday of ``weeks_after`` weeks ahead.

    The default (1, 1) is the previous, current and next school week: three weeks. Weekends
    are inside the window so that the rare Saturday lesson is kept, and cost nothing to ask.
    """
    if weeks_before < 0 or weeks_after < 0:
        raise ValueError("weeks_before and weeks_after must not be negative")
    today = today or timezone.localdate()
    monday = today - datetime.timedelta(days=today.weekday())
    start = monday - datetime.timedelta(weeks=weeks_before)
    end = monday + datetime.timedelta(weeks=weeks_after, days=6)
    return start, end
