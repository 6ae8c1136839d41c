"""Two writers at once, each on its own real PostgreSQL connection (one thread each)."""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time

import pytest
from django.db import connection, connections, transaction

from collector.models import Lesson
from collector.storage import LESSON_LOCK, StoreResult, store_lessons
from tests.storage.factories import (
    as_stored,
    lesson,
    make_school,
    requires_postgres,
    stored,
    week,
)

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

# Months no other test uses: some tests want their writers to race to create the partition.
FIRST = datetime.date(2031, 5, 5)
LAST = FIRST + datetime.timedelta(days=6)


def moved(records, monday=FIRST):
    offset = monday - records[0].date
    return [dataclasses.replace(r, date=r.date + offset) for r in records]


def in_thread(target, *args):
    """Run ``target`` on a new thread with its own connection; return (thread, outcome)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = target(*args)
        except Exception as exc:  # reported by the test, not lost in the thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def waiting_for_school(school) -> bool:
    """True while some connection waits for the write lock of ``school``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s AND objid = %s",
            [LESSON_LOCK, school.pk],
        )
        return cursor.fetchone()[0] > 0


def test_it_makes_the_second_writer_wait_and_merge_onto_the_first():
    school = make_school()
    first = moved(week(school, days=3))
    # The second fetch keeps half, changes a quarter, drops the rest, adds two lessons.
    kept, changed = first[: len(first) // 2], first[len(first) // 2 : len(first) * 3 // 4]
    extra = [lesson(school, FIRST, 5, "1", period) for period in (1, 2)]
    changed = [dataclasses.replace(r, semester=2) for r in changed]
    second = kept + changed + extra
    # Partition and subjects exist already, so that the second writer waits for the school.
    neighbour = make_school("7010099")
    store_lessons(neighbour, FIRST, LAST, moved(week(neighbour, days=3)))
    first_stored = threading.Event()
    release_first = threading.Event()

    def first_writer():
        with transaction.atomic():
            result = store_lessons(school, FIRST, LAST, first)
            first_stored.set()
            release_first.wait(10)  # hold the lock, uncommitted, while the second one arrives
        return result

    def second_writer():
        first_stored.wait(10)
        return store_lessons(school, FIRST, LAST, second)

    one, first_outcome = in_thread(first_writer)
    two, second_outcome = in_thread(second_writer)
    deadline = time.monotonic() + 10
    while not waiting_for_school(school) and time.monotonic() < deadline:
        time.sleep(0.01)
    saw_waiting = waiting_for_school(school)
    release_first.set()
    one.join(10)
    two.join(10)
    assert "error" not in first_outcome and "error" not in second_outcome
    assert saw_waiting, "the second writer never waited for the first"
    assert first_outcome["result"] == StoreResult(inserted=len(first))
    # The second writer compared with the first one's committed lessons, not with nothing.
    assert second_outcome["result"] == StoreResult(
        inserted=2,
        updated=len(changed),
        unchanged=len(kept),
        removed=len(first) - len(kept) - len(changed),
    )
    assert stored(school, FIRST, LAST) == as_stored(second)


def test_it_stores_once_when_two_writers_bring_the_same_lessons_at_once():
    school = make_school()
    # A new month: the two writers also race to create its partition.
    records = moved(week(school), datetime.date(2031, 6, 2))
    first, last = records[0].date, records[0].date + datetime.timedelta(days=6)
    start = threading.Barrier(2)

    def writer():
        start.wait(10)
        return store_lessons(school, first, last, records)

    threads = [in_thread(writer) for _ in range(2)]
    for thread, _ in threads:
        thread.join(20)
    outcomes = [outcome for _, outcome in threads]
    assert all("error" not in outcome for outcome in outcomes), outcomes
    results = sorted((o["result"] for o in outcomes), key=lambda r: r.inserted)
    assert results == [StoreResult(unchanged=len(records)), StoreResult(inserted=len(records))]
    assert Lesson.objects.count() == len(records)


def test_it_lets_writers_of_different_schools_add_the_same_new_subjects_at_once():
    schools = [make_school("7010001"), make_school("7010002")]
    start = threading.Barrier(2)
    monday = datetime.date(2031, 7, 7)

    def writer(school):
        records = [lesson(school, monday, 1, "1", p, f"새과목{p}") for p in range(1, 8)]
        start.wait(10)
        return store_lessons(school, monday, monday, records)

    threads = [in_thread(writer, school) for school in schools]
    for thread, _ in threads:
        thread.join(20)
    outcomes = [outcome for _, outcome in threads]
    assert all("error" not in outcome for outcome in outcomes), outcomes
    assert [o["result"].inserted for o in outcomes] == [7, 7]
    assert Lesson.objects.values("subject_id").distinct().count() == 7
