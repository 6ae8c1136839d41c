"""Prometheus metrics, read from the ledger at each scrape (``/metrics``), and the freshness
check behind ``manage.py check_freshness``.

Nothing is kept in memory between scrapes: every number is what the database says now, so
any number of web processes agree, and a restart loses nothing. Each scrape costs a handful
of indexed queries (open runs' units, the lesson estimate, a few weeks of completeness).
"""

from __future__ import annotations

import dataclasses
import datetime
import hmac

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.http import HttpResponse, HttpResponseForbidden

from collector import clock, console
from collector.ledger import CollectionRun, RunLevel, SchoolRun, UnitStatus

LEVELS = [level for level in RunLevel.values if level != RunLevel.ALL]
# How far back the newest complete week is looked for.
WEEKS_BACK = 5


@dataclasses.dataclass(frozen=True)
class WeekState:
    level: str
    week: datetime.date
    complete: int  # active schools of the level whose latest unit is done or no data
    total: int  # active schools of the level

    @property
    def ratio(self) -> float:
        return self.complete / self.total if self.total else 1.0

    @property
    def is_complete(self) -> bool:
        return self.complete >= self.total


def week_states(weeks: list[datetime.date]) -> dict[tuple[str, datetime.date], WeekState]:
    """Each level's completeness in each week, in one query: a week is complete for a level
    when every active school of it has a done or no-data latest unit (``console.coverage``)."""
    from collector.models import School

    totals = dict(
        School.objects.filter(active=True, level__in=LEVELS)
        .values_list("level")
        .annotate(n=Count("id"))
        .order_by()
    )
    covering = console.week_runs(weeks, RunLevel.ALL)
    sql, params = console.latest_states_sql(covering, RunLevel.ALL, None)
    done = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT l.week, s.level, COUNT(*) FROM ({sql}) l "
            "JOIN collector_school s ON s.id = l.school_id WHERE l.status IN (%s, %s) "
            "GROUP BY l.week, s.level",
            [*params, UnitStatus.DONE.value, UnitStatus.NO_DATA.value],
        )
        for index, level, n in cursor.fetchall():
            done[(level, weeks[index])] = n
    return {
        (level, week): WeekState(level, week, done.get((level, week), 0), totals.get(level, 0))
        for level in LEVELS
        for week in weeks
    }


def week_start(monday: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(monday, datetime.time(), tzinfo=clock.SEOUL)


def _line(name: str, value, **labels) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape(str(v))}"' for key, v in labels.items())
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


METRICS = {
    "neis_open_runs": ("gauge", "Collection runs pending or running, by level."),
    "neis_open_run_units": ("gauge", "Units (schools) of open runs, by state."),
    "neis_requests_total": ("counter", "NEIS requests spent by every run in the ledger."),
    "neis_lessons_stored_estimated": ("gauge", "Lessons stored (planner estimate)."),
    "neis_week_complete_ratio": (
        "gauge",
        "Share of a level's active schools done or without data in the current school week.",
    ),
    "neis_newest_complete_week_age_seconds": (
        "gauge",
        "Seconds since the Monday (00:00 KST) of the newest school week complete for a level; "
        f"+Inf when none of the last {WEEKS_BACK} is.",
    ),
    "neis_workers_alive": ("gauge", "Celery workers heard from, by queue they consume."),
}


def render() -> str:
    """The metrics in Prometheus' text format (version 0.0.4)."""
    from collector.workers import WorkerHeartbeat

    now = clock.now()
    lines: dict[str, list[str]] = {name: [] for name in METRICS}
    open_runs = list(CollectionRun.objects.open())
    by_level = dict.fromkeys(RunLevel.values, 0)
    for run in open_runs:
        by_level[run.level] += 1
    for level, n in by_level.items():
        lines["neis_open_runs"].append(_line("neis_open_runs", n, level=level))
    live = SchoolRun.objects.filter(run__in=open_runs).counts_by_run() if open_runs else {}
    for status in UnitStatus.values:
        n = sum(counts[f"units_{status}"] for counts in live.values())
        lines["neis_open_run_units"].append(_line("neis_open_run_units", n, state=status))
    closed = CollectionRun.objects.exclude(pk__in=[run.pk for run in open_runs])
    spent = (closed.aggregate(n=Sum("requests"))["n"] or 0) + sum(
        counts["requests"] for counts in live.values()
    )
    lines["neis_requests_total"].append(_line("neis_requests_total", spent))
    lessons = console.estimated_lessons()
    if lessons is None:
        from collector.models import Lesson

        lessons = Lesson.objects.count()
    lines["neis_lessons_stored_estimated"].append(_line("neis_lessons_stored_estimated", lessons))
    this_week = clock.monday_of(clock.today())
    weeks = [this_week - datetime.timedelta(weeks=n) for n in range(WEEKS_BACK)]
    states = week_states(weeks)
    for level in LEVELS:
        ratio = states[(level, this_week)].ratio
        lines["neis_week_complete_ratio"].append(
            _line("neis_week_complete_ratio", f"{ratio:.4f}", level=level)
        )
        newest = next((w for w in weeks if states[(level, w)].is_complete), None)
        age = f"{(now - week_start(newest)).total_seconds():.0f}" if newest else "+Inf"
        lines["neis_newest_complete_week_age_seconds"].append(
            _line("neis_newest_complete_week_age_seconds", age, level=level)
        )
    for queue in ("neis", "default"):
        n = len(WorkerHeartbeat.objects.consumers(now).get(queue, []))
        lines["neis_workers_alive"].append(_line("neis_workers_alive", n, queue=queue))
    out = []
    for name, (kind, help_text) in METRICS.items():
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines[name]]
    return "\n".join(out) + "\n"


def metrics_view(request):
    """``/metrics``: Prometheus text. With ``METRICS_TOKEN`` set, only for a request carrying
    it (``Authorization: Bearer <token>``); without it, for anyone who can reach the URL."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponseForbidden("metrics token required\n", content_type="text/plain")
    return HttpResponse(render(), content_type="text/plain; version=0.0.4; charset=utf-8")
