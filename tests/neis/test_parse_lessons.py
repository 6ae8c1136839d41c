"""Timetable pages decoded straight into typed rows (``parse.read_lessons``) and converted a
column at a time (``LessonRows.columns``, ``records.lesson_records``): the same envelope, rows
and records as ``read_envelope`` and ``lesson_from_row``, or None where only they can say."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
from pathlib import Path

import pytest

from collector.neis import parse, records
from collector.neis.client import FetchResult, _LessonsOf
from collector.neis.records import LessonRecord
from tests.neis.hostile import LESSON_ROW

BODIES = Path(__file__).resolve().parent / "bodies"
KEYS = ["hisTimetable"]
# A row of March 2025 (the first semester), without a department.
ROW = {
    **LESSON_ROW,
    "AY": "2025",
    "SEM": "1",
    "ALL_TI_YMD": "20250310",
    "DDDEP_NM": None,
    "LOAD_DTM": "20250301",
}


def page_text(rows_text: str, total: int = 1) -> bytes:
    result = '{"RESULT":{"CODE":"INFO-000","MESSAGE":"ok"}}'
    head = f'{{"head":[{{"list_total_count":{total}}},{result}]}}'
    return f'{{"hisTimetable":[{head},{{"row":[{rows_text}]}}]}}'.encode()


def page(*rows: dict) -> bytes:
    return page_text(",".join(json.dumps(row, ensure_ascii=False) for row in rows), len(rows))


def typed_rows(body: bytes) -> list[dict]:
    envelope = parse.read_lessons(body, KEYS)
    assert envelope is not None
    return envelope.rows.dicts()


def test_it_reads_recorded_pages_as_read_envelope_does():
    for name, key in [
        ("his_page.json", "hisTimetable"),
        ("mis_page.json", "misTimetable"),
        ("els_page.json", "elsTimetable"),
        ("sps_page.json", "spsTimetable"),
        ("his_archive_page.json", "hisTimetable"),
    ]:
        body = (BODIES / name).read_bytes()
        typed = parse.read_lessons(body, [key])
        read = parse.read_envelope(body, [key])
        assert typed is not None, name
        assert (typed.code, typed.message, typed.list_total_count) == (
            read.code,
            read.message,
            read.list_total_count,
        )
        assert isinstance(typed.rows, parse.LessonPage)
        for one, other in zip(typed.rows.dicts(), read.rows, strict=True):
            assert {column: other.get(column) for column in one} == one
            assert parse.lesson_from_row(one) == parse.lesson_from_row(other)


def test_it_takes_the_last_of_duplicate_keys_as_json_does():
    row = json.dumps(ROW, ensure_ascii=False)[:-1]
    body = page_text(row + ',"AY":"2024","CLRM_NM":"2","CLRM_NM":null}')
    read = parse.read_envelope(body, KEYS).rows[0]
    assert (read["AY"], read["CLRM_NM"]) == ("2024", None)
    assert typed_rows(body)[0] == {**ROW, "AY": "2024", "CLRM_NM": None, "SCHUL_CRSE_SC_NM": None}
    # And the envelope's own keys: the last "row" part counts.
    twice = body.replace(b'{"row":[', b'{"row":[],"row":[')
    assert len(parse.read_envelope(twice, KEYS).rows) == len(typed_rows(twice)) == 1


def test_it_reads_escaped_keys_and_absent_columns_as_json_does():
    body = page_text('{"\\u0041Y":"2025","SEM":"1"}')
    assert typed_rows(body)[0]["AY"] == parse.read_envelope(body, KEYS).rows[0]["AY"] == "2025"
    assert typed_rows(body)[0]["GRADE"] is None


@pytest.mark.parametrize(
    "body",
    [
        page({**ROW, "AY": 2025}),  # a number where text belongs
        page({**ROW, "GRADE": True}),
        page({**ROW, "PERIO": ["1"]}),
        page({**ROW, "EXTRA_COLUMN": "x"}),  # a column no timetable has
        page({**ROW, "EXTRA_COLUMN": 1e300}),
        page(ROW).replace("국어".encode(), b"\xff"),  # not UTF-8
        page(ROW).replace("국어".encode(), b"\\ud800"),  # a lone surrogate json takes
        page(ROW).replace("국어".encode(), b"a\tb"),  # a raw control character json takes
        page(ROW).replace(b'"row":[', b'"row":null,"x":['),
        page(ROW).replace(b"list_total_count", b"other"),
        page(ROW).replace(b'"list_total_count":1', b'"list_total_count":12345678901234567890'),
        page(ROW).replace(b'"list_total_count":1', b'"list_total_count":"1"'),
        b'{"RESULT":{"CODE":"INFO-200","MESSAGE":"none"}}',
        b"\xef\xbb\xbf" + page(ROW),
        b"<html></html>",
        page(ROW)[:-3],
    ],
)
def test_it_leaves_every_other_body_to_read_envelope(body):
    assert parse.read_lessons(body, KEYS) is None


def test_it_reads_a_code_inside_the_head_as_read_envelope_does():
    body = page(ROW).replace(b"INFO-000", b"ERROR-500")
    typed, read = parse.read_lessons(body, KEYS), parse.read_envelope(body, KEYS)
    assert (typed.code, typed.message) == (read.code, read.message) == ("ERROR-500", "ok")


def test_it_leaves_a_page_over_max_rows_to_read_envelope():
    assert parse.read_lessons(page(ROW, ROW), KEYS, max_rows=1) is None
    assert parse.read_lessons(page(ROW, ROW), KEYS, max_rows=2) is not None


def test_it_names_the_column_of_a_number_where_text_belongs_as_before():
    body = page(ROW, {**ROW, "PERIO": 3})
    assert parse.read_lessons(body, KEYS) is None
    convert = parse.LessonRows()
    with pytest.raises(parse.InvalidRow) as raised:
        convert(parse.read_envelope(body, KEYS).rows[1])
    assert raised.value.reason == "PERIO"


def convert_page(body: bytes, lessons: _LessonsOf) -> list[LessonRecord] | None:
    return lessons.page(parse.read_lessons(body, KEYS).rows)


def lessons_of(start=datetime.date(2025, 3, 10), end=datetime.date(2025, 3, 14)) -> _LessonsOf:
    return _LessonsOf(parse.LessonRows(), "B10", "7010057", start, end)


def test_it_converts_a_page_by_column_to_the_records_row_by_row_gives():
    rows = [ROW, {**ROW, "PERIO": "2", "ITRT_CNTNT": " 수학\t"}, {**ROW, "ALL_TI_YMD": "20250314"}]
    rows.append({**ROW, "DGHT_CRSE_SC_NM": None, "LOAD_DTM": "20250301093000"})
    rows.append({**ROW, "SD_SCHUL_CODE": " 7010057 ", "LOAD_DTM": "2025"})  # this school, trimmed
    lessons = lessons_of()
    fast = convert_page(page(*rows), lessons)
    assert fast == [lessons(row) for row in rows]
    assert [type(record) for record in fast] == [LessonRecord] * len(rows)
    assert convert_page(page(), lessons) == []


@pytest.mark.parametrize(
    "row",
    [
        {**ROW, "PERIO": "99"},  # fails its column's checks
        {**ROW, "AY": None},
        {**ROW, "SD_SCHUL_CODE": "7010058"},  # another school
        {**ROW, "ATPT_OFCDC_SC_CODE": "C10"},
        {**ROW, "ALL_TI_YMD": "20250315"},  # outside the window
        {**ROW, "ALL_TI_YMD": "20250309"},
    ],
)
def test_it_leaves_a_page_with_any_row_that_may_not_be_a_record_to_the_rows(row):
    lessons = lessons_of()
    assert convert_page(page(ROW, row), lessons) is None
    assert convert_page(page(ROW, ROW), lessons) is not None  # the memory holds no failure


def test_it_makes_the_records_lesson_record_makes():
    values = {field.name: object() for field in dataclasses.fields(LessonRecord)}
    made = records.lesson_records({name: [value] for name, value in values.items()})
    assert len(made) == 1 and type(made[0]) is LessonRecord
    assert made[0] == LessonRecord(**values)
    assert hash(made[0]) == hash(LessonRecord(**values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made[0].grade = 2
    assert records.lesson_records({name: [] for name in values}) == []


def test_it_makes_a_pages_records_only_when_one_is_read():
    made = convert_page(page(ROW, {**ROW, "PERIO": "2"}), lessons_of())
    assert len(made) == 2 and made.columns["period"] == [1, 2]
    assert made._records is None  # counted by column, not made
    assert made == [made[0], made[1]] == list(made)
    assert made._records is not None
    assert made != [made[0]] and made != made.columns


def fetched(*bodies: bytes) -> FetchResult:
    """A FetchResult of one query's pages, left to convert as the client leaves them."""
    result = FetchResult()
    pages = [parse.read_lessons(body, KEYS).rows for body in bodies]
    result._unconverted.append((lessons_of(), pages, lambda reasons: None))
    return result


def row_by_row(*bodies: bytes) -> list[LessonRecord]:
    lessons, made = lessons_of(), []
    for body in bodies:
        for row in parse.read_envelope(body, KEYS).rows:
            with contextlib.suppress(parse.InvalidRow):
                made.append(lessons(row))
    return made


def test_it_gives_an_answer_by_column_when_every_page_converts_so():
    bodies = page(ROW, {**ROW, "PERIO": "2"}), page({**ROW, "ALL_TI_YMD": "20250311"})
    rows = fetched(*bodies).rows
    assert type(rows) is records.LessonRecords and rows._records is None
    assert rows.columns["date"] == [record.date for record in row_by_row(*bodies)]
    assert rows == row_by_row(*bodies)


def test_it_keeps_the_page_order_of_records_converted_by_column_and_row_by_row():
    other_school = {**ROW, "SD_SCHUL_CODE": "7010058"}
    bodies = page(ROW), page({**ROW, "PERIO": "2"}, other_school), page({**ROW, "PERIO": "3"})
    result = fetched(*bodies)
    assert result.rows == row_by_row(*bodies) and len(result.rows) == 3
    assert result.invalid_reasons == {"other-school": 1}
