"""A window's records read a column at a time (``storage._distinct_rows``, ``_copy_lines``)
give the rows and the COPY lines the record-at-a-time path gives (``_ranked_rows``, each row's
values spelled and joined), whether the records are a list or ``LessonRecords`` by column; and
a first load's COPY BINARY (``_copy_binary``) stores what COPY text of the same rows stores."""

from __future__ import annotations

import dataclasses
import datetime
import os

import psycopg
import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import storage
from collector.clock import SEOUL
from collector.models import School
from collector.neis.records import LessonRecord, LessonRecords
from tests.storage.factories import lesson, requires_postgres

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")), deadline=None)
FIRST = datetime.date(2025, 4, 7)
LAST = FIRST + datetime.timedelta(days=2)
SCHOOL = School(code="7010057")
# Few values a column, so that keys repeat: records alike, and alike but for their values.
# Texts hold COPY's own characters (escaped) and "\N" (its null, as text).
TEXTS = st.sampled_from(["", "주간", "1", "a\tb", "\\N", "x\\y\n\r"])
MOMENT = datetime.datetime(2025, 4, 4, 9, 30, tzinfo=SEOUL)
LOAD_DTMS = st.sampled_from(
    [
        None,
        MOMENT,
        MOMENT + datetime.timedelta(days=1),
        MOMENT.astimezone(datetime.UTC),  # the same moment in another zone
        MOMENT.replace(tzinfo=None),  # naive: a Seoul time
        MOMENT.replace(tzinfo=None, microsecond=5),
    ]
)
records_of_one_window = st.builds(
    LessonRecord,
    office_code=st.just("B10"),
    school_code=st.just(SCHOOL.code),
    date=st.dates(FIRST, LAST),
    academic_year=st.sampled_from([2024, 2025]),
    semester=st.sampled_from([1, 2]),
    grade=st.integers(0, 2),
    class_name=TEXTS,
    period=st.integers(0, 1),
    day_night=TEXTS,
    track=st.sampled_from(["", "일반계"]),
    department=st.just(""),
    course=st.just(""),
    classroom=TEXTS,
    subject_raw=st.sampled_from(["수학", "-수학", "국어\t"]),
    subject=st.sampled_from(["수학", "국어"]),
    load_dtm=LOAD_DTMS,
)


RECORD = lesson(SCHOOL, day=FIRST, office_code="B10", load_dtm=MOMENT)


@st.composite
def windows(draw):
    """Records of one window, some repeated exactly, as a list or by column."""
    records = draw(st.lists(records_of_one_window, max_size=30))
    if records:
        records += draw(st.lists(st.sampled_from(records), max_size=10))
        records = draw(st.permutations(records))
    return LessonRecords.of(records) if draw(st.booleans()) else records


def subject_ids(records) -> dict[str, int]:
    return {raw: number for number, raw in enumerate(sorted({r.subject_raw for r in records}))}


def lines_one_by_one(rows: dict) -> tuple[list[str], bool]:
    """COPY lines a row at a time, and whether a text in them needed an escape."""
    spell = storage._CopyText()
    lines = ["\t".join(map(spell.__getitem__, key + values)) for key, values in rows.items()]
    texts = [value for value in spell if isinstance(value, str)]
    return lines, any(storage._NEEDS_ESCAPE.search(text) for text in texts)


@FUZZ
@given(records=windows())
def test_it_reads_records_by_column_as_one_by_one(records):
    subjects = subject_ids(records)
    expected = storage._ranked_rows(SCHOOL, FIRST, LAST, list(records), subjects)
    rows = storage._distinct_rows(SCHOOL, FIRST, LAST, records, subjects)
    assert list(rows.items()) == list(expected.items())  # in the same order
    lines = storage._copy_lines(rows)
    assert (lines, lines.escaped) == lines_one_by_one(expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"school_code": "7010058"}, "a record of school 7010058 given for 7010057"),
        ({"date": LAST + datetime.timedelta(days=1)}, "a record dated 2025-04-10 outside"),
    ],
)
def test_it_names_the_first_record_it_was_not_asked_to_store(change, message):
    records = [RECORD, dataclasses.replace(RECORD, **change), RECORD]
    for given_records in (records, LessonRecords.of(records)):
        with pytest.raises(ValueError, match=message):
            storage._distinct_rows(SCHOOL, FIRST, LAST, given_records, subject_ids(records))


