"""Compare what the database holds with what the simulated NEIS serves, row for row."""

from __future__ import annotations

import datetime

from collector.models import LESSON_VALUES, STORED_KEY, Lesson, record_key
from collector.neis import parse


def expected_lessons(world, codes, start: datetime.date, end: datetime.date, as_of) -> dict:
    """Natural key -> (AY, SEM, LOAD_DTM, normalised subject) of every lesson NEIS serves.

    Byte-identical duplicates are one lesson; rows differing only in LOAD_DTM are one lesson
    with the latest LOAD_DTM (the storage contract).
    """
    expected: dict[tuple, tuple] = {}
    for code in codes:
        for row in world.timetable(code, start, end, as_of=as_of):
            record = parse.lesson_from_row(row)
            value = (*(getattr(record, name) for name in LESSON_VALUES), record.subject)
            key = record_key(record)
            if key not in expected or _later(value, expected[key]):
                expected[key] = value
    return expected


def _later(value: tuple, current: tuple) -> bool:
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return (value[2] or epoch) > (current[2] or epoch)


def stored_lessons(codes, start: datetime.date, end: datetime.date) -> dict:
    rows = Lesson.objects.filter(
        school__code__in=list(codes), date__gte=start, date__lte=end
    ).values_list(*STORED_KEY, *LESSON_VALUES, "subject__name")
    return {row[: len(STORED_KEY)]: row[len(STORED_KEY) :] for row in rows}
