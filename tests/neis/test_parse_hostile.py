"""Every bad byte is classified, never a crash: any body is an Envelope or BadBody, any row a
record that fits the columns or InvalidRow, and no control character reaches a terminal raw."""

from __future__ import annotations

import datetime
import json

import pytest

from collector.neis import parse
from collector.neis.parse import BadBody, InvalidRow
from tests.neis.hostile import LESSON_ROW
from tests.neis.hostile import SCHOOL_ROW as SCHOOL

KEYS = ["hisTimetable"]
LESSON = LESSON_ROW


def envelope_with(total: str) -> bytes:
    """A success envelope whose list_total_count is the JSON text ``total``."""
    head = '[{"list_total_count": TOTAL}, {"RESULT": {"CODE": "INFO-000", "MESSAGE": ""}}]'
    body = '{"hisTimetable": [{"head": HEAD}, {"row": []}]}'.replace("HEAD", head)
    return body.replace("TOTAL", total).encode()


@pytest.mark.parametrize(
    "body",
    [
        # Deeper than the interpreter's recursion limit, yet too few brackets to be refused
        # as too many values: json raised RecursionError.
        b"[" * 3000 + b"]" * 3000,
        b'{"hisTimetable": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"a": ' * 3000 + b"1" + b"}" * 3000,
        b"[" * 100_000,
        envelope_with("Infinity"),
        envelope_with("-Infinity"),
        envelope_with("NaN"),
        envelope_with("1e999"),
        envelope_with("9" * 5000),
        envelope_with("1.5"),
        envelope_with('"١٢"'),  # Arabic-Indic digits: int() takes them, NEIS never sends them
        envelope_with(str(10**12)),
        envelope_with("true"),
        b'{"x": ' + b"9" * 5000 + b"}",
        b'{"RESULT": {"CODE": "\\u001b[2J", "MESSAGE": ""}}',
        b'{"RESULT": {"CODE": "/hub/schoolInfo?KEY=abc", "MESSAGE": ""}}',
        b'{"RESULT": {"CODE": "' + b"E" * 100 + b'", "MESSAGE": ""}}',
        b'{"RESULT": {"CODE": "INFO-000", "MESSAGE": NaN}}',
    ],
    ids=[
        "nested-lists",
        "nested-envelope",
        "nested-objects",
        "nested-past-the-value-count",
        "infinity",
        "minus-infinity",
        "nan",
        "1e999",
        "5000-digits-total",
        "fractional-total",
        "unicode-digits",
        "total-over-int4",
        "boolean-total",
        "5000-digits-anywhere",
        "escape-in-code",
        "url-in-code",
        "long-code",
        "nan-message",
    ],
)
def test_it_calls_a_hostile_body_bad_and_nothing_else(body):
    with pytest.raises(BadBody):
        parse.read_envelope(body, KEYS)


def test_it_keeps_a_result_message_short_and_printable():
    message = "서버 오류\x1b[31m" + "가" * 10_000
    body = json.dumps({"RESULT": {"CODE": "ERROR-500", "MESSAGE": message}}).encode()
    envelope = parse.read_envelope(body, KEYS)
    assert envelope.code == "ERROR-500"
    assert envelope.message.startswith("서버 오류\ufffd[31m")
    assert len(envelope.message) <= parse.MAX_MESSAGE


def test_it_still_reads_a_total_served_as_digits():
    assert parse.read_envelope(envelope_with('" 37 "'), KEYS).list_total_count == 37


def lesson(**changes):
    return parse.lesson_from_row({**LESSON, **changes})


def school(**changes):
    return parse.school_from_row({**SCHOOL, **changes})


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("GRADE", "40000"),  # was stored as -25536 in PostgreSQL's smallint
        ("GRADE", "13"),
        ("GRADE", "9" * 5000),  # was a ValueError from int()
        ("PERIO", "21"),
        ("PERIO", "-1"),
        ("SEM", "5"),
        ("AY", "1949"),
        ("AY", "2101"),
        ("AY", "32768"),
        ("ALL_TI_YMD", "00010101"),
        ("ALL_TI_YMD", "99991231"),
        ("ATPT_OFCDC_SC_CODE", "B100"),
        ("ATPT_OFCDC_SC_CODE", "b10"),
        ("ATPT_OFCDC_SC_CODE", "B1"),
        ("SD_SCHUL_CODE", "70100570000"),  # 11 characters: School.code holds 10
        ("SD_SCHUL_CODE", "70-1005"),
        ("SD_SCHUL_CODE", "７０１００５７"),  # full-width digits
        ("ITRT_CNTNT", "가" * (parse.MAX_TEXT["ITRT_CNTNT"] + 1)),  # over a B-tree entry
        ("CLASS_NM", "1" * (parse.MAX_TEXT["CLASS_NM"] + 1)),
        ("CLRM_NM", "x" * 3000),
        ("DDDEP_NM", "과" * 3000),
        ("ORD_SC_NM", "계" * 3000),
        ("DGHT_CRSE_SC_NM", "간" * 3000),
    ],
)
def test_it_refuses_a_lesson_row_that_cannot_fit_its_columns(column, value):
    with pytest.raises(InvalidRow) as caught:
        lesson(**{column: value})
    assert caught.value.reason == column


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("SD_SCHUL_CODE", "70100570000"),
        ("ATPT_OFCDC_SC_CODE", "B100"),
        ("SCHUL_NM", "학" * 201),
        ("SCHUL_KND_SC_NM", "고" * 51),
        ("ATPT_OFCDC_SC_NM", "청" * 101),
        ("LCTN_SC_NM", "도" * 51),
        ("FOND_SC_NM", "립" * 21),
        ("DGHT_SC_NM", "간" * 21),
        ("ORG_RDNMA", "로" * 301),
    ],
)
def test_it_refuses_a_school_row_that_cannot_fit_its_columns(column, value):
    with pytest.raises(InvalidRow) as caught:
        school(**{column: value})
    assert caught.value.reason == column


