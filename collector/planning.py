"""The quota plan: what the enabled schedules will ask of NEIS in the coming days, and whether
the keys' daily budgets cover it.

Each key's daily budget is ``quota.plan_for`` (the lowest recent observed cap, or
``NEIS_DAILY_QUOTA``, less the margin). A schedule's cost is its level's active schools times
the school weeks of its window times the requests one school-week took in the ledger's recent
history (``requests_per_school_week``); a level with no history yet uses the rows estimate of
``pipeline.plan`` (``pipeline.ROWS_PER_WEEK`` in pages of ``NEIS_PAGE_SIZE``). Work a day
cannot cover waits for the next day's quota, as deferred schools do.

The refresh (``start_refresh``, schedule ``refresh-current-weeks``) re-polls the current and
next school week on school days with what each day's budget leaves after committed work
(``budget_left``): never more, so it never starves a weekly run still under way. Its plan
(``plan_refresh``) takes school-weeks in order of value (``weeks_by_value``, ``by_value``) and
covers a prefix of them; it says before it starts when that is not all of them. Everything
here reads only, except ``start_refresh``, which creates the refresh's runs and sends them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef

from collector import clock, pipeline, quota
from collector.completeness import SchoolWeek
from collector.ledger import OPEN, OPEN_RUN, CollectionRun, SchoolRun, Trigger, UnitStatus
from collector.levels import RunLevel
from collector.models import ChangeKind, LessonChange, School
from collector.neis.records import Level
from collector.pipeline import ROWS_PER_WEEK

log = logging.getLogger(__name__)

# Units of history read per level to learn what a school-week costs.
HISTORY_UNITS = 2000
SCHEDULED_TASK = "collector.start_scheduled_run"
REFRESH_TASK = "collector.start_refresh"


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


# --- The refresh of the current and next school week ---------------------------------------

#: Changes that make a school one whose timetable changes: a first load (``baseline``) or a
#: reload that moved only LOAD_DTM is no change of the timetable.
CHANGES = (ChangeKind.ADDED, ChangeKind.REMOVED, ChangeKind.UPDATED, ChangeKind.DAY_REMOVED)
#: How long before a week a change of its school still counts as recent (in lesson dates).
CHANGED_WITHIN = datetime.timedelta(weeks=4)
ONE_WEEK = datetime.timedelta(weeks=1)
REFRESH_REASONS = ("partial", "changed", "steady")


def weeks_by_value(
    today: datetime.date, weeks_before: int = 0, weeks_after: int = 1
) -> list[datetime.date]:
    """Mondays of the school weeks a refresh covers, the most valuable first: the current
    week, then the coming ones, nearest first, then the past ones, nearest first (a past week
    is published and changes least)."""
    monday = clock.monday_of(today)
    ahead = [monday + n * ONE_WEEK for n in range(weeks_after + 1)]
    return ahead + [monday - n * ONE_WEEK for n in range(1, weeks_before + 1)]


def by_value(schools, monday: datetime.date):
    """``schools`` (a School queryset) in the order a refresh of ``monday``'s week spends on
    them: partial school-weeks first (``SchoolWeek.partial``: classes or days missing, most
    often not yet published), then schools whose timetable changed in the ``CHANGED_WITHIN``
    before the week's end (the change history), then schools that do not change; by code
    within each. Each school is annotated with ``is_partial`` and ``has_changed``."""
    partial = SchoolWeek.objects.filter(school=OuterRef("pk"), monday=monday, partial=True)
    changed = LessonChange.objects.filter(
        school=OuterRef("pk"),
        kind__in=CHANGES,
        date__gte=monday - CHANGED_WITHIN,
        date__lt=monday + ONE_WEEK,
    )
    return schools.annotate(is_partial=Exists(partial), has_changed=Exists(changed)).order_by(
        "-is_partial", "-has_changed", "code"
    )


@dataclasses.dataclass(frozen=True)
class KeyDay:
    """One key's quota day so far: its planned budget and the requests it started."""

    key: str  # key id
    budget: int
    spent: int

    @property
    def left(self) -> int:
        return max(0, self.budget - self.spent)


