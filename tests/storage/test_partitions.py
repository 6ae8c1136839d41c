"""PostgreSQL: monthly partitions of the lesson table, created on demand and dropped whole."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection, transaction

from collector.models import Lesson, LessonChange
from collector.storage import (
    drop_lesson_partitions,
    ensure_partitions,
    lesson_partitions,
    store_lessons,
)
from tests.storage.factories import lesson, make_school, requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db]


def bounds(name):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = %s", [name]
        )
        row = cursor.fetchone()
    return row and row[0]


def test_it_creates_one_partition_per_month_on_demand():
    school = make_school()
    first, last = datetime.date(2029, 1, 29), datetime.date(2029, 2, 2)
    store_lessons(school, first, last, [lesson(school, first), lesson(school, last)])
    assert bounds("collector_lesson_2029_01") == "FOR VALUES FROM ('2029-01-01') TO ('2029-02-01')"
    assert bounds("collector_lesson_2029_02") == "FOR VALUES FROM ('2029-02-01') TO ('2029-03-01')"
    names = [p.name for p in lesson_partitions()]
    assert names.index("collector_lesson_2029_01") + 1 == names.index("collector_lesson_2029_02")
    assert ensure_partitions(first, last) == []
    # The change history is partitioned the same way, month for month.
    assert bounds("collector_lessonchange_2029_02") == bounds("collector_lesson_2029_02")
    changes = [p.name for p in lesson_partitions("collector_lessonchange")]
    assert "collector_lessonchange_2029_01" in changes


def test_it_drops_whole_months_only_when_told():
    school = make_school()
    days = [datetime.date(2028, 1, 10), datetime.date(2028, 2, 10)]
    for day in days:
        store_lessons(school, day, day, [lesson(school, day)])
    month = ["collector_lesson_2028_01", "collector_lessonchange_2028_01"]
    assert drop_lesson_partitions(datetime.date(2028, 2, 1)) == month
    assert Lesson.objects.count() == 2  # a dry run by default
    assert LessonChange.objects.filter(date__lt=days[1]).count() == 1
    assert drop_lesson_partitions(datetime.date(2028, 2, 1), dry_run=False) == month
    assert bounds("collector_lesson_2028_01") is None
    assert bounds("collector_lessonchange_2028_01") is None
    assert list(LessonChange.objects.values_list("date", flat=True)) == [days[1]]
    assert list(Lesson.objects.values_list("date", flat=True)) == [days[1]]


@pytest.mark.django_db(transaction=True)
def test_it_creates_a_partition_again_after_a_rollback():
    school = make_school()
    day = datetime.date(2027, 9, 6)
    with transaction.atomic():
        assert ensure_partitions(day, day) == [
            "collector_lesson_2027_09",
            "collector_lessonchange_2027_09",
        ]
        transaction.set_rollback(True)
    assert bounds("collector_lesson_2027_09") is None
    assert store_lessons(school, day, day, [lesson(school, day)]).inserted == 1
