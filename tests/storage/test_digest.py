"""An answer NEIS served before, unchanged since, costs no database write (window digests)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from collector.models import LessonChange, WindowDigest
from collector.storage import StoreResult, store_lessons
from tests.storage.factories import MONDAY, SUNDAY, as_stored, postgres, row_versions, stored, week

pytestmark = pytest.mark.django_db


def store(school, records, method, digest, first=MONDAY, last=SUNDAY):
    return store_lessons(school, first, last, records, method=method, digest=digest)


def test_it_skips_an_answer_it_merged_before(school, method):
    records = week(school)
    store(school, records, method, "a")
    versions = row_versions() if postgres() else None
    history = LessonChange.objects.count()
    result = store(school, list(reversed(records)), method, "a")
    assert result == StoreResult(unchanged=len(records), skipped=True)
    assert stored(school) == as_stored(records)
    assert LessonChange.objects.count() == history
    if postgres():
        assert row_versions() == versions  # not one row rewritten


def test_it_merges_an_answer_with_another_digest(school, method):
    records = week(school)
    store(school, records, method, "a")
    changed = [dataclasses.replace(records[0], period=9), *records[1:]]
    result = store(school, changed, method, "b")
    assert (result.inserted, result.removed, result.skipped) == (1, 1, False)
    assert WindowDigest.objects.get().digest == "b"


def test_it_forgets_a_digest_when_an_overlapping_window_changes_the_lessons(school, method):
    records = week(school)
    store(school, records, method, "week")
    monday = [r for r in records if r.date == MONDAY]
    # A backfill of Monday alone, from a revised answer: the week's digest no longer holds.
    store(school, monday[1:], method, "monday", MONDAY, MONDAY)
    assert list(WindowDigest.objects.values_list("digest", flat=True)) == ["monday"]
    result = store(school, records, method, "week")
    assert (result.inserted, result.skipped) == (1, False)
    assert stored(school) == as_stored(records)


def test_it_forgets_a_digest_when_a_store_without_one_changes_an_overlapping_window(school, method):
    records = week(school)
    store(school, records, method, "week")
    friday = MONDAY + datetime.timedelta(days=4)
    # A window from Friday to the next Thursday, storing Friday with a lesson fewer.
    fridays = [r for r in records if r.date == friday]
    store(school, fridays[1:], method, None, friday, friday + datetime.timedelta(days=6))
    assert WindowDigest.objects.count() == 0
    result = store(school, records, method, "week")
    assert (result.inserted, result.skipped) == (1, False)


def test_it_keeps_digests_when_an_overlapping_window_changes_nothing(school, method):
    records = week(school)
    store(school, records, method, "week")
    store(school, [r for r in records if r.date == MONDAY], method, "monday", MONDAY, MONDAY)
    assert store(school, records, method, "week").skipped


def test_it_never_skips_without_a_digest(school, method):
    records = week(school)
    store(school, records, method, None)
    assert not store(school, records, method, None).skipped
    assert WindowDigest.objects.count() == 0


def test_it_counts_the_records_so_a_longer_answer_is_never_skipped(school, method):
    records = week(school)
    store(school, records, method, "a")
    assert not store(school, [*records, records[0]], method, "a").skipped


@pytest.mark.skipif(not postgres(), reason="PostgreSQL only")
def test_it_forgets_the_digests_of_retired_months(school):
    from collector.storage import drop_lesson_partitions

    day = datetime.date(2027, 1, 11)
    records = [dataclasses.replace(r, date=day) for r in week(school)[:3]]
    store_lessons(school, day, day, records, digest="jan")
    drop_lesson_partitions(datetime.date(2027, 2, 1), dry_run=False)
    assert not WindowDigest.objects.filter(digest="jan").exists()


def test_it_merges_again_when_something_else_emptied_the_window(school, method):
    """A digest vouches only for lessons merges wrote: a truncate or a restore is caught."""
    from collector.models import Lesson

    records = week(school)
    store(school, records, method, "a")
    Lesson.objects.filter(school=school).delete()  # not a merge: no digest forgotten
    result = store(school, records, method, "a")
    assert (result.inserted, result.skipped) == (len(records), False)
    assert stored(school) == as_stored(records)


def test_it_knows_an_answer_it_merged_before_without_its_records(school, method):
    """The pipeline asks before converting a row: the digest row holds the counts."""
    from collector.models import Lesson
    from collector.storage import known_answer

    records = week(school)
    store(school, [*records, records[0]], method, "a")  # one record folded into another
    assert known_answer(school, MONDAY, SUNDAY, "a") == StoreResult(
        unchanged=len(records), collapsed=1, skipped=True
    )
    assert known_answer(school, MONDAY, SUNDAY, "b") is None
    assert known_answer(school, MONDAY, MONDAY, "a") is None  # another window
    Lesson.objects.filter(school=school, date=MONDAY).delete()  # not a merge
    assert known_answer(school, MONDAY, SUNDAY, "a") is None