@dataclasses.dataclass(frozen=True)
class DayBudget:
    """What is left of the keys' budgets today once committed work is counted."""

    keys: tuple[KeyDay, ...]
    committed: int  # requests the open runs' open schools still need

    @property
    def left(self) -> int:
        return max(0, sum(key.left for key in self.keys) - self.committed)

    def __str__(self) -> str:
        spent = ", ".join(f"{key.key} {key.spent:,} of {key.budget:,}" for key in self.keys)
        return (
            f"{self.left:,} requests left today (spent: {spent}; open runs still need "
            f"{self.committed:,})"
        )


def _window_weeks(date_from: datetime.date, date_to: datetime.date) -> int:
    return max(1, round(((date_to - date_from).days + 1) / 7))


def committed_requests() -> int:
    """Requests the open schools of open runs still need: per school, what one of its level
    costs for its run's window (``requests_per_school``)."""
    rows = (
        SchoolRun.objects.filter(status__in=OPEN, run__status__in=OPEN_RUN)
        .values_list("school__level", "run__date_from", "run__date_to")
        .annotate(n=Count("id"))
        .order_by()
    )
    costs: dict[tuple[str, int], float] = {}
    need = 0.0
    for level, first, last, n in rows:
        if level not in ROWS_PER_WEEK:
            continue
        weeks = _window_weeks(first, last)
        if (level, weeks) not in costs:
            costs[level, weeks] = requests_per_school(level, weeks)[0]
        need += n * costs[level, weeks]
    return math.ceil(need)


def budget_left(today: datetime.date | None = None, pool=None) -> DayBudget:
    """The day's budget a refresh may spend: each key's planned budget (``quota.plan_for``)
    less the requests it started today (the shared budget's count), less what open runs
    still need (``committed_requests``)."""
    today = today or clock.today()
    pool = pool or quota.key_pool()
    plans = {plan.key: plan.budget for plan in quota.plan_for([b.key for b in pool], today)}
    keys = tuple(KeyDay(b.key, plans[b.key], b.used_today()) for b in pool)
    return DayBudget(keys, committed_requests())


@dataclasses.dataclass(frozen=True)
class Item:
    """One school-week a refresh would re-poll."""

    code: str
    level: str
    monday: datetime.date
    reason: str  # one of REFRESH_REASONS
    cost: float  # requests, from the ledger's history or the rows estimate


def week_name(monday: datetime.date, today: datetime.date) -> str:
    """``monday``'s school week as seen from ``today``: "current week", "next week", ..."""
    weeks = (monday - clock.monday_of(today)).days // 7
    names = {0: "current week", 1: "next week", -1: "previous week"}
    return names.get(weeks, f"week {weeks:+d}")


@dataclasses.dataclass
class RefreshPlan:
    """What a refresh of ``weeks`` would re-poll on ``day``, and the part of it that fits."""

    level: str
    day: datetime.date
    weeks: list[datetime.date]  # by value
    budget: DayBudget
    items: list[Item]  # every school-week wanted, by value
    fits: int  # the first ``fits`` items are covered
    busy: int = 0  # school-weeks left out because an open run is collecting them
    cap: int | None = None  # the schedule's max_requests, when it is below what is left

    @property
    def covered(self) -> list[Item]:
        return self.items[: self.fits]

    @property
    def full(self) -> bool:
        return self.fits == len(self.items)

    @property
    def need(self) -> int:
        return math.ceil(sum(item.cost for item in self.items))

    @property
    def spends(self) -> int:
        return math.ceil(sum(item.cost for item in self.covered))

    def note(self) -> str:
        """What the plan covers, in one paragraph: the log line and the runs' note."""
        weeks = " and ".join(
            f"the {week_name(monday, self.day)} ({monday})" for monday in self.weeks
        )
        text = (
            f"Refresh of {self.level} on {self.day:%a %Y-%m-%d}, {weeks}: {len(self.items):,} "
            f"school-weeks, about {self.need:,} requests; {self.budget}."
        )
        if self.busy:
            text += f" {self.busy:,} school-weeks left out: open runs are collecting them."
        if self.cap is not None:
            text += (
                f" Capped at {self.cap:,} requests (max_requests), the rest kept for other work."
            )
        if self.full:
            return text + " Covers all of them."
        parts = []
        for monday in self.weeks:
            wanted = [item for item in self.items if item.monday == monday]
            got = [item for item in self.covered if item.monday == monday]
            by_reason = ", ".join(
                f"{reason} {sum(i.reason == reason for i in got):,} of "
                f"{sum(i.reason == reason for i in wanted):,}"
                for reason in REFRESH_REASONS
                if any(i.reason == reason for i in wanted)
            )
            parts.append(
                f"the {week_name(monday, self.day)} {len(got):,} of {len(wanted):,}"
                + (f" ({by_reason})" if by_reason else "")
            )
        return (
            f"{text} SHORT of a full refresh: covers {self.fits:,} school-weeks, about "
            f"{self.spends:,} requests, the highest-value first (partial, then changed, then "
            f"steady schools): {'; '.join(parts)}."
        )