def test_it_ranks_a_key_given_with_different_values():
    later = dataclasses.replace(RECORD, load_dtm=MOMENT + datetime.timedelta(hours=1))
    for records in ([later, RECORD], [RECORD, later]):
        rows = storage._distinct_rows(
            SCHOOL, FIRST, LAST, LessonRecords.of(records), subject_ids(records)
        )
        assert list(rows.values()) == [(2025, 1, later.load_dtm)]


# Any value the lesson columns hold, for a first load's binary fields: days and moments on
# both sides of PostgreSQL's epoch (2000-01-01) within the years NEIS's are parsed in, in
# zones that are not the session's, with microseconds; any text without NUL (PostgreSQL
# refuses it) or lone surrogates (parse.clean replaces both); each integer type's extremes.
DAYS = [datetime.date(1950, 3, 2), datetime.date(1999, 12, 31), datetime.date(2000, 1, 1)]
DAYS += [FIRST, datetime.date(2101, 2, 28)]
ZONES = [datetime.UTC, SEOUL, datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))]
MOMENTS = st.datetimes(
    datetime.datetime(1950, 1, 1),
    datetime.datetime(2101, 12, 31),
    timezones=st.sampled_from(ZONES),
    allow_imaginary=False,
)
ANY_TEXT = TEXTS | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"))
SMALLINTS = st.integers(-(2**15), 2**15 - 1)
INTEGERS = st.integers(-(2**31), 2**31 - 1)
any_rows = st.dictionaries(
    st.tuples(st.sampled_from(DAYS), SMALLINTS, ANY_TEXT, SMALLINTS, *[ANY_TEXT] * 5, INTEGERS),
    st.tuples(SMALLINTS, SMALLINTS, st.none() | MOMENTS),
    max_size=8,
)


@st.composite
def first_loads(draw) -> dict:
    """Rows as ``_distinct_rows`` gives them: of a window's records (by column, alike ones
    collapsed, or a list), or of any values the columns hold."""
    if draw(st.booleans()):
        records = draw(windows())
        return storage._distinct_rows(SCHOOL, FIRST, LAST, records, subject_ids(records))
    return draw(any_rows)


def stored_lessons(school_id: int, data, statement: str) -> set[tuple]:
    """What COPYing ``data`` with ``statement`` stores, read back; then rolled back."""
    columns = ", ".join(storage._COPY_LESSON_COLUMNS)
    with transaction.atomic(), psycopg.Cursor(connection.connection) as cursor:
        with cursor.copy(statement) as copy:
            copy.write(data)
        cursor.execute(f"SELECT {columns} FROM collector_lesson WHERE school_id = %s", [school_id])
        stored = set(cursor.fetchall())
        transaction.set_rollback(True)
    return stored


@requires_postgres
@pytest.mark.django_db
@settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=first_loads(), school_id=INTEGERS, now=MOMENTS)
def test_it_stores_a_first_load_in_binary_as_in_text(rows, school_id, now):
    for day in (*DAYS, LAST):
        storage.ensure_partitions(day, day)
    binary = storage._copy_binary(school_id, rows, now)
    spell = storage._CopyText()
    before, after = f"{spell[school_id]}\t", f"\t{spell[now]}\t{spell[now]}\n"
    text = "".join(before + line + after for line in storage._copy_lines(rows))
    in_text = storage._COPY_LESSONS.removesuffix(" (FORMAT BINARY)")
    stored = stored_lessons(school_id, binary, storage._COPY_LESSONS)
    # In UTC, as the session reads them back: a moment in a zone's repeated hour never equals
    # one in another zone (PEP 495), but has one UTC offset (fold 0: the first).
    utc = [
        (*key, year, semester, load_dtm and load_dtm.astimezone(datetime.UTC))
        for key, (year, semester, load_dtm) in rows.items()
    ]
    now = now.astimezone(datetime.UTC)
    assert stored == {(school_id, *row, now, now) for row in utc}
    assert stored == stored_lessons(school_id, text, in_text)


@requires_postgres
@pytest.mark.django_db
def test_it_spells_each_lesson_column_in_binary_as_its_type():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'collector_lesson' AND column_name = ANY(%s)",
            [list(storage._COPY_LESSON_COLUMNS)],
        )
        types = dict(cursor.fetchall())
    assert types == storage._LESSON_TYPES
