"""Compare what the database holds with what the simulated NEIS serves, row for row."""

from __future__ import annotations

import datetime

from collector.models import Lesson
from collector.neis import parse


def _key(record) -> tuple:
    return (
        record.school_code,
        record.date,
        record.grade,
        record.class_name,
        record.period,
        record.day_night,
        record.track,
        record.department,
        record.course,
        record.classroom,
        record.subject_raw,
    )


def expected_lessons(world, codes, start: datetime.date, end: datetime.date, as_of) -> dict:
    """Natural key -> (AY, SEM, LOAD_DTM, normalised subject) of every lesson NEIS serves.

    Byte-identical duplicates are one lesson; rows differing only in LOAD_DTM are one lesson
    with the latest LOAD_DTM (the storage contract).
    """
    expected: dict[tuple, tuple] = {}
    for code in codes:
        for row in world.timetable(code, start, end, as_of=as_of):
            record = parse.lesson_from_row(row)
            value = (record.academic_year, record.semester, record.load_dtm, record.subject)
            key = _key(record)
            if key not in expected or _later(value, expected[key]):
                expected[key] = value
    return expected


def _later(value: tuple, current: tuple) -> bool:
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return (value[2] or epoch) > (current[2] or epoch)


def stored_lessons(codes, start: datetime.date, end: datetime.date) -> dict:
    rows = Lesson.objects.filter(
        school__code__in=list(codes), date__gte=start, date__lte=end
    ).values_list(
        "school__code",
        "date",
        "grade",
        "class_name",
        "period",
        "day_night",
        "track",
        "department",
        "course",
        "classroom",
        "subject__raw",
        "academic_year",
        "semester",
        "load_dtm",
        "subject__name",
    )
    return {row[:11]: row[11:] for row in rows}
