"""A window's records read a column at a time (``storage._distinct_rows``, ``_copy_lines``)
give the rows and the COPY lines the record-at-a-time path gives (``_ranked_rows``, each row's
values spelled and joined), whether the records are a list or ``LessonRecords`` by column."""

from __future__ import annotations

import dataclasses
import datetime
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import storage
from collector.clock import SEOUL
from collector.models import School
from collector.neis.records import LessonRecord, LessonRecords
from tests.storage.factories import lesson

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
