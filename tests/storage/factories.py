"""Schools, lesson records and views of what is stored, for the storage tests."""

from __future__ import annotations

import dataclasses
import datetime
import operator

import pytest
from django.conf import settings
from django.db import connection

from collector import clock
from collector.clock import SEOUL
from collector.models import LESSON_VALUES, RECORD_KEY, School
from collector.neis.records import LessonRecord, SchoolRecord
from collector.registry import upsert_schools

MONDAY = datetime.date(2025, 4, 7)
SUNDAY = MONDAY + datetime.timedelta(days=6)
LOADED = datetime.datetime(2025, 4, 4, tzinfo=SEOUL)


def postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


requires_postgres = pytest.mark.skipif(not postgres(), reason="PostgreSQL only")


def school_record(code="7010057", office="B10", kind="초등학교", **fields) -> SchoolRecord:
    values = {
        "office_code": office,
        "office_name": "서울특별시교육청",
        "code": code,
        "name": f"학교{code}",
        "kind": kind,
        "location": "서울특별시",
        "founding_type": "공립",
        "day_night": "주간",
        "address": "서울특별시 종로구 1",
        "load_dtm": None,
    }
    values.update(fields)
    return SchoolRecord(**values)


def make_school(code="7010057", office="B10", kind="초등학교") -> School:
    upsert_schools([school_record(code, office, kind)], seen_at=clock.now())
    return School.objects.get(code=code)


def lesson(school: School, day=0, grade=1, class_name="1", period=1, subject="-수학", **fields):
    """A LessonRecord of ``school``; ``day`` is a date or an offset in days from MONDAY."""
    if isinstance(day, int):
        day = MONDAY + datetime.timedelta(days=day)
    record = LessonRecord(
        office_code=school.office_id,
        school_code=school.code,
        date=day,
        academic_year=2025,
        semester=1,
        grade=grade,
        class_name=class_name,
        period=period,
        day_night="",
        track="",
        department="",
        course="",
        classroom="",
        subject_raw=subject,
        subject=subject.lstrip("-*").strip(),
        load_dtm=LOADED,
    )
    return dataclasses.replace(record, **fields)


def week(school: School, days=5, grades=2, classes=2, periods=4) -> list[LessonRecord]:
    """A plain timetable: every class of every grade, ``periods`` lessons a day."""
    subjects = ["-국어", "-수학", "영어", "과학", "체육", "음악"]
    return [
        lesson(school, day, grade, str(number), period, subjects[(day + period) % len(subjects)])
        for day in range(days)
        for grade in range(1, grades + 1)
        for number in range(1, classes + 1)
        for period in range(1, periods + 1)
    ]


# A stored or fetched lesson as one comparable tuple: its natural key after the school (the
# subject as served), then the normalised subject and the values.
_SLOT = RECORD_KEY[1:-1]


def stored(school: School, first=MONDAY, last=SUNDAY) -> set[tuple]:
    """The stored lessons of a window as comparable tuples (subject as served)."""
    rows = school.lessons.filter(date__range=(first, last))
    return set(rows.values_list(*_SLOT, "subject__raw", "subject__name", *LESSON_VALUES))


def as_stored(records) -> set[tuple]:
    values = operator.attrgetter(*_SLOT, "subject_raw", "subject", *LESSON_VALUES)
    return {values(r) for r in records}


def row_versions() -> dict[int, tuple]:
    """PostgreSQL: every lesson's (xmin, ctid); unchanged when no row was rewritten."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, xmin::text, ctid::text, tableoid FROM collector_lesson")
        return {pk: rest for pk, *rest in cursor.fetchall()}


def lesson_writes() -> int:
    """Rows this connection has inserted, updated or deleted: in lesson partitions by this
    transaction on PostgreSQL, in any table on SQLite."""
    if not postgres():
        connection.ensure_connection()
        return connection.connection.total_changes
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
            "FROM pg_stat_xact_user_tables WHERE relid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = 'collector_lesson'::regclass)"
        )
        return int(cursor.fetchone()[0])
