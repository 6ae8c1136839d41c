"""Recorded NEIS bodies (tests/neis/bodies, shaped after docs/neis-api.md 4.1-4.6) through
the parser: envelopes, result codes, bad bodies and the row-to-record conversion."""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path

import pytest

from collector.clock import SEOUL
from collector.neis import parse
from collector.neis.parse import BadBody
from collector.neis.records import LessonRecord

BODIES = Path(__file__).resolve().parent / "bodies"


def body(name: str) -> bytes:
    return (BODIES / name).read_bytes()


def lessons(name: str, *keys: str) -> list[LessonRecord]:
    envelope = parse.read_envelope(body(name), keys)
    return [parse.lesson_from_row(row) for row in envelope.rows]


def test_it_reads_a_success_envelope():
    envelope = parse.read_envelope(body("his_page.json"), ["hisTimetable"])
    assert envelope.code == "INFO-000"
    assert envelope.message == "정상 처리되었습니다."
    assert envelope.list_total_count == 8
    assert len(envelope.rows) == 8


def test_it_converts_a_high_school_row():
    first = lessons("his_page.json", "hisTimetable")[0]
    assert first == LessonRecord(
        office_code="B10",
        school_code="7000001",
        date=datetime.date(2025, 3, 10),
        academic_year=2025,
        semester=1,
        grade=1,
        class_name="3",
        period=2,
        day_night="주간",
        track="일반계",
        department="일반과",
        course="",
        classroom="3",
        subject_raw="공통수학1",
        subject="공통수학1",
        load_dtm=datetime.datetime(2025, 3, 12, tzinfo=SEOUL),
    )


def test_it_keeps_rows_in_served_order():
    periods = [record.period for record in lessons("his_page.json", "hisTimetable")]
    assert periods == [2, 1, 3, 3, 3, 4, 5, 6]


def test_it_keeps_electives_and_identical_duplicates():
    third = [r for r in lessons("his_page.json", "hisTimetable") if r.period == 3]
    assert [r.subject for r in third] == ["미적분Ⅰ", "확률과 통계", "확률과 통계"]
    assert third[1] == third[2]


def test_it_keeps_subject_raw_exactly_and_normalises_subject():
    by_period = {r.period: r for r in lessons("his_page.json", "hisTimetable")}
    assert by_period[4].subject_raw == "  체육(A)  "
    assert by_period[4].subject == "체육(A)"
    assert by_period[6].subject_raw == " 진로와  직업 "
    assert by_period[6].subject == "진로와 직업"
    assert by_period[6].classroom == "2-1"


def test_it_turns_null_columns_into_empty_text_and_none():
    fifth = next(r for r in lessons("his_page.json", "hisTimetable") if r.period == 5)
    assert fifth.subject_raw == ""
    assert fifth.subject == ""
    assert fifth.load_dtm is None


def test_it_reads_a_14_digit_load_dtm():
    fourth = next(r for r in lessons("his_page.json", "hisTimetable") if r.period == 4)
    assert fourth.load_dtm == datetime.datetime(2025, 3, 12, 9, 30, 15, tzinfo=SEOUL)
    assert fourth.load_dtm.utcoffset() == datetime.timedelta(hours=9)


def test_it_strips_the_dash_and_star_marks_of_middle_school_subjects():
    records = lessons("mis_page.json", "misTimetable")
    assert [r.subject_raw for r in records] == ["-수학", "-영어", "*과학", "-- 국어"]
    assert [r.subject for r in records] == ["수학", "영어", "과학", "국어"]
    assert {r.day_night for r in records} == {"주간"}
    assert {(r.track, r.department, r.course, r.classroom) for r in records} == {("", "", "", "")}


def test_it_reads_elementary_rows_without_the_optional_columns():
    records = lessons("els_page.json", "elsTimetable")
    assert [(r.grade, r.class_name, r.period, r.subject) for r in records] == [
        (3, "2", 1, "국어"),
        (3, "2", 2, "수학"),
        (3, "2", 5, "창의적 체험활동"),
    ]
    assert records[0].day_night == ""
    assert records[0].semester == 2


def test_it_reads_special_school_rows():
    records = lessons("sps_page.json", "spsTimetable")
    assert [(r.course, r.classroom, r.subject) for r in records] == [
        ("중학교", "1", "국어"),
        ("전공과", "전공1", "일상생활 활동"),
    ]


def test_it_reads_an_archive_page_under_the_current_envelope_key():
    records = lessons("his_archive_page.json", "hisTimetable", "hisTimetablebgs")
    assert [r.class_name for r in records] == ["01", "01"]
    assert records[1].subject == "수학Ⅱ"
    assert records[0].academic_year == 2022


def test_it_accepts_raw_control_characters_inside_strings():
    records = lessons("els_control_chars.json", "elsTimetable")
    assert records[2].subject_raw == "창의적\t체험활동\n"
    assert records[2].subject == "창의적 체험활동"


@pytest.mark.parametrize(
    "code",
    [
        "INFO-200",
        "INFO-300",
        "ERROR-290",
        "ERROR-300",
        "ERROR-310",
        "ERROR-333",
        "ERROR-336",
        "ERROR-337",
        "ERROR-500",
        "ERROR-600",
        "ERROR-601",
        "ERROR-999",
    ],
)
def test_it_reads_a_top_level_result(code):
    name = f"result_{code.lower().replace('-', '_')}.json"
    envelope = parse.read_envelope(body(name), ["hisTimetable"])
    assert envelope.code == code
    assert envelope.message
    assert envelope.rows == []
    assert envelope.list_total_count == 0


