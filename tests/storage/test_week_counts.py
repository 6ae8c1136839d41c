"""A school's weeks counted from what a store says it stored equal a recount that reads the
lessons back (issue 16: the first load no longer reads its own lessons to count them)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from collector import clock
from collector.completeness import CalendarFetch, FetchKind, SchoolClass, SchoolWeek
from collector.storage import store_lessons
from tests.storage.factories import MONDAY, lesson, make_school, week

pytestmark = pytest.mark.django_db

WEEKS = [MONDAY, MONDAY + datetime.timedelta(days=7)]
LAST = WEEKS[-1] + datetime.timedelta(days=6)
FIELDS = ("lessons", "classes_expected", "classes_seen", "days_expected", "days_seen", "partial")


def _weeks(school) -> dict:
    rows = SchoolWeek.objects.filter(school=school, monday__in=WEEKS).order_by("monday")
    return {row.monday: tuple(getattr(row, name) for name in FIELDS) for row in rows}


def _counted_both_ways(school, records) -> dict:
    stored = store_lessons(school, MONDAY, LAST, records)
    assert stored.by_day is not None
    SchoolWeek.objects.recount_school(school.pk, WEEKS, stored)
    told = _weeks(school)
    SchoolWeek.objects.recompute(WEEKS, [school.pk])  # reads the lessons back
    assert _weeks(school) == told
    return told


def test_weeks_counted_from_the_store_equal_weeks_read_back():
    school = make_school()
    # Classes known for the year, one of them padded as archive years serve it; no calendar.
    SchoolClass.objects.bulk_create(
        SchoolClass(school=school, academic_year=2025, grade=grade, class_name=name)
        for grade, name in [(1, "1"), (1, "02"), (2, "1"), (2, "2"), (3, "1")]
    )
    CalendarFetch.objects.create(
        school=school,
        kind=FetchKind.CLASSES,
        period_start=datetime.date(2025, 3, 1),
        period_end=datetime.date(2026, 2, 28),
        fetched_at=clock.now(),
    )
    first = week(school, days=4)  # Monday to Thursday of the first week
    second = [dataclasses.replace(r, date=r.date + datetime.timedelta(days=7)) for r in first]
    saturday = lesson(school, day=12, grade=1, class_name="1", period=1)  # not a school day
    records = first + second[: len(second) // 2] + [saturday] + first[:5]  # and repeats
    told = _counted_both_ways(school, records)
    lessons = len(first)
    assert told[WEEKS[0]] == (lessons, 5, 4, None, 4, True)  # grade 3 has no lesson
    assert told[WEEKS[1]][0] == len(second) // 2
    # A re-store that removes a day and adds none counts the same both ways too.
    assert _counted_both_ways(school, [r for r in records if r.date != MONDAY])[WEEKS[0]][0] == (
        lessons - lessons // 4
    )


def test_an_emptied_window_counts_no_lessons():
    school = make_school()
    _counted_both_ways(school, week(school))
    assert _counted_both_ways(school, [])[MONDAY][0] == 0


def test_weeks_reaching_outside_the_stored_window_are_read_back():
    """A week the store did not wholly cover holds lessons the store never saw."""
    school = make_school()
    store_lessons(school, MONDAY, LAST, week(school))  # Monday to Friday of the first week
    stored = store_lessons(school, MONDAY + datetime.timedelta(days=3), LAST, [])  # from Thursday
    SchoolWeek.objects.recount_school(school.pk, WEEKS, stored)
    assert _weeks(school)[MONDAY][0] == len(week(school, days=3))  # Monday to Wednesday's
