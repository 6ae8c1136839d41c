"""Custom console pages: completeness by school and week ("what is missing"), and the
timetable change history (a run's changes, a school's week with its changed cells, the most
changed schools of a week). Read-only; each asks for view permission on the ledger.
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.db.models.expressions import RawSQL
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from collector import clock, console
from collector.admin_console import CHANGED
from collector.ledger import CollectionRun, RunLevel, UnitStatus
from collector.models import ChangeKind, Lesson, LessonChange, Office, School

# The range the completeness grid shows by default: the last 8 weeks, this one, the next 2.
WEEKS_BEFORE, WEEKS_AFTER = 8, 2
# Longest range it draws (a school year), so a typo cannot ask for a century of cells.
MAX_WEEKS = 53
# Schools the national "most changed" list names.
MOST_CHANGED = 30
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _require_ledger_view(request) -> None:
    if not request.user.has_perm("collector.view_schoolrun"):
        raise PermissionDenied


def _monday(value: str, default: datetime.date, request, name: str) -> datetime.date:
    """The Monday of the date ``value``; ``default`` (with a message) when it is none."""
    if not value:
        return default
    try:
        day = datetime.date.fromisoformat(value)
        monday = clock.monday_of(day)
        monday + datetime.timedelta(days=6)  # the week must end before year 10000
        return monday
    except (ValueError, OverflowError):
        messages.warning(request, f"{name} “{value}” is not a date (YYYY-MM-DD): ignored.")
        return default


def _level(request) -> str:
    level = request.GET.get("level", RunLevel.ALL)
    return level if level in RunLevel.values else RunLevel.ALL


# --- Completeness by school and week ---------------------------------------------------------


def missing_in_week_sql(monday: datetime.date) -> tuple[str, list]:
    """SQL of the school ids whose latest unit of the week is anything but failed: the schools
    that are *not* missing (so "missing" is every other active school: never tried, or failed)."""
    covering = console.week_runs([monday], RunLevel.ALL)
    sql, params = console.latest_states_sql(covering, RunLevel.ALL, None)
    return f"SELECT l.school_id FROM ({sql}) l WHERE l.status <> %s", [
        *params,
        UnitStatus.FAILED.value,
    ]


class MissingInWeekFilter(admin.SimpleListFilter):
    """Active schools of a collected level that a week lacks: never attempted, or whose
    latest attempt failed. What "collect what is missing or failed" collects."""

    title = "missing or failed in the school week"
    parameter_name = "missing_in_week"

    def lookups(self, request, model_admin):
        this_week = clock.monday_of(clock.today())
        weeks = [this_week - datetime.timedelta(weeks=n) for n in range(3)]
        asked = self._week()
        if asked and asked not in weeks:
            weeks.append(asked)
        return [(week.isoformat(), f"week of {week}") for week in weeks]

    def _week(self) -> datetime.date | None:
        try:
            return clock.monday_of(datetime.date.fromisoformat(self.value() or ""))
        except ValueError:
            return None

    def queryset(self, request, queryset):
        if self.value() is None:
            return None
        week = self._week()
        if week is None:
            raise IncorrectLookupParameters(f"{self.value()!r} is not a date")
        sql, params = missing_in_week_sql(week)
        return queryset.filter(active=True).exclude(level="").exclude(pk__in=RawSQL(sql, params))


def coverage_view(request):
    """Active schools by school week and state, per office (or one office's schools)."""
    _require_ledger_view(request)
    level = _level(request)
    this_week = clock.monday_of(clock.today())
    first = _monday(
        request.GET.get("from", ""),
        this_week - datetime.timedelta(weeks=WEEKS_BEFORE),
        request,
        "From",
    )
    last = _monday(
        request.GET.get("to", ""), this_week + datetime.timedelta(weeks=WEEKS_AFTER), request, "To"
    )
    if last < first:
        first, last = last, first
    if (last - first).days // 7 + 1 > MAX_WEEKS:
        messages.warning(request, f"At most {MAX_WEEKS} weeks at once: showing the last ones.")
        first = last - datetime.timedelta(weeks=MAX_WEEKS - 1)
    weeks = [first + datetime.timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]
    office = request.GET.get("office") or None
    offices = dict(Office.objects.values_list("code", "name"))
    if office and office not in offices:
        messages.warning(request, f"No office “{office}”: showing every office.")
        office = None
    found = console.coverage(level, weeks, office)
    school_changelist = reverse("admin:collector_school_changelist")
    ledger = reverse("admin:collector_schoolrun_changelist")
    partial_list = reverse("admin:collector_schoolweek_changelist")
    can_collect = request.user.has_perm("collector.start_collection")
    columns = []
    for week in weeks:
        total = found.cell(office, week)
        query = {"missing_in_week": week.isoformat(), "active__exact": "1"}
        if level != RunLevel.ALL:
            query["level__exact"] = level
        if office:
            query["office__code__exact"] = office
        ledger_query = {"latest_for_week": week.isoformat()}
        if level != RunLevel.ALL:
            ledger_query["school__level__exact"] = level
        if office:
            ledger_query["school__office__code__exact"] = office
        partial_query = {"monday": week.isoformat(), "partial__exact": "1"}
        if level != RunLevel.ALL:
            partial_query["school__level__exact"] = level
        if office:
            partial_query["school__office__code__exact"] = office
        columns.append(
            {
                "partial_url": f"{partial_list}?{urlencode(partial_query)}",
                "week": week,
                "sunday": week + datetime.timedelta(days=6),
                "current": week == this_week,
                "total": total,
                "missing_url": f"{school_changelist}?{urlencode(query)}",
                "ledger_url": f"{ledger}?{urlencode(ledger_query)}",
            }
        )
    rows = []
    if office:
        schools = School.objects.filter(active=True, office_id=office).order_by("code")
        if level != RunLevel.ALL:
            schools = schools.filter(level=level)
        else:
            schools = schools.exclude(level="")
        for school in schools.only("pk", "code", "name", "level"):
            states = found.cells.get(school.pk, {})
            rows.append(
                {
                    "school": school,
                    "cells": [states.get(week, "never") for week in weeks],
                }
            )
    else:
        for code in sorted(found.registry):
            rows.append(
                {
                    "code": code,
                    "name": offices.get(code, ""),
                    "registry": found.registry[code],
                    "cells": [found.cell(code, week) for week in weeks],
                }
            )
    any_school = School.objects.filter(active=True).values_list("pk", flat=True).first()
    base = {"level": level, "from": first.isoformat(), "to": last.isoformat()}
    context = {
        **admin.site.each_context(request),
        "title": f"Completeness by school week: {level}"
        + (f", {office} {offices[office]}" if office else ", every office"),
        "level": level,
        "levels": RunLevel.choices,
        "office": office,
        "office_name": offices.get(office, ""),
        "offices": sorted(offices.items()),
        "first": first,
        "last": last,
        "columns": columns,
        "rows": rows,
        "registry": sum(found.registry.values()),
        "states": console.CELL_STATES,
        "can_collect": can_collect and any_school is not None,
        "any_school": any_school,
        "national_url": f"{reverse('collector_coverage')}?{urlencode(base)}",
        "office_url": f"{reverse('collector_coverage')}?{urlencode(base)}&office=",
        "checkbox": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/collector/coverage.html", context)


# --- Change history ---------------------------------------------------------------------------


def changes_view(request):
    """A run's changes (``?run=``), a school's week (``?school=&week=``), or the most changed
    schools of a week by office and level (``?week=``, default this week)."""
    _require_ledger_view(request)
    if request.GET.get("school"):
        return _school_week(request)
    if request.GET.get("run"):
        return _run_changes(request)
    return _most_changed(request)


def _base(request, title: str) -> dict:
    return {**admin.site.each_context(request), "title": title}


def _run_changes(request):
    from collector.admin_console import changes_of_run

    value = request.GET["run"]
    run = CollectionRun.objects.filter(pk=int(value)).first() if value.isdigit() else None
    if run is None:
        messages.warning(request, f"No run “{value}”.")
        return _most_changed(request)
    kinds = dict(
        LessonChange.objects.filter(run_id=run.pk)
        .values_list("kind")
        .annotate(n=Sum("lessons"))
        .order_by()
    )
    context = _base(request, f"Timetable changes seen by run {run.pk}")
    context.update(
        run=run,
        summary=changes_of_run(run),
        kinds=[(label, kinds.get(kind, 0)) for kind, label in ChangeKind.choices],
        run_url=reverse("admin:collector_collectionrun_change", args=[run.pk]),
    )
    return TemplateResponse(request, "admin/collector/changes_run.html", context)


def _most_changed(request):
    this_week = clock.monday_of(clock.today())
    week = _monday(request.GET.get("week", ""), this_week, request, "Week")
    sunday = week + datetime.timedelta(days=6)
    # The lesson dates of the week: the history is partitioned by date, so this reads one or
    # two monthly partitions through their (school, date) index.
    changed = LessonChange.objects.filter(date__range=(week, sunday), kind__in=CHANGED)
    by_school = (
        changed.values("school_id", "school__office_id", "school__level")
        .annotate(n=Sum("lessons"))
        .order_by()
    )
    table: dict[tuple[str, str], dict] = defaultdict(lambda: {"lessons": 0, "schools": 0})
    top = []
    for row in by_school:
        cell = table[(row["school__office_id"], row["school__level"])]
        cell["lessons"] += row["n"]
        cell["schools"] += 1
        top.append((row["n"], row["school_id"]))
    top.sort(key=lambda item: (-item[0], item[1]))
    top = top[:MOST_CHANGED]
    schools = School.objects.select_related("office").in_bulk([pk for _, pk in top])
    levels = [value for value in RunLevel.values if value != RunLevel.ALL]
    offices = dict(Office.objects.values_list("code", "name"))
    rows = [
        {
            "code": code,
            "name": offices.get(code, ""),
            "cells": [table.get((code, level)) for level in levels],
            "lessons": sum(table[(code, level)]["lessons"] for level in levels),
        }
        for code in sorted({code for code, _ in table})
    ]
    base = reverse("collector_changes")
    context = _base(request, f"Most changed timetables, school week of {week}")
    context.update(
        week=week,
        previous_week=week - datetime.timedelta(weeks=1),
        next_week=week + datetime.timedelta(weeks=1),
        levels=levels,
        rows=rows,
        total=sum(row["lessons"] for row in rows),
        top=[
            {
                "school": schools[pk],
                "lessons": n,
                "url": f"{base}?{urlencode({'school': schools[pk].code, 'week': week})}",
            }
            for n, pk in top
            if pk in schools
        ],
    )
    return TemplateResponse(request, "admin/collector/changes_week.html", context)


_SLOT = ("grade", "class_name", "period", "day_night", "track", "department", "course")


def _school_week(request):
    code = request.GET["school"]
    school = School.objects.select_related("office").filter(code=code).first()
    if school is None:
        messages.warning(request, f"No school with code “{code}”.")
        return _most_changed(request)
    this_week = clock.monday_of(clock.today())
    week = _monday(request.GET.get("week", ""), this_week, request, "Week")
    days = [week + datetime.timedelta(days=n) for n in range(6)]
    lessons = (
        Lesson.objects.filter(school=school, date__range=(days[0], days[-1]))
        .select_related("subject")
        .order_by("grade", "class_name", "period", "date")
    )
    history = (
        LessonChange.objects.filter(school=school, date__range=(days[0], days[-1]))
        .exclude(kind=ChangeKind.BASELINE)
        .select_related("subject_before", "subject_after")
        .order_by("id")
    )
    # One grid per class: periods down, days across; a cell lists the lessons of the slot.
    grids: dict[tuple, dict] = {}

    def grid(grade, class_name):
        return grids.setdefault(
            (grade, class_name), {"grade": grade, "class_name": class_name, "cells": {}}
        )

    changed_slots: dict[tuple, list] = defaultdict(list)
    day_events = []
    for change in history:
        entry = {
            "kind": change.get_kind_display(),
            "before": _subject(change.subject_before),
            "after": _subject(change.subject_after),
            "when": console.kst(change.observed_at),
            "run": change.run_id,
            "lessons": change.lessons,
            "day": change.date,
        }
        if change.kind == ChangeKind.DAY_REMOVED:
            day_events.append(entry)
            continue
        changed_slots[(change.grade, change.class_name, change.period, change.date)].append(entry)
        grid(change.grade, change.class_name)
    for lesson in lessons:
        cell = grid(lesson.grade, lesson.class_name)["cells"].setdefault(
            (lesson.period, lesson.date), []
        )
        cell.append(lesson.subject.name or "(empty)")
    tables = []
    for (grade, class_name), found in sorted(grids.items(), key=lambda item: _class_order(item[0])):
        periods = sorted(
            {p for p, _ in found["cells"]}
            | {p for g, c, p, _ in changed_slots if (g, c) == (grade, class_name) and p}
        )
        body = []
        for period in periods:
            cells = []
            for day in days:
                events = changed_slots.get((grade, class_name, period, day), [])
                cells.append(
                    {
                        "subjects": found["cells"].get((period, day), []),
                        "changes": events,
                    }
                )
            body.append({"period": period, "cells": cells})
        changes = [
            {"period": p, "day": d, **event}
            for (g, c, p, d), events in sorted(changed_slots.items(), key=_slot_order)
            if (g, c) == (grade, class_name)
            for event in events
        ]
        tables.append({"grade": grade, "class_name": class_name, "rows": body, "changes": changes})
    base = reverse("collector_changes")
    context = _base(request, f"{school.code} {school.name}: school week of {week}")
    context.update(
        school=school,
        school_url=reverse("admin:collector_school_change", args=[school.pk]),
        week=week,
        days=[(day, _WEEKDAYS[day.weekday()]) for day in days],
        tables=tables,
        day_events=day_events,
        changed=sum(len(t["changes"]) for t in tables) + len(day_events),
        previous_url=f"{base}?{urlencode({'school': code, 'week': week - datetime.timedelta(7)})}",
        next_url=f"{base}?{urlencode({'school': code, 'week': week + datetime.timedelta(7)})}",
    )
    return TemplateResponse(request, "admin/collector/changes_school.html", context)


def _subject(subject) -> str:
    return (subject.name or "(empty)") if subject is not None else ""


def _class_order(key):
    grade, class_name = key
    return (grade or 0, int(class_name) if class_name.isdigit() else 10**6, class_name)


def _slot_order(item):
    (grade, class_name, period, day), _ = item
    return (period or 0, day)


def quota_plan_view(request):
    """``manage.py quota_plan`` as a page: keys' budgets, the schedules' needs, what fits."""
    from django.http import HttpResponse
    from django.utils.html import escape

    from collector import planning

    _require_ledger_view(request)
    text = planning.render(planning.forecast(7))
    return HttpResponse(
        "<!doctype html><title>NEIS quota plan</title><h1>NEIS quota plan (next 7 days)</h1>"
        f"<pre>{escape(text)}</pre>"
    )


def console_urls():
    return [
        path(
            "collector/quota-plan/",
            admin.site.admin_view(quota_plan_view),
            name="collector_quota_plan",
        ),
        path(
            "collector/coverage/",
            admin.site.admin_view(coverage_view),
            name="collector_coverage",
        ),
        path(
            "collector/changes/",
            admin.site.admin_view(changes_view),
            name="collector_changes",
        ),
    ]
