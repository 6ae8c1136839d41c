"""The quota plan: what the enabled schedules will ask of NEIS in the coming days, and whether
the keys' daily budgets cover it.

Each key's daily budget is ``quota.plan_for`` (the lowest recent observed cap, or
``NEIS_DAILY_QUOTA``, less the margin). A schedule's cost is its level's active schools times
the school weeks of its window times the requests one school-week took in the ledger's recent
history (``requests_per_school_week``); a level with no history yet uses the rows estimate of
``pipeline.plan`` (``pipeline.ROWS_PER_WEEK`` in pages of ``NEIS_PAGE_SIZE``). Work a day
cannot cover waits for the next day's quota, as deferred schools do. Reads only; sends nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math

from django.conf import settings

from collector import clock, quota
from collector.ledger import SchoolRun, UnitStatus
from collector.models import School
from collector.neis.records import Level
from collector.pipeline import ROWS_PER_WEEK

# Units of history read per level to learn what a school-week costs.
HISTORY_UNITS = 2000
SCHEDULED_TASK = "collector.start_scheduled_run"


def requests_per_school(level: str, weeks: int) -> tuple[float, bool]:
    """``(requests, from_history)``: what one school of ``level`` costs for a window of
    ``weeks`` school weeks. From the ledger: the latest collected units of windows that long
    (requests per unit), else of any window (requests per school-week, times ``weeks``);
    with no history, the rows estimate of ``pipeline.plan`` in pages: at least one request."""
    units = SchoolRun.objects.filter(school__level=level, status=UnitStatus.DONE, requests__gt=0)
    rows = list(
        units.order_by("-pk").values_list("requests", "run__date_from", "run__date_to")[
            :HISTORY_UNITS
        ]
    )
    alike = [n for n, first, last in rows if round(((last - first).days + 1) / 7) == weeks]
    if alike:
        return sum(alike) / len(alike), True
    spanned = sum(((last - first).days + 1) / 7 for _, first, last in rows)
    if rows and spanned:
        return max(1.0, sum(n for n, _, _ in rows) / spanned * weeks), True
    school_rows = ROWS_PER_WEEK[Level(level)] * weeks
    return float(max(1, -(-school_rows // settings.NEIS_PAGE_SIZE))), False


@dataclasses.dataclass
class Job:
    """One firing of a schedule in the plan."""

    name: str
    level: str
    day: datetime.date
    weeks: int
    schools: int
    per_school: float
    from_history: bool
    requests: int
    left: int = 0  # requests not yet covered
    done_on: datetime.date | None = None


@dataclasses.dataclass
class Day:
    day: datetime.date
    budget: int
    fired: list[str]
    spent: int = 0
    waiting: int = 0  # requests left for the next days at its end


@dataclasses.dataclass
class Forecast:
    keys: list[quota.KeyPlan]
    days: list[Day]
    jobs: list[Job]

    @property
    def daily_budget(self) -> int:
        return sum(key.budget for key in self.keys)

    def refreshed(self) -> dict[str, Job | None]:
        """Per level with a schedule, its first job whose work is done within the plan (its
        window holds the week it fires in), else None."""
        found: dict[str, Job | None] = {}
        for job in self.jobs:
            if found.get(job.level) is None:
                found[job.level] = job if job.done_on else None
        return found


def _schedules():
    from django_celery_beat.models import PeriodicTask

    tasks = PeriodicTask.objects.filter(
        task=SCHEDULED_TASK, enabled=True, crontab__isnull=False
    ).select_related("crontab")
    # In the order they fire in a day: what fires first is spent first.
    return sorted(tasks, key=lambda task: (min(task.crontab.schedule.hour), task.name))


def _fires_on(crontab, day: datetime.date) -> bool:
    schedule = crontab.schedule
    return (
        (day.isoweekday() % 7) in schedule.day_of_week
        and day.day in schedule.day_of_month
        and day.month in schedule.month_of_year
    )


def forecast(days: int = 7, today: datetime.date | None = None) -> Forecast:
    """The plan for ``days`` days from ``today`` (Seoul)."""
    today = today or clock.today()
    keys = quota.plan_for(quota.configured_key_ids(), today)
    budget = sum(key.budget for key in keys)
    costs: dict[tuple[str, int], tuple[float, bool]] = {}
    counts: dict[str, int] = {}
    plan_days, jobs, queue = [], [], []
    schedules = _schedules()
    for offset in range(days):
        day = today + datetime.timedelta(days=offset)
        fired = []
        for task in schedules:
            if not _fires_on(task.crontab, day):
                continue
            options = json.loads(task.kwargs or "{}")
            level = options.get("level", "")
            if level not in ROWS_PER_WEEK:
                continue
            weeks = 1 + int(options.get("weeks_before", 1)) + int(options.get("weeks_after", 1))
            if (level, weeks) not in costs:
                costs[level, weeks] = requests_per_school(level, weeks)
            if level not in counts:
                counts[level] = School.objects.filter(level=level, active=True).count()
            per, history = costs[level, weeks]
            need = math.ceil(counts[level] * per)
            job = Job(task.name, level, day, weeks, counts[level], per, history, need, need)
            jobs.append(job)
            queue.append(job)
            fired.append(task.name)
        left_today = budget
        spent = 0
        for job in queue:
            take = min(job.left, left_today)
            job.left -= take
            left_today -= take
            spent += take
            if not job.left and job.done_on is None:
                job.done_on = day
        queue = [job for job in queue if job.left]
        plan_days.append(Day(day, budget, fired, spent, sum(job.left for job in queue)))
    return Forecast(keys, plan_days, jobs)


def days_of_quota(requests: int, today: datetime.date | None = None) -> tuple[int, int]:
    """``(days, daily budget)``: quota days the configured keys need for ``requests``."""
    keys = quota.plan_for(quota.configured_key_ids(), today or clock.today())
    daily = sum(key.budget for key in keys)
    return (math.ceil(requests / daily) if daily else 0), daily


def render(forecast: Forecast) -> str:
    """The plan as text, for the command and the admin page."""
    lines = ["NEIS keys (by key id) and their daily budget:"]
    for key in forecast.keys:
        lines.append(
            f"  {key.key}: cap {key.cap:,} ({key.source}), budget {key.budget:,} after the "
            f"{100 - round(100 * key.budget / key.cap) if key.cap else 0}% margin"
        )
    lines.append(f"  all keys: {forecast.daily_budget:,} requests a day")
    lines.append("")
    lines.append("Schedules firing (requests from the ledger's history, or the rows estimate):")
    if not forecast.jobs:
        lines.append("  none enabled in these days (manage.py setup_schedules)")
    for job in forecast.jobs:
        source = "history" if job.from_history else "estimate"
        done = f"done {job.done_on:%a %Y-%m-%d}" if job.done_on else "NOT done within the plan"
        lines.append(
            f"  {job.day:%a %Y-%m-%d} {job.name}: {job.schools:,} schools x "
            f"{job.per_school:.2f} requests for {job.weeks} weeks ({source}) = "
            f"{job.requests:,}; {done}"
        )
    lines.append("")
    lines.append("Day by day (requests):")
    lines.append(f"  {'day':<15}{'budget':>9}{'spent':>9}{'waiting':>9}  fired")
    for day in forecast.days:
        lines.append(
            f"  {day.day:%a %Y-%m-%d}{day.budget:>9,}{day.spent:>9,}{day.waiting:>9,}  "
            + (", ".join(day.fired) or "-")
        )
    lines.append("")
    lines.append("Each level's current week, next fully refreshed:")
    for level, job in sorted(forecast.refreshed().items()):
        if job is None:
            lines.append(f"  {level}: not within the plan (its work does not fit)")
        else:
            lines.append(f"  {level}: {job.done_on:%a %Y-%m-%d} by {job.name}")
    spilled = [day for day in forecast.days if day.waiting]
    left = forecast.days[-1].waiting if forecast.days else 0
    lines.append("")
    if not spilled:
        lines.append("Fits: yes, every schedule's work within its own day.")
    else:
        most = max(day.waiting for day in spilled)
        lines.append(
            f"Fits: no; work waits for the next day's quota on {len(spilled)} day(s), up to "
            f"{most:,} requests"
            + (f", and {left:,} requests are still waiting at the end" if left else "")
            + "."
        )
    return "\n".join(lines)
