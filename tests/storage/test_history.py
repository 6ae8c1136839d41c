"""The change history store_lessons writes with each merge, on every write path.

Each test stores a week, changes it the way NEIS revises timetables, stores it again and
reads back exactly the history the change should leave: nothing missed, nothing invented.
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from collector.models import ChangeKind, LessonChange, Subject
from collector.storage import Observer, store_lessons
from tests.storage.factories import MONDAY, SUNDAY, lesson, week

pytestmark = pytest.mark.django_db
SEEN = Observer(run_id=7, unit_id=70)


def store(school, records, method, **options):
    options.setdefault("history", SEEN)
    return store_lessons(school, MONDAY, SUNDAY, records, method=method, **options)


def history(**filters) -> list[tuple]:
    """(kind, date, grade, class, period, subject before, subject after, lessons) in id order."""
    rows = LessonChange.objects.filter(**filters).order_by("id")
    return [
        (
            r.kind,
            r.date,
            r.grade,
            r.class_name,
            r.period,
            r.subject_before and r.subject_before.raw,
            r.subject_after and r.subject_after.raw,
            r.lessons,
        )
        for r in rows.select_related("subject_before", "subject_after")
    ]


def _sorted(rows):
    return sorted(rows, key=lambda row: tuple(str(v) for v in row))


def test_it_records_a_first_load_as_one_baseline(school, method):
    records = week(school)
    store(school, records, method)
    assert history() == [("baseline", MONDAY, None, "", None, None, None, len(records))]
    change = LessonChange.objects.get()
    assert (change.run_id, change.unit_id, change.school_id) == (7, 70, school.pk)


def test_it_records_nothing_for_an_unchanged_rerun(school, method):
    records = week(school)
    store(school, records, method)
    store(school, records, method)
    assert LessonChange.objects.count() == 1


def test_it_records_a_subject_swap_as_a_removal_and_an_addition_in_the_slot(school, method):
    records = week(school)
    store(school, records, method)
    swapped = records[5]
    new = dataclasses.replace(swapped, subject_raw="-미술", subject="미술")
    store(school, [*records[:5], new, *records[6:]], method)
    slot = (swapped.date, swapped.grade, swapped.class_name, swapped.period)
    assert _sorted(history(kind__in=["added", "removed"])) == _sorted(
        [
            ("added", *slot, None, "-미술", 1),
            ("removed", *slot, swapped.subject_raw, None, 1),
        ]
    )


def test_it_summarises_a_vanished_day_and_records_a_cancelled_period(school, method):
    records = week(school)
    store(school, records, method)
    tuesday = MONDAY + datetime.timedelta(days=1)
    cancelled = next(r for r in records if r.date == MONDAY)
    kept = [r for r in records if r.date != tuesday and r is not cancelled]
    store(school, kept, method)
    gone = sum(r.date == tuesday for r in records)
    assert _sorted(history(kind__in=["removed", "day_removed"])) == _sorted(
        [
            ("day_removed", tuesday, None, "", None, None, None, gone),
            (
                "removed",
                MONDAY,
                cancelled.grade,
                cancelled.class_name,
                cancelled.period,
                cancelled.subject_raw,
                None,
                1,
            ),
        ]
    )


def test_it_records_a_new_day_as_baseline_and_a_new_period_as_added(school, method):
    records = [r for r in week(school) if r.date != MONDAY + datetime.timedelta(days=4)]
    store(school, records, method)
    friday = week(school)[-1].date
    new_day = [r for r in week(school) if r.date == friday]
    extra = lesson(school, 0, 1, "1", 9, "-정보")
    store(school, [*records, *new_day, extra], method)
    assert _sorted(history()[1:]) == _sorted(
        [
            ("baseline", friday, None, "", None, None, None, len(new_day)),
            ("added", MONDAY, 1, "1", 9, None, "-정보", 1),
        ]
    )


def test_it_tells_a_reload_from_a_change_of_year_or_semester(school, method):
    records = week(school)
    store(school, records, method)
    reloaded = dataclasses.replace(
        records[0], load_dtm=records[0].load_dtm + datetime.timedelta(days=1)
    )
    moved = dataclasses.replace(records[1], semester=2)
    store(school, [reloaded, moved, *records[2:]], method)
    changes = {c.kind: c for c in LessonChange.objects.exclude(kind=ChangeKind.BASELINE)}
    assert set(changes) == {"reloaded", "updated"}
    assert (changes["reloaded"].load_dtm_before, changes["reloaded"].load_dtm_after) == (
        records[0].load_dtm,
        reloaded.load_dtm,
    )
    assert (changes["updated"].semester_before, changes["updated"].semester_after) == (1, 2)
    subject = Subject.objects.get(raw=records[1].subject_raw)
    assert changes["updated"].subject_before == changes["updated"].subject_after == subject


def test_it_records_nothing_when_told_not_to(school, method):
    store(school, week(school), method, history=None)
    assert LessonChange.objects.count() == 0