def test_it_takes_rows_at_the_edge_of_every_bound():
    record = lesson(
        AY="2100", SEM="0", GRADE="12", PERIO="20", ALL_TI_YMD="21010228", SD_SCHUL_CODE="A" * 10
    )
    assert (record.academic_year, record.semester, record.grade, record.period) == (2100, 0, 12, 20)
    assert lesson(AY="1950", GRADE="0", PERIO="0", SEM="4").grade == 0
    long_subject = "𝄞" * parse.MAX_TEXT["ITRT_CNTNT"]  # four UTF-8 bytes each
    assert lesson(ITRT_CNTNT=long_subject).subject_raw == long_subject
    assert school(SCHUL_NM="학" * 200, ORG_RDNMA="로" * 300).name == "학" * 200


@pytest.mark.parametrize(
    "dirt",
    ["\x00", "\x1b[31m", "\x1b]0;pwned\x07", "\x9b2J", "\x7f", "\ud800", "\x08\x08"],
    ids=["nul", "csi", "osc", "c1-csi", "del", "lone-surrogate", "backspaces"],
)
def test_it_replaces_control_characters_in_every_text_column(dirt):
    # NUL cannot be stored in PostgreSQL text, a lone surrogate cannot be encoded, and ESC,
    # CSI, OSC or backspaces would act on the terminal of whoever prints the value.
    row = dict.fromkeys(("CLASS_NM", "DDDEP_NM", "ORD_SC_NM", "CLRM_NM"), f"a{dirt}b")
    record = lesson(ITRT_CNTNT=f"수학{dirt}Ⅰ", **row)
    texts = [record.subject_raw, record.subject, record.class_name, record.department]
    texts += [record.track, record.classroom]
    for value in texts:
        assert value.isprintable(), repr(value)
        value.encode("utf-8")
        assert "\ufffd" in value
    named = school(SCHUL_NM=f"학교{dirt}", ORG_RDNMA=f"로{dirt}1", ATPT_OFCDC_SC_NM=f"청{dirt}")
    for value in (named.name, named.address, named.office_name):
        assert value.isprintable() and "\ufffd" in value, repr(value)


def test_it_keeps_the_tabs_and_newlines_neis_serves_in_the_raw_subject_only():
    record = lesson(ITRT_CNTNT="창의적\t체험활동\r\n", CLASS_NM="1\t2", DDDEP_NM="\n과\r\n학")
    assert record.subject_raw == "창의적\t체험활동\r\n"
    assert record.subject == "창의적 체험활동"
    assert (record.class_name, record.department) == ("1\ufffd2", "과\ufffd\ufffd학")
    assert school(SCHUL_NM="가나\n학교").name == "가나\ufffd학교"


def test_it_drops_a_load_time_that_no_timezone_arithmetic_survives():
    assert lesson(LOAD_DTM="00010101").load_dtm is None
    assert lesson(LOAD_DTM="99991231235959").load_dtm is None
    stamp = lesson(LOAD_DTM="20261118093000").load_dtm
    assert stamp.astimezone(datetime.UTC).hour == 0


@pytest.mark.parametrize("value", [17, 1.5, None, [], {"a": 1}, True])
def test_it_treats_a_non_text_value_as_missing(value):
    with pytest.raises(InvalidRow, match="GRADE"):
        lesson(GRADE=value)
    assert lesson(CLRM_NM=value).classroom == ""


@pytest.mark.django_db
def test_it_accepts_only_rows_postgresql_can_store():
    # The widest rows the parser accepts, in four-byte characters, through the real write
    # paths: a NUL, an over-long key or a B-tree entry over 2704 bytes would raise here.
    from collector import clock, storage
    from collector.models import Lesson, School
    from collector.registry import upsert_schools

    wide = {column: "𝄞" * limit for column, limit in parse.MAX_TEXT.items()}
    record = school(**{column: wide[column] for column in SCHOOL if column in wide})
    nul = school(SD_SCHUL_CODE="7010058", SCHUL_NM="\x00" * 200)
    upsert_schools([record, nul], seen_at=clock.now())
    stored = School.objects.get(code=record.code)
    assert stored.address == wide["ORG_RDNMA"] and stored.name == wide["SCHUL_NM"]
    assert School.objects.get(code=nul.code).name == "\ufffd" * 200
    columns = {column: wide[column] for column in LESSON if column in wide}
    lessons = [
        lesson(**columns, GRADE="12", PERIO="20", SEM="4"),
        lesson(**{**columns, "ITRT_CNTNT": "\x00" + "𝄞" * 499}, GRADE="0", PERIO="0"),
    ]
    day = datetime.date(2026, 11, 16)
    result = storage.store_lessons(stored, day, day + datetime.timedelta(days=4), lessons)
    assert result.inserted == 2
    assert Lesson.objects.filter(school=stored, grade=12, period=20).count() == 1
