"""Every periodic job of the project, as code.

``manage.py setup_schedules`` writes these into django-celery-beat's tables; from then on an
operator may edit them in admin (day, time, enabled, window offsets in the kwargs), and
setup_schedules leaves those edits alone unless told ``--reset``.

The four weekly collections start hours apart on Saturday (Asia/Seoul), so that each level has
the shared NEIS request budget to itself: elementary, the largest, goes first.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Crontab:
    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"


@dataclasses.dataclass(frozen=True)
class Interval:
    every: int
    period: str = "minutes"  # django_celery_beat.models.IntervalSchedule periods


@dataclasses.dataclass(frozen=True)
class ScheduleDef:
    name: str
    task: str
    schedule: Crontab | Interval
    kwargs: dict = dataclasses.field(default_factory=dict)
    queue: str | None = "default"
    expire_seconds: int | None = None
    description: str = ""


def _weekly(level: str, hour: int) -> ScheduleDef:
    return ScheduleDef(
        name=f"collect-{level}-weekly",
        task="collector.start_scheduled_run",
        schedule=Crontab(minute="0", hour=str(hour), day_of_week="6"),
        kwargs={"level": level, "weeks_before": 1, "weeks_after": 1},
        description=f"Collect {level} timetables: previous, current and next school week.",
    )


SCHEDULES: tuple[ScheduleDef, ...] = (
    _weekly("elementary", 1),
    _weekly("middle", 5),
    _weekly("high", 8),
    _weekly("special", 11),
    ScheduleDef(
        name="refresh-current-weeks",
        task="collector.start_refresh",
        # School days, after the night's calendar refresh (02:30) and before lessons start.
        schedule=Crontab(minute="0", hour="6", day_of_week="1-5"),
        kwargs={"level": "all", "weeks_before": 0, "weeks_after": 1, "max_requests": None},
        description="Re-poll the current and next school week with what the day's quota "
        "leaves after committed work (open runs first), at most max_requests when set (room "
        "kept for collections started by hand): the current week first, partial "
        "school-weeks, then schools whose timetables changed recently, then the rest. When "
        "the quota cannot cover it all, the runs' note and the log say what is left out.",
    ),
    ScheduleDef(
        name="refresh-school-registry",
        task="collector.sync_schools",
        schedule=Crontab(minute="30", hour="23", day_of_week="5"),
        description="Refresh the school registry from schoolInfo before Saturday's runs.",
    ),
    ScheduleDef(
        name="refresh-school-calendars",
        task="collector.refresh_calendars",
        # Every night but Saturday's (the weekly runs have the budget to themselves then).
        schedule=Crontab(minute="30", hour="2", day_of_week="0-5"),
        kwargs={"max_requests": 2000},
        description="Ask classInfo and SchoolSchedule of the schools whose answers are due "
        "(once a semester, and within the month for schools whose weeks miss days), at most "
        "max_requests a night, inside the shared request budget; schools with partial weeks "
        "first.",
    ),
    ScheduleDef(
        name="create-lesson-partitions",
        task="collector.create_partitions",
        schedule=Crontab(minute="0", hour="22", day_of_week="5"),
        kwargs={"months_ahead": 3},
        description="Create the coming months' lesson partitions before any merge needs them.",
    ),
    ScheduleDef(
        name="resume-deferred-units",
        task="collector.resume_deferred",
        schedule=Interval(every=1),
        description="Re-queue schools deferred by a spent daily quota once it has reset, and "
        "those waiting for NEIS once it answers (one of them a minute as the probe meanwhile).",
    ),
    ScheduleDef(
        name="collection-watchdog",
        task="collector.watchdog",
        schedule=Interval(every=1),
        description="Re-send lost units and close runs that have nothing left open.",
    ),
    ScheduleDef(
        name="prune-history",
        task="collector.prune_history",
        schedule=Crontab(minute="30", hour="4"),
        expire_seconds=12 * 3600,
        description="Delete ledger units of closed runs past LEDGER_RETENTION_DAYS and task "
        "results past CELERY_RESULT_EXPIRES_DAYS, in small batches (never an open run's).",
    ),
    # Named and shaped exactly as celery beat installs it by itself, so the two never fight.
    ScheduleDef(
        name="celery.backend_cleanup",
        task="celery.backend_cleanup",
        schedule=Crontab(minute="0", hour="4"),
        queue=None,
        expire_seconds=12 * 3600,
        description="Delete expired task results from django-celery-results.",
    ),
)
