"""Plain-text summaries of plans, runs and completeness, for commands and the demo."""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db.models import Count, Sum
from django.db.models.expressions import RawSQL

from collector.ledger import CollectionRun, LatestUnit, RunLevel, SchoolRun, UnitStatus


def latest_units(monday: datetime.date):
    """Each school's unit in its latest run covering the school week of ``monday`` (to Friday).

    Cancelled units do not count; a school whose only covering units were cancelled is absent.
    This is what the completeness page counts, and what its links list. On PostgreSQL they
    are the week's rows of ``LatestUnit``, which the database keeps; elsewhere the covering
    runs are read first (a small table), so the units are found through their runs' index
    (``console.latest_states_sql``), not a correlated subquery per unit.
    """
    from collector import console

    if LatestUnit.kept():
        return SchoolRun.objects.filter(
            pk__in=LatestUnit.objects.filter(monday=monday).values("unit_id")
        )
    covering = console.week_runs([monday], RunLevel.ALL)
    sql, params = console.latest_states_sql(covering, RunLevel.ALL, None, active_only=False)
    ids = f"SELECT l.unit_id FROM ({sql}) l"
    return SchoolRun.objects.filter(pk__in=RawSQL(ids, params))


def _table(headers: list[str], rows: list[list]) -> str:
    cells = [headers] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(value.rjust(widths[i]) for i, value in enumerate(row)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_plan(plan) -> str:
    lines = [
        f"Dry run: {', '.join(plan.levels)} from {plan.date_from} to {plan.date_to}.",
        f"Would collect {plan.schools} schools ({plan.skipped - plan.busy.schools} skipped as "
        "already collected" + (f"; {plan.busy}" if plan.busy.schools else "") + ").",
        _table(["office", "schools"], sorted(plan.by_office.items())),
        f"Estimated: {plan.requests} NEIS requests (the same quota use), "
        f"about {plan.rows:,} lessons. Nothing was fetched or written.",
    ]
    return "\n".join(lines)


STATUS_COLUMNS = [
    UnitStatus.DONE,
    UnitStatus.NO_DATA,
    UnitStatus.DEFERRED,
    UnitStatus.FAILED,
    UnitStatus.PENDING,
    UnitStatus.RUNNING,
    UnitStatus.CANCELLED,
]


def completeness(units) -> list[dict]:
    """Per office and level: units by status and lessons stored, from a SchoolRun queryset."""
    grouped = (
        units.values("school__office_id", "school__level", "status")
        .annotate(n=Count("id"), rows=Sum("rows_fetched"))
        .order_by()
    )
    table: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(int))
    for row in grouped:
        entry = table[(row["school__office_id"], row["school__level"])]
        entry[row["status"]] += row["n"]
        entry["expected"] += row["n"]
        entry["rows"] += row["rows"] or 0
    return [
        {"office": office, "level": level, **counts}
        for (office, level), counts in sorted(table.items())
    ]


def format_completeness(rows: list[dict]) -> str:
    headers = ["office", "level", "expected", *[s.label.lower() for s in STATUS_COLUMNS], "rows"]
    body = [
        [r["office"], r["level"], r["expected"], *[r.get(s, 0) for s in STATUS_COLUMNS], r["rows"]]
        for r in rows
    ]
    totals = ["all", "", sum(r["expected"] for r in rows)]
    totals += [sum(r.get(s, 0) for r in rows) for s in STATUS_COLUMNS]
    totals.append(sum(r["rows"] for r in rows))
    return _table(headers, [*body, totals])


def failed_units(units, limit: int = 50) -> str:
    failed = units.filter(status=UnitStatus.FAILED).select_related("school")[:limit]
    lines = [
        f"  {u.school.code} {u.school.name} ({u.school.office_id}): "
        f"{u.last_error_code} {u.last_error}"
        for u in failed
    ]
    return "\n".join(["Failed schools:", *lines]) if lines else ""


def format_run(run: CollectionRun) -> str:
    units = SchoolRun.objects.filter(run=run)
    seconds = (
        (run.finished_at - run.started_at).total_seconds()
        if run.finished_at and run.started_at
        else 0
    )
    rate = f", {run.rows_fetched / seconds:,.0f} lessons/s" if seconds else ""
    parts = [
        f"Run {run.pk} ({run.level}, {run.date_from} to {run.date_to}): {run.get_status_display()}",
        format_completeness(completeness(units)),
        f"Lessons: {run.rows_fetched:,} fetched, {run.rows_inserted:,} inserted, "
        f"{run.rows_updated:,} updated, {run.rows_unchanged:,} unchanged, "
        f"{run.rows_removed:,} removed; {run.requests:,} NEIS requests in {seconds:,.1f} s{rate}.",
    ]
    missing = units.aggregate(total=Sum("rows_missing"))["total"] or 0
    if missing:
        parts.append(f"NEIS announced {missing:,} rows more than it served (see the ledger).")
    failed = failed_units(units)
    if failed:
        parts.append(failed)
    return "\n".join(parts)


def partial_weeks(units, mondays: list[datetime.date], limit: int = 50) -> str:
    """The partial school-weeks among the schools of ``units`` in ``mondays``: classes and
    school days with lessons against those classInfo and SchoolSchedule expect. "" when none;
    a line saying so when no calendar is stored for them (nothing can be called partial)."""
    from collector.completeness import SchoolWeek

    weeks = SchoolWeek.objects.filter(
        monday__in=mondays, school_id__in=units.values("school_id")
    ).select_related("school")
    if not weeks.filter(lessons__gt=0).exclude(classes_expected=None, days_expected=None).exists():
        return (
            "Classes and days: not checked (no classInfo or SchoolSchedule stored for these "
            "schools; collector.refresh_calendars asks them)."
        )
    partial = weeks.partial()
    total = partial.count()
    if not total:
        return "Classes and days: every school-week with lessons has all its classes and days."
    rows = [
        [
            w.school.code,
            w.school.name[:20],
            w.monday,
            f"{w.classes_seen}/{'?' if w.classes_expected is None else w.classes_expected}",
            f"{w.days_seen}/{'?' if w.days_expected is None else w.days_expected}",
        ]
        for w in partial[:limit]
    ]
    more = f"\n... and {total - limit} more" if total > limit else ""
    return (
        f"Partial: {total} school-weeks with classes or school days missing "
        "(NEIS has not published them yet; re-polled first):\n"
        + _table(["school", "name", "week of", "classes", "days"], rows)
        + more
    )