def plan_refresh(
    level: str = RunLevel.ALL,
    *,
    weeks_before: int = 0,
    weeks_after: int = 1,
    today: datetime.date | None = None,
    budget: DayBudget | None = None,
    max_requests: int | None = None,
) -> RefreshPlan:
    """The refresh of ``today`` (Seoul): every active school of ``level`` for each week of
    ``weeks_by_value``, less the schools an open run is collecting for that week, ordered by
    value (weeks, then ``by_value``); the prefix whose estimated requests fit
    ``budget`` (default: ``budget_left``), and ``max_requests`` when given, is what it
    covers. Reads only. PipelineError for an unknown level, negative weeks or a cap below 1."""
    levels = [str(each) for each in pipeline.check_levels(level)]
    if weeks_before < 0 or weeks_after < 0:
        raise pipeline.PipelineError("weeks_before and weeks_after must not be negative")
    check_max_requests(max_requests)
    today = today or clock.today()
    budget = budget or budget_left(today)
    room = budget.left
    cap = max_requests if max_requests is not None and max_requests < room else None
    if cap is not None:
        room = cap
    costs = {each: requests_per_school(each, 1)[0] for each in levels}
    weeks = weeks_by_value(today, weeks_before, weeks_after)
    items: list[Item] = []
    busy = 0
    for monday in weeks:
        window = (monday, monday + ONE_WEEK - datetime.timedelta(days=1))
        schools = pipeline.select_schools(levels, window=window)
        busy += pipeline.busy_schools(pipeline.select_schools(levels), window).schools
        for code, each, partial, changed in by_value(schools, monday).values_list(
            "code", "level", "is_partial", "has_changed"
        ):
            reason = "partial" if partial else "changed" if changed else "steady"
            items.append(Item(code, each, monday, reason, costs[each]))
    fits, spent = 0, 0.0
    for item in items:
        if spent + item.cost > room:
            break
        spent += item.cost
        fits += 1
    return RefreshPlan(level, today, weeks, budget, items, fits, busy, cap)


def check_max_requests(max_requests) -> None:
    """A refresh's cap: None (what the day leaves) or a whole number of requests, at least 1."""
    if max_requests is None:
        return
    if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
        raise pipeline.PipelineError(
            f"max_requests must be a whole number of requests, at least 1 (got {max_requests!r})"
        )


def refresh_key(level: str, day: datetime.date, monday: datetime.date) -> str:
    """The trigger key of one refresh run: a second firing the same day is refused."""
    return f"refresh:{level}:{day.isoformat()}:{monday.isoformat()}"


def refresh_started(level: str, day: datetime.date) -> CollectionRun | None:
    """The first run of ``level``'s refresh of ``day``, or None if it has not started."""
    runs = CollectionRun.objects.filter(trigger_key__startswith=f"refresh:{level}:{day}:")
    return runs.order_by("pk").first()


