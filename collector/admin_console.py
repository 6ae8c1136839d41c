"""Pieces of the operations console shared by the run pages and the custom views: the banner
that says why nothing moves (no worker on a queue, the quota spent, the key refused), the
links from a run to its ledger, schedule and changes, and how a unit's state reads.

Plain helpers over ``collector.console``, ``collector.workers`` and the models; the model
admins (``admin_runs``) and the custom views import them, never the reverse.
"""

from __future__ import annotations

import datetime

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from collector import clock, console
from collector.ledger import Trigger, UnitStatus
from collector.models import ChangeKind, LessonChange, School
from collector.workers import WorkerHeartbeat

# Kinds of history row that are a change of a timetable already stored (a first load, and
# NEIS reloading a row without changing it, are not).
CHANGED = (ChangeKind.ADDED, ChangeKind.REMOVED, ChangeKind.UPDATED, ChangeKind.DAY_REMOVED)
# Seconds between refreshes of a page that shows an open run.
REFRESH_SECONDS = 15
# Schools listed under "lessons changed" on a run's page.
CHANGED_SCHOOLS_LISTED = 50

LEDGER = "admin:collector_schoolrun_changelist"


def console_context(request) -> dict:
    """What the run pages show above their content: workers, quota, when the page was made."""
    now = clock.now()
    try:
        consumers = WorkerHeartbeat.objects.consumers(now)
    except Exception:  # the table may be missing before migrate; say nothing rather than 500
        consumers = None
    missing = [] if consumers is None else [q for q in ("neis", "default") if q not in consumers]
    return {
        "console": {
            "missing_queues": missing,
            "consumers": consumers or {},
            "keys": console.quota(),
            "rendered": now,
            "rendered_kst": console.kst(now, seconds=True),
            "rendered_epoch": int(now.timestamp()),
            "refresh": REFRESH_SECONDS,
        }
    }


def no_worker_warning(missing: list[str]) -> str:
    """The banner's sentence for queues no worker consumes; '' when every queue has one."""
    if not missing:
        return ""
    queues = " and ".join(f"“{q}”" for q in missing)
    return (
        f"No worker consumes {queues}: queued schools wait until one starts "
        f"(celery -A proj worker -Q {','.join(missing)}). No heartbeat in the last "
        "45 s; see Worker heartbeats."
    )


def unit_reason(unit) -> str:
    """Why a unit is where it is, for a person: a deferred unit says until when (its old
    error is stale by then), a failed one its error."""
    if unit.status == UnitStatus.DEFERRED and unit.defer_until:
        until = clock.in_seoul(unit.defer_until)
        same_day = until.date() == clock.today()
        when = console.kst_time(until) if same_day else console.kst(until)
        return f"deferred until {when} (quota)"
    return unit.last_error[:300]


def ledger_url(**query) -> str:
    return f"{reverse(LEDGER)}?{urlencode(query)}" if query else reverse(LEDGER)


def run_links(run) -> list[tuple[str, str]]:
    """(url, text) from a run to everything about it."""
    links = [
        (ledger_url(run=run.pk), "its ledger"),
        (ledger_url(run=run.pk, status__exact=UnitStatus.FAILED), "failed schools"),
        (ledger_url(run=run.pk, status__exact=UnitStatus.DEFERRED), "deferred schools"),
        (f"{reverse('collector_changes')}?{urlencode({'run': run.pk})}", "changes"),
        (
            f"{reverse('collector_coverage')}?"
            f"{urlencode({'level': run.level, 'from': run.date_from, 'to': run.date_to})}",
            "completeness of its weeks",
        ),
    ]
    schedule = run.schedule()
    if schedule is not None:
        url = reverse("admin:django_celery_beat_periodictask_change", args=[schedule.pk])
        links.append((url, f"schedule “{schedule.name}”"))
    elif run.trigger == Trigger.SCHEDULE:
        url = reverse("admin:django_celery_beat_periodictask_changelist")
        links.append((f"{url}?{urlencode({'q': 'collector.start_scheduled_run'})}", "schedules"))
    return links