@pytest.mark.parametrize(
    ("name", "code"),
    [("his_info_100_head.json", "INFO-100"), ("his_error_500_head.json", "ERROR-500")],
)
def test_it_reads_a_result_code_inside_the_head(name, code):
    assert parse.read_envelope(body(name), ["hisTimetable"]).code == code


@pytest.mark.parametrize(
    ("name", "shown"),
    [("maintenance.html", "시스템 점검 안내"), ("http_502.html", "502 Bad Gateway")],
)
def test_it_rejects_html_pages(name, shown):
    with pytest.raises(BadBody, match="markup") as caught:
        parse.read_envelope(body(name), ["hisTimetable"])
    assert shown in str(caught.value)


def test_it_rejects_xml_even_when_it_carries_a_code():
    with pytest.raises(BadBody, match="markup"):
        parse.read_envelope(body("result_info_200.xml"), ["hisTimetable"])


def test_it_rejects_truncated_json():
    with pytest.raises(BadBody, match="invalid JSON"):
        parse.read_envelope(body("his_truncated.json"), ["hisTimetable"])


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"[1, 2]", "list"),
        (b'{"misTimetable": []}', "no RESULT and no envelope"),
        (b'{"hisTimetable": {"head": []}}', "not a list"),
        (b'{"hisTimetable": [{"row": []}]}', "no head"),
        (b'{"hisTimetable": [{"head": [{"RESULT": {"CODE": "INFO-000"}}]}]}', "list_total_count"),
        (b'{"hisTimetable": [{"head": [{"list_total_count": "many"}]}]}', "not an integer"),
        (b'{"RESULT": {"MESSAGE": "no code"}}', "without a CODE"),
    ],
)
def test_it_rejects_bodies_that_are_not_neis_envelopes(raw, why):
    with pytest.raises(BadBody, match=why):
        parse.read_envelope(raw, ["hisTimetable"])


def test_it_accepts_a_utf8_bom_and_a_string_total():
    raw = '\ufeff{"hisTimetable":[{"head":[{"list_total_count":"3"}]},{"row":[]}]}'
    envelope = parse.read_envelope(raw.encode(), ["hisTimetable"])
    assert (envelope.code, envelope.list_total_count, envelope.rows) == ("INFO-000", 3, [])


def test_it_names_the_column_that_makes_a_row_invalid():
    envelope = parse.read_envelope(body("his_invalid_rows.json"), ["hisTimetable"])
    kept, reasons = [], Counter()
    for row in envelope.rows:
        try:
            kept.append(parse.lesson_from_row(row))
        except parse.InvalidRow as exc:
            reasons[exc.reason] += 1
    assert [r.period for r in kept] == [1, 7]
    assert reasons == {"PERIO": 2, "ALL_TI_YMD": 1, "GRADE": 1}


def test_it_rejects_a_row_that_is_not_an_object():
    with pytest.raises(parse.InvalidRow, match="row"):
        parse.lesson_from_row(["B10", "7000001"])


def test_it_converts_school_rows():
    envelope = parse.read_envelope(body("school_info_page.json"), ["schoolInfo"])
    assert envelope.list_total_count == 201
    first, second, third = (parse.school_from_row(row) for row in envelope.rows)
    assert first.code == "9290079"
    assert first.office_name == "제주특별자치도교육청"
    assert first.kind == "초등학교"
    assert first.founding_type == "공립"
    assert first.location == "제주특별자치도"
    assert first.load_dtm == datetime.datetime(2021, 6, 15, 10, 20, 30, tzinfo=SEOUL)
    assert second.kind == "각종학교(중)"
    assert second.address == "제주특별자치도 제주시 다라로 2"
    assert second.load_dtm == datetime.datetime(2023, 3, 12, tzinfo=SEOUL)
    assert third.day_night == ""
    assert third.load_dtm is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("-수학", "수학"),
        ("--영어", "영어"),
        ("*과학", "과학"),
        ("* - 국어 ", "국어"),
        ("  진로와\u3000\t직업  ", "진로와 직업"),
        ("수학Ⅰ", "수학Ⅰ"),
        ("미적분Ⅱ", "미적분Ⅱ"),
        ("체육(A)", "체육(A)"),
        ("[공동]물리학실험", "[공동]물리학실험"),
        ("수학-심화", "수학-심화"),
        ("-", ""),
        ("", ""),
        (None, ""),
        ("\u1112\u1161\u11ab\u1100\u116e\u11a8\u1109\u1161", "한국사"),
    ],
)
def test_it_normalises_subjects(raw, expected):
    assert parse.normalise_subject(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("각종학교 (중)", "각종학교(중)"),
        (" 고등학교 ", "고등학교"),
        ("평생학교(초)-3년6학기", "평생학교(초)-3년6학기"),
        (None, ""),
    ],
)
def test_it_normalises_school_kinds(raw, expected):
    assert parse.normalise_kind(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("20250312", datetime.datetime(2025, 3, 12, tzinfo=SEOUL)),
        ("20250312093015", datetime.datetime(2025, 3, 12, 9, 30, 15, tzinfo=SEOUL)),
        (" 20250312 ", datetime.datetime(2025, 3, 12, tzinfo=SEOUL)),
        ("20251399", None),
        ("20250312250000", None),
        ("2025031", None),
        ("2025-03-12", None),
        ("", None),
        (None, None),
    ],
)
def test_it_parses_load_dtm_or_gives_none(raw, expected):
    assert parse.parse_load_dtm(raw) == expected