def start_refresh(
    level: str = RunLevel.ALL,
    *,
    weeks_before: int = 0,
    weeks_after: int = 1,
    today: datetime.date | None = None,
    send: pipeline.Sender | None = None,
    max_requests: int | None = None,
) -> dict:
    """Plan today's refresh (``plan_refresh``) and start what fits: one run per school week,
    limited to the school-weeks that fit when not all do, with the plan's note (also logged,
    as a warning when the refresh is short), and sent in order of value, the current week
    first. Returns the runs, the school-weeks covered and wanted, and the note; ``refused``
    (with the run) when today's refresh has started already: a second firing spends nothing.
    Nothing fits: no run, and the note says so."""
    today = today or clock.today()
    first = refresh_started(level, today)
    if first is not None:
        return _refused(first, today)
    plan = plan_refresh(
        level,
        weeks_before=weeks_before,
        weeks_after=weeks_after,
        today=today,
        max_requests=max_requests,
    )
    note = plan.note()
    log.log(logging.INFO if plan.full else logging.WARNING, "%s", note)
    runs = []
    try:
        # Every week's run or none: a run left behind unsent would hold its schools as busy for
        # every later run of its week, and the next firing would be refused as started.
        with transaction.atomic():
            for monday in plan.weeks:
                got = [item.code for item in plan.covered if item.monday == monday]
                wanted = sum(item.monday == monday for item in plan.items)
                if not got:
                    continue
                try:
                    run = pipeline.create_run(
                        level,
                        monday,
                        monday + ONE_WEEK - datetime.timedelta(days=1),
                        # Every school of the week when all fit (no list of thousands of codes).
                        school_codes=() if len(got) == wanted else got,
                        trigger=Trigger.SCHEDULE,
                        trigger_key=refresh_key(level, today, monday),
                        refresh_registry=False,
                        note=note,
                    )
                except pipeline.PipelineError as exc:  # its schools were taken meanwhile
                    log.warning("refresh of the week of %s: %s", monday, exc)
                    continue
                runs.append(run)
            # Started with their creation: a send cut short below leaves the rest to the
            # watchdog, which re-sends a running run's unsent units.
            for run in runs:
                run.start()
    except IntegrityError:  # another beat started it a moment ago
        return _refused(refresh_started(level, today), today)
    for run in runs:
        pipeline.dispatch(run, send=send)
    return {
        "runs": [run.pk for run in runs],
        "school_weeks": plan.fits,
        "wanted": len(plan.items),
        "requests": plan.spends,
        "full": plan.full,
        "note": note,
    }


def _refused(run: CollectionRun | None, today: datetime.date) -> dict:
    return {
        "refused": True,
        "run": run.pk if run else None,
        "reason": f"the refresh of {today} was already started (run {run.pk if run else '?'})",
    }


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
    # A refresh: what its day cannot cover is left out, not carried to the next day.
    refresh: tuple[str, ...] = ()  # its weeks' names, by value (current, next, ...)
    levels: tuple[str, ...] = ()
    week_need: int = 0  # requests of one week of its schools
    room: int = 0  # requests its day had left after committed work

    def covers(self) -> str:
        """A refresh's share of its work, as the highest-value-first order spends it."""
        if not self.left:
            return f"{self.room:,} left after committed work: covers all of it"
        per = self.week_need / self.schools if self.schools else 0.0
        parts, left = [], float(self.requests - self.left)
        for name in self.refresh:
            got = min(self.schools, int(left / per)) if per else self.schools
            left -= got * per
            parts.append(f"the {name} {got:,} of {self.schools:,} school-weeks")
        return f"{self.room:,} left after committed work: covers {', '.join(parts)}"


@dataclasses.dataclass
class Day:
    day: datetime.date
    budget: int
    fired: list[str]
    spent: int = 0
    waiting: int = 0  # requests left for the next days at its end
    refresh: int = 0  # requests the refresh spends of what committed work left


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
            for level in job.levels or (job.level,):
                if found.get(level) is None:
                    found[level] = job if job.done_on else None
        return found