def changes_of_run(run) -> str:
    """ "N lessons changed in M schools", the schools listed with links to their weeks."""
    rows = (
        LessonChange.objects.filter(run_id=run.pk)
        .values("school_id")
        .annotate(
            changed=Sum("lessons", filter=Q(kind__in=CHANGED)),
            first=Sum("lessons", filter=Q(kind=ChangeKind.BASELINE)),
            days=Count("date", distinct=True),
        )
        .order_by()
    )
    changed = {r["school_id"]: r["changed"] for r in rows if r["changed"]}
    first_seen = sum(r["first"] or 0 for r in rows)
    if not changed:
        text = "No lesson changed"
        if first_seen:
            text += f"; {first_seen:,} lessons stored for the first time"
        return text + "."
    top = sorted(changed.items(), key=lambda item: (-item[1], item[0]))[:CHANGED_SCHOOLS_LISTED]
    schools = School.objects.in_bulk([school_id for school_id, _ in top])
    base = reverse("collector_changes")
    items = format_html_join(
        "",
        '<li><a href="{}">{} {}</a>: {} lessons</li>',
        (
            (
                f"{base}?{urlencode({'school': schools[sid].code, 'week': run.date_from})}",
                schools[sid].code,
                schools[sid].name,
                f"{n:,}",
            )
            for sid, n in top
            if sid in schools
        ),
    )
    more = len(changed) - len(top)
    return format_html(
        "{} lessons changed in {} schools{}.<ul>{}</ul>{}",
        f"{sum(changed.values()):,}",
        f"{len(changed):,}",
        f"; {first_seen:,} lessons stored for the first time" if first_seen else "",
        items,
        f"… and {more:,} more schools" if more else "",
    )


def progress_bar(progress, width: str = "160px") -> str:
    segments = format_html_join(
        "",
        '<div class="seg {}" style="width: {}%" title="{}: {}"></div>',
        ((s["status"], f"{s['pct']:.2f}", s["label"], f"{s['n']:,}") for s in progress.segments()),
    )
    return format_html('<div class="bar" style="width: {}">{}</div>', width, segments)


def school_runs(school, limit: int = 20) -> str:
    """A school's latest units, newest run first, each linked to its run and its ledger row."""
    from collector.ledger import SchoolRun

    units = (
        SchoolRun.objects.filter(school=school)
        .select_related("run")
        .order_by("-run__created_at", "-run_id")[:limit]
    )
    rows = [
        (
            reverse("admin:collector_collectionrun_change", args=[u.run_id]),
            u.run_id,
            f"{u.run.date_from} – {u.run.date_to}",
            reverse("admin:collector_schoolrun_change", args=[u.pk]),
            u.get_status_display(),
            unit_reason(u) if u.status in (UnitStatus.FAILED, UnitStatus.DEFERRED) else "",
            f"{u.rows_fetched:,}",
        )
        for u in units
    ]
    if not rows:
        return "never in a run"
    body = format_html_join(
        "",
        '<tr><td><a href="{}">run {}</a></td><td>{}</td><td><a href="{}">{}</a></td>'
        "<td>{}</td><td>{}</td></tr>",
        rows,
    )
    return format_html(
        "<table><tr><th>run</th><th>window</th><th>status</th><th>reason</th>"
        '<th>lessons</th></tr>{}</table><a href="{}">all of its units</a>',
        body,
        ledger_url(q=school.code),
    )


def lessons_by_week(school, weeks: int = 12) -> str:
    """Lessons stored per school week, the last ``weeks`` weeks and the next two, each linked
    to the week's timetable with its changes. One range scan of the natural-key index."""
    from django.db.models.functions import TruncWeek

    from collector.models import Lesson

    this_week = clock.monday_of(clock.today())
    first = this_week - datetime.timedelta(weeks=weeks - 1)
    last = this_week + datetime.timedelta(weeks=2, days=6)
    found = dict(
        Lesson.objects.filter(school=school, date__range=(first, last))
        .annotate(week=TruncWeek("date"))
        .values_list("week")
        .annotate(n=Count("*"))
        .order_by()
    )
    found = {(k.date() if hasattr(k, "date") else k): v for k, v in found.items()}
    base = reverse("collector_changes")
    rows = []
    for n in range(weeks + 2):
        week = first + datetime.timedelta(weeks=n)
        query = urlencode({"school": school.code, "week": week.isoformat()})
        rows.append((f"{base}?{query}", week.isoformat(), f"{found.get(week, 0):,}"))
    body = format_html_join("", '<tr><td><a href="{}">week of {}</a></td><td>{}</td></tr>', rows)
    return format_html("<table><tr><th>week</th><th>lessons</th></tr>{}</table>", body)


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered list of a huge table from the planner's estimate (PostgreSQL's
    ``pg_class.reltuples``, kept by ANALYZE and autovacuum) instead of COUNT(*), which reads
    every row (650,000 ledger units a year); a filtered list, or another database, counts
    exactly. The last page of an unfiltered list may so be a little off, never its rows."""

    @cached_property
    def count(self):
        query = getattr(self.object_list, "query", None)
        if connection.vendor == "postgresql" and query is not None and not query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [self.object_list.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > 0:
                return row[0]
        return super().count
