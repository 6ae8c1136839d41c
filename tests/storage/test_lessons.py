"""store_lessons: replace semantics, natural key, counts and idempotence, on every write path."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from django.db import DataError, IntegrityError, transaction

from collector import storage
from collector.models import Lesson, Subject
from collector.neis.records import LessonRecords
from collector.storage import StoreResult, store_lessons
from tests.storage.factories import (
    LOADED,
    MONDAY,
    SUNDAY,
    as_stored,
    lesson,
    lesson_writes,
    make_school,
    postgres,
    requires_postgres,
    row_versions,
    stored,
    week,
)

pytestmark = pytest.mark.django_db


def store(school, records, method, first=MONDAY, last=SUNDAY) -> StoreResult:
    return store_lessons(school, first, last, records, method=method)


def later(record, days=1):
    return dataclasses.replace(record, load_dtm=record.load_dtm + datetime.timedelta(days=days))


def test_it_inserts_a_first_fetch(school, method):
    records = week(school)
    result = store(school, records, method)
    assert result == StoreResult(inserted=len(records))
    assert stored(school) == as_stored(records)


def test_it_inserts_updates_removes_and_keeps(school, method):
    first = week(school)
    store(school, first, method)
    kept, changed, gone = first[:50], first[50:60], first[60:]
    new = [lesson(school, 0, 3, "1", period) for period in range(1, 4)]
    second = kept + [later(r) for r in changed] + new
    result = store(school, second, method)
    assert result == StoreResult(inserted=3, updated=10, unchanged=50, removed=len(gone))
    assert stored(school) == as_stored(second)


def test_it_changes_nothing_on_an_identical_rerun(school, method):
    records = week(school)
    store(school, records, method)
    before = list(Lesson.objects.order_by("pk").values())
    versions = row_versions() if postgres() else None
    writes = lesson_writes()
    result = store(school, list(reversed(records)), method)
    assert lesson_writes() == writes
    assert result == StoreResult(unchanged=len(records))
    assert list(Lesson.objects.order_by("pk").values()) == before
    if postgres():
        # Not one row version written: nothing to vacuum, no dead tuple.
        assert row_versions() == versions


def test_it_bumps_changed_at_only_on_a_real_change(school, method):
    records = week(school, days=1)
    store(school, records, method)
    stamps = dict(Lesson.objects.values_list("pk", "changed_at"))
    store(school, [later(records[0])] + records[1:], method)
    after = {pk: (first, changed) for pk, first, changed in
             Lesson.objects.values_list("pk", "first_stored_at", "changed_at")}  # fmt: skip
    moved = [pk for pk, (first, changed) in after.items() if changed != stamps[pk]]
    assert len(moved) == 1
    first_stored, changed = after[moved[0]]
    assert changed > first_stored
    assert all(first == stamps[pk] for pk, (first, _) in after.items())


def test_it_keeps_every_elective_sharing_a_period(school, method):
    electives = [
        lesson(school, subject="물리학Ⅰ", classroom="물리실"),
        lesson(school, subject="화학Ⅰ", classroom="화학실"),
        lesson(school, subject="영어", classroom="2-1"),
        lesson(school, subject="영어", classroom="2-2"),  # one subject, two groups
    ]
    assert store(school, electives, method).inserted == 4
    assert Lesson.objects.filter(period=1).count() == 4


def test_it_collapses_byte_identical_duplicates(school, method):
    records = week(school, days=1)
    result = store(school, records + records[:7], method)
    assert result == StoreResult(inserted=len(records), collapsed=7)
    assert Lesson.objects.count() == len(records)


def test_it_stores_records_given_by_column_without_making_them(school, method, monkeypatch):
    records = week(school)
    given = records + records[:5]  # byte-identical rows, collapsed
    by_column = LessonRecords.of(given)
    monkeypatch.setattr(LessonRecords, "records", lambda self: pytest.fail("records made"))
    result = store(school, by_column, method)
    assert result == StoreResult(inserted=len(records), collapsed=5)
    assert stored(school) == as_stored(records)


def test_it_keeps_the_latest_load_dtm_of_rows_differing_only_in_it(school, method):
    old = lesson(school)
    new = later(old, days=3)
    undated = dataclasses.replace(old, load_dtm=None)
    for order in ([old, new, undated], [undated, new, old]):
        Lesson.objects.all().delete()
        result = store(school, order, method)
        assert (result.inserted, result.collapsed) == (1, 2)
        assert Lesson.objects.get().load_dtm == new.load_dtm


def test_it_treats_a_changed_subject_as_another_lesson(school, method):
    store(school, [lesson(school, subject="-수학")], method)
    result = store(school, [lesson(school, subject="-영어")], method)
    assert result == StoreResult(inserted=1, removed=1)
    assert Lesson.objects.get().subject.raw == "-영어"


def test_it_stores_the_subject_as_served_and_normalised(school, method):
    store(school, [lesson(school, subject="-수학Ⅰ"), lesson(school, period=2, subject="")], method)
    assert set(Subject.objects.values_list("raw", "name")) == {("-수학Ⅰ", "수학Ⅰ"), ("", "")}


def test_it_stores_texts_holding_copys_own_characters_as_given(school, method):
    # The COPY path writes text format: a backslash, tab, newline or CR in a value must
    # arrive as that character, not as an escape, a column break or a row break. (The parser
    # replaces control characters, but store_lessons takes any record.)
    odd = ["a\\b", "a\tb", "a\nb", "a\rb", "\\N", "\\", "C:\\temp\\"]
    records = [
        lesson(school, period=number, class_name=text, classroom=text + "x", track=text)
        for number, text in enumerate(odd, start=1)
    ]
    assert store(school, records, method) == StoreResult(inserted=len(records))
    assert stored(school) == as_stored(records)
    assert store(school, records, method) == StoreResult(unchanged=len(records))


def test_it_leaves_lessons_outside_the_window_alone(school, method):
    this_week = week(school, days=5)
    next_week = [
        dataclasses.replace(r, date=r.date + datetime.timedelta(days=7)) for r in this_week
    ]
    next_monday, next_sunday = MONDAY + datetime.timedelta(days=7), SUNDAY + datetime.timedelta(7)
    store(school, this_week, method)
    store(school, next_week, method, next_monday, next_sunday)
    # Replacing this week with a single lesson removes this week's others, nothing of the next.
    result = store(school, this_week[:1], method)
    assert result.removed == len(this_week) - 1
    assert stored(school, next_monday, next_sunday) == as_stored(next_week)


def test_it_leaves_other_schools_alone(school, method):
    other = make_school("7010058")
    store(school, week(school, days=1), method)
    store(other, week(other, days=1), method)
    result = store(school, [], method)
    assert result.removed == len(week(school, days=1))
    assert stored(other) == as_stored(week(other, days=1))


def test_it_removes_the_whole_window_when_given_nothing(school, method):
    store(school, week(school, days=2), method)
    assert store(school, [], method).removed == len(week(school, days=2))
    assert not Lesson.objects.exists()


def test_it_spans_a_month_boundary(school, method):
    first, last = datetime.date(2025, 3, 31), datetime.date(2025, 4, 4)
    records = [lesson(school, first), lesson(school, last)]
    assert store(school, records, method, first, last).inserted == 2
    assert store(school, records, method, first, last).unchanged == 2


def test_it_reads_naive_load_times_as_seoul_time(school, method):
    naive = lesson(school, load_dtm=LOADED.replace(tzinfo=None))
    store(school, [naive], method)
    assert Lesson.objects.get().load_dtm == LOADED
    assert store(school, [lesson(school)], method).unchanged == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"school_code": "9999999"}, "a record of school 9999999"),
        ({"date": SUNDAY + datetime.timedelta(days=1)}, "outside"),
    ],
)
def test_it_refuses_records_it_was_not_asked_to_store(school, method, change, message):
    store(school, week(school, days=1), method)
    bad = dataclasses.replace(lesson(school, period=9), **change)
    with pytest.raises(ValueError, match=message):
        store(school, [bad], method)
    assert stored(school) == as_stored(week(school, days=1))


def test_it_refuses_a_backwards_window(school, method):
    with pytest.raises(ValueError, match="after"):
        store(school, [], method, SUNDAY, MONDAY)


def test_it_runs_inside_the_callers_transaction(school, method):
    with transaction.atomic():
        store(school, week(school, days=1), method)
        transaction.set_rollback(True)
    assert not Lesson.objects.exists()
    with transaction.atomic():
        # A failed store rolls back its savepoint only; the caller's transaction goes on.
        with pytest.raises(ValueError):
            store(school, [dataclasses.replace(lesson(school), school_code="1")], method)
        result = store(school, week(school, days=1), method)
    assert result.inserted == Lesson.objects.count() > 0


@pytest.mark.skipif(postgres(), reason="PostgreSQL has the COPY path")
def test_it_refuses_the_copy_method_without_postgresql(school):
    with pytest.raises(ValueError, match="copy"):
        store(school, [], "copy")


def test_it_enforces_the_natural_key_in_the_database(school):
    store_lessons(school, MONDAY, SUNDAY, [lesson(school)])
    duplicate = Lesson.objects.values().get()
    duplicate.pop("id")
    with pytest.raises(IntegrityError), transaction.atomic():
        Lesson.objects.create(**duplicate)


def load_times(school) -> list:
    """Lessons whose LOAD_DTM takes every spelling: none, naive (Seoul), another zone, a
    fraction of a second with and without trailing zeros, midnight UTC and a year before 1000."""
    tokyo = datetime.timezone(datetime.timedelta(hours=9), "JST")
    stamps = [
        None,
        LOADED.replace(tzinfo=None),
        LOADED.astimezone(tokyo),
        LOADED.replace(microsecond=500_000),
        LOADED.replace(microsecond=123_456),
        datetime.datetime(2025, 4, 4, tzinfo=datetime.UTC),
        datetime.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
    ]
    return [lesson(school, period=n, load_dtm=stamp) for n, stamp in enumerate(stamps, start=1)]


@requires_postgres
@pytest.mark.parametrize("records", [week, load_times], ids=["week", "load times"])
def test_it_sees_an_unchanged_window_without_the_merge(school, monkeypatch, records):
    # The stored window read back as text equals the fetched lines: no stage, no merge.
    records = records(school)
    store(school, records, "copy")
    monkeypatch.setattr(storage, "_STAGE_TABLE", "SELECT 1 / 0")
    assert store(school, list(reversed(records)), "copy") == StoreResult(unchanged=len(records))


@requires_postgres
def test_it_merges_texts_the_server_spells_otherwise(school, monkeypatch):
    # A value with an escape is not compared as text: the merge compares it.
    records = [lesson(school, class_name="a\tb"), lesson(school, period=2, track="\\N")]
    store(school, records, "copy")
    monkeypatch.setattr(storage, "_STAGE_TABLE", "SELECT 1 / 0")
    with pytest.raises(DataError), transaction.atomic():
        store(school, records, "copy")
    monkeypatch.undo()
    assert store(school, records, "copy") == StoreResult(unchanged=len(records))
    # A stored backslash and "t" read back unescaped, as the escape of a fetched tab: still
    # another lesson.
    typed = [lesson(school, class_name="a\\tb")]
    assert store(school, typed, "copy") == StoreResult(inserted=1, removed=2)
    assert store(school, records[:1], "copy") == StoreResult(inserted=1, removed=1)
    assert stored(school) == as_stored(records[:1])


@pytest.mark.parametrize(
    "change",
    [
        {"load_dtm": LOADED + datetime.timedelta(microseconds=1)},
        {"load_dtm": None},
        {"semester": 2},
        {"classroom": "1 "},
        {"subject_raw": "-수학 ", "subject": "수학"},
    ],
    ids=["a microsecond", "no load time", "semester", "a space", "subject"],
)
def test_it_finds_the_smallest_change_of_a_window(school, method, change):
    # The fast path's text comparison and the merge's value comparison agree on every column.
    records = week(school, days=1)
    store(school, records, method)
    records[3] = dataclasses.replace(records[3], **change)
    result = store(school, records, method)
    assert result.stored == len(records) and result.unchanged == len(records) - 1
    assert stored(school) == as_stored(records)