def _schedules():
    from django_celery_beat.models import PeriodicTask

    tasks = PeriodicTask.objects.filter(
        task__in=(SCHEDULED_TASK, REFRESH_TASK), enabled=True, crontab__isnull=False
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
        fired, refreshes = [], []
        for task in schedules:
            if not _fires_on(task.crontab, day):
                continue
            options = json.loads(task.kwargs or "{}")
            if task.task == REFRESH_TASK:
                refreshes.append((task.name, options))
                fired.append(task.name)
                continue
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
        # The refresh spends only what committed work left; today, also no more than what
        # is really left now (requests spent today, open runs' need).
        if offset == 0 and refreshes:
            left_today = min(left_today, budget_left(today).left)
        refreshed = 0
        for name, options in refreshes:
            try:
                job = _refresh_job(name, options, day, left_today, costs, counts)
            except (pipeline.PipelineError, TypeError, ValueError):
                continue  # kwargs edited into something the task refuses too
            jobs.append(job)
            left_today -= job.requests - job.left
            refreshed += job.requests - job.left
        waiting = sum(job.left for job in queue)
        plan_days.append(Day(day, budget, fired, spent, waiting, refreshed))
    return Forecast(keys, plan_days, jobs)


def _refresh_job(name: str, options: dict, day: datetime.date, left: int, costs, counts) -> Job:
    """A refresh firing on ``day`` with ``left`` requests: its schools' weeks, the current
    week first (``weeks_by_value``), as far as ``left`` goes."""
    level = options.get("level", RunLevel.ALL)
    levels = tuple(str(each) for each in pipeline.check_levels(level))
    before, after = int(options.get("weeks_before", 0)), int(options.get("weeks_after", 1))
    cap = options.get("max_requests")
    check_max_requests(cap)
    if cap is not None:
        left = min(left, cap)
    week_need, schools, history = 0.0, 0, True
    for each in levels:
        if (each, 1) not in costs:
            costs[each, 1] = requests_per_school(each, 1)
        if each not in counts:
            counts[each] = School.objects.filter(level=each, active=True).count()
        week_need += counts[each] * costs[each, 1][0]
        schools += counts[each]
        history &= costs[each, 1][1]
    names = tuple(week_name(m, day) for m in weeks_by_value(day, before, after))
    need = math.ceil(week_need * len(names))
    per = week_need * len(names) / schools if schools else 0.0
    job = Job(name, level, day, len(names), schools, per, history, need, need - min(need, left))
    job.refresh, job.levels, job.week_need = names, levels, math.ceil(week_need)
    job.room = max(0, left)
    # Its levels' current week is fresh when the day covers that week in full.
    job.done_on = day if min(need, left) >= week_need else None
    return job


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
        if job.refresh:
            done = job.covers()
        lines.append(
            f"  {job.day:%a %Y-%m-%d} {job.name}: {job.schools:,} schools x "
            f"{job.per_school:.2f} requests for {job.weeks} weeks ({source}) = "
            f"{job.requests:,}; {done}"
        )
    lines.append("")
    lines.append("Day by day (requests):")
    lines.append(f"  {'day':<15}{'budget':>9}{'spent':>9}{'refresh':>9}{'waiting':>9}  fired")
    for day in forecast.days:
        lines.append(
            f"  {day.day:%a %Y-%m-%d}{day.budget:>9,}{day.spent:>9,}{day.refresh:>9,}"
            f"{day.waiting:>9,}  " + (", ".join(day.fired) or "-")
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
    refreshes = [job for job in forecast.jobs if job.refresh]
    short = [job for job in refreshes if job.left]
    if short:
        lines.append(
            f"Refresh: short of its full work on {len(short)} of {len(refreshes)} day(s), up "
            f"to {max(job.left for job in short):,} requests left out; it covers the current "
            "week first, partial and recently changed schools before the rest."
        )
    elif refreshes:
        lines.append("Refresh: its full work fits on every day it fires.")
    return "\n".join(lines)
