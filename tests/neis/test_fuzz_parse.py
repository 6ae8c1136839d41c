"""Fuzzing the parser: whatever the bytes, only BadBody or InvalidRow leaves it, and every row
it accepts fits the columns of collector/models.py, B-tree entries included.

Examples are random on every run (no example database is kept); a failure prints the input and
the ``@reproduce_failure`` line to replay it. The budgets keep the file under a minute on two
loaded cores.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector.models import Lesson, Office, School
from collector.neis import parse
from collector.neis.client import _LessonsOf
from collector.neis.parse import BadBody, InvalidRow
from collector.neis.records import LessonRecord, SchoolRecord

# Examples per property: 400 in the suite, as many as FUZZ_EXAMPLES says for a deeper run
# (FUZZ_EXAMPLES=5000 python -m pytest tests/neis/test_fuzz_parse.py).
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")),
    deadline=None,  # a loaded CI machine must not turn a slow example into a failure
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALLINT = range(-32768, 32768)
BTREE_ENTRY = 2704  # PostgreSQL's limit on one B-tree index entry, in bytes
LESSON_COLUMNS = ["ATPT_OFCDC_SC_CODE", "SD_SCHUL_CODE", "AY", "SEM", "ALL_TI_YMD", "GRADE"]
LESSON_COLUMNS += ["CLASS_NM", "PERIO", "DGHT_CRSE_SC_NM", "ORD_SC_NM", "DDDEP_NM"]
LESSON_COLUMNS += ["SCHUL_CRSE_SC_NM", "CLRM_NM", "ITRT_CNTNT", "LOAD_DTM"]
SCHOOL_COLUMNS = ["ATPT_OFCDC_SC_CODE", "ATPT_OFCDC_SC_NM", "SD_SCHUL_CODE", "SCHUL_NM"]
SCHOOL_COLUMNS += ["SCHUL_KND_SC_NM", "LCTN_SC_NM", "FOND_SC_NM", "DGHT_SC_NM", "ORG_RDNMA"]
SCHOOL_COLUMNS += ["LOAD_DTM"]

# --- Values a hostile hub might put in a row ------------------------------------------------

HOSTILE_CHARS = st.sampled_from(
    ["\x00", "\x1b", "\x1b[2J", "\x7f", "\x9b", "\ud800", "\udfff", "\t", "\n", "\r", "\u202e"]
)
texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.lists(st.one_of(st.text(max_size=5), HOSTILE_CHARS), max_size=8).map("".join),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["가", "𝄞", "a", " ", "9"]), st.integers(0, 3000)
    ),
)
digits = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(0, 10**30).map(str),
    st.sampled_from(["", " 1 ", "٣", "²", "1e3", "0x10", "9" * 5000, "+1", "1.0", "00012"]),
    st.from_regex(r"[0-9]{8}", fullmatch=True),
    st.from_regex(r"[0-9]{14}", fullmatch=True),
    st.dates().map(lambda d: d.strftime("%Y%m%d").zfill(8)),
)
codes = st.one_of(
    st.from_regex(r"[A-Z][0-9]{2}", fullmatch=True),
    st.from_regex(r"[0-9]{7}", fullmatch=True),
    st.from_regex(r"[0-9A-Za-z]{0,12}", fullmatch=True),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)
values = st.one_of(
    texts, digits, codes, json_scalars, st.lists(st.integers(), max_size=3), st.just({"a": 1})
)


def rows(columns: list[str]) -> st.SearchStrategy[dict]:
    """Rows over ``columns`` with any subset present, each holding any hostile value."""
    return st.fixed_dictionaries({}, optional=dict.fromkeys(columns, values)) | st.dictionaries(
        st.sampled_from(columns) | st.text(max_size=5), values, max_size=20
    )


# --- Bodies ---------------------------------------------------------------------------------

json_values = st.recursive(
    json_scalars | texts,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5),
    max_leaves=20,
)
totals = st.one_of(
    st.integers(), digits, json_scalars, st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"])
)
result_codes = st.one_of(st.sampled_from(["INFO-000", "INFO-200", "ERROR-337", "INFO-100"]), texts)


@st.composite
def envelopes(draw) -> bytes:
    """A NEIS-shaped answer with hostile parts, as JSON text (NaN and friends included)."""
    result = {"CODE": draw(result_codes), "MESSAGE": draw(texts | json_scalars)}
    if draw(st.booleans()):
        return json.dumps({"RESULT": result}).encode()
    head = [{"list_total_count": "TOTAL"}, {"RESULT": result}]
    page_rows = draw(st.lists(rows(LESSON_COLUMNS) | json_values, max_size=8))
    parts = draw(st.permutations([{"head": head}, {"row": page_rows}]))
    text = json.dumps({"hisTimetable": parts})
    total = draw(totals)
    total_text = total if isinstance(total, str) and not total.isdigit() else json.dumps(total)
    return text.replace('"TOTAL"', total_text).encode()


@st.composite
def mangled(draw) -> bytes:
    """An envelope cut, spliced or wrapped in deep nesting."""
    body = draw(envelopes())
    how = draw(st.sampled_from(["cut", "splice", "nest", "bom", "latin1"]))
    if how == "cut":
        return body[: draw(st.integers(0, len(body)))]
    if how == "splice":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.binary(max_size=20)) + body[at:]
    if how == "nest":
        depth = draw(st.integers(1, 5000))
        return b"[" * depth + body + b"]" * depth
    if how == "bom":
        return b"\xef\xbb\xbf" + body
    return body.decode().encode("latin-1", "replace")


# Number tokens at the edges of what the decoders agree on: long integers, floats, exponents.
numbers = st.one_of(
    st.integers(-(10**22), 10**22).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r"-?[1-9][0-9]{0,20}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?", fullmatch=True),
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    envelopes(),
    mangled(),
)


@FUZZ
@given(body=bodies | numbers.map(str.encode))
@example(body=b'{"a": [1234567890123456789]}')  # 19 digits: json's rules refuse it
@example(body=b'{"a": -123456789012345678}')  # so does a minus and 18 digits
@example(body=b'{"a": 123456789012345678, "b": "\t"}')  # orjson refuses a raw TAB
@example(body=b'{"a": 1e400}')
def test_it_decodes_a_body_fast_only_to_what_json_would_read(body):
    """orjson's value, where it gives one, is the standard library's under parse's rules
    (repr: the same types, numbers, strings and key order), never a body json refuses."""
    fast = parse._fast_decode(body)
    if fast is not parse._UNDECIDED:
        assert repr(parse._decode(body)) == repr(fast)


@FUZZ
@given(body=bodies, max_rows=st.sampled_from([1, 5, 1000]))
@example(
    body=b'{"hisTimetable": [{"head": [{"list_total_count": 1}]}, {"row": [{"a": 1}]}]}', max_rows=5
)
@example(body=b'{"\x80"', max_rows=1)  # a key that is not UTF-8: None, never an exception
def test_it_peeks_at_a_page_as_it_reads_it(body, max_rows):
    """Where both read a body, the peek's head and row count are read_envelope's, and each
    row it leaves undecoded decodes to read_envelope's row; a body the peek takes but
    read_envelope refuses is one whose rows json refuses (found when they are read)."""
    peeked = parse.peek_envelope(body, ["hisTimetable"], max_rows=max_rows)
    if peeked is None:
        return
    if peeked.rows:  # rows compared while paging: a bool, or BadBody and nothing else
        with contextlib.suppress(BadBody):
            assert parse.same_row(peeked.rows[0], peeked.rows[-1]) in (True, False)
    try:
        envelope = parse.read_envelope(body, ["hisTimetable"], max_rows=max_rows)
    except BadBody:
        return
    assert (peeked.code, peeked.message) == (envelope.code, envelope.message)
    assert peeked.list_total_count == envelope.list_total_count
    assert len(peeked.rows) == len(envelope.rows)
    for raw, row in zip(peeked.rows, envelope.rows, strict=True):
        assert parse.same_row(raw, row)
        assert repr(parse._row(raw)) == repr(row)


@FUZZ
@given(body=bodies, max_rows=st.sampled_from([1, 5, 1000]))
def test_it_reads_any_body_as_an_envelope_or_bad_body(body, max_rows):
    try:
        envelope = parse.read_envelope(body, ["hisTimetable"], max_rows=max_rows)
    except BadBody:
        return
    assert 1 <= len(envelope.code) <= 32 and envelope.code.isascii()
    assert 0 <= envelope.list_total_count <= parse.MAX_TOTAL
    assert len(envelope.rows) <= max_rows
    assert len(envelope.message) <= parse.MAX_MESSAGE
    assert_clean(envelope.message)


# --- Rows -----------------------------------------------------------------------------------


def assert_clean(value: str, whitespace: str = "") -> None:
    """Storable in PostgreSQL text and harmless on a terminal; ``whitespace`` lists the
    controls allowed (the raw subject keeps TAB, LF and CR)."""
    value.encode("utf-8")  # no lone surrogate
    assert not any(_control(char) and char not in whitespace for char in value), repr(value)


def _control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code < 0xE000


def max_length(model, field: str) -> int:
    return model._meta.get_field(field).max_length


def assert_fits(value: str, limit: int) -> None:
    assert_clean(value)
    assert len(value) <= limit, (len(value), limit)


def assert_lesson_fits(record: LessonRecord) -> None:
    assert_fits(record.office_code, max_length(Office, "code"))
    assert_fits(record.school_code, max_length(School, "code"))
    for name in ("academic_year", "semester", "grade", "period"):
        assert Lesson._meta.get_field(name).get_internal_type() == "SmallIntegerField"
        assert getattr(record, name) in SMALLINT
    assert record.academic_year in parse.ACADEMIC_YEARS
    assert record.semester in parse.SEMESTERS and record.grade in parse.GRADES
    assert record.period in parse.PERIODS and record.date.year in parse.YEARS
    key_texts = [record.class_name, record.day_night, record.track, record.department]
    key_texts += [record.course, record.classroom]
    for value in [*key_texts, record.subject]:
        assert_clean(value)
    assert_clean(record.subject_raw, whitespace="\t\n\r")
    # The natural key's text columns share one B-tree entry with its fixed-size columns;
    # the subject's two texts are each their own entry.
    assert sum(len(value.encode()) for value in key_texts) + 64 <= BTREE_ENTRY
    assert len(record.subject_raw.encode()) + 16 <= BTREE_ENTRY
    assert len(record.subject.encode()) + 16 <= BTREE_ENTRY
    if record.load_dtm is not None:
        record.load_dtm.astimezone(datetime.UTC)  # what the driver does before storing


def assert_school_fits(record: SchoolRecord) -> None:
    assert_fits(record.office_code, max_length(Office, "code"))
    assert_fits(record.office_name, max_length(Office, "name"))
    assert_fits(record.code, max_length(School, "code"))
    for field in ("name", "kind", "location", "founding_type", "day_night", "address"):
        assert_fits(getattr(record, field), max_length(School, field))
    if record.load_dtm is not None:
        record.load_dtm.astimezone(datetime.UTC)


@FUZZ
@given(row=rows(LESSON_COLUMNS) | json_values)
def test_it_makes_any_lesson_row_a_record_that_fits_or_invalid_row(row):
    try:
        record = parse.lesson_from_row(row)
    except InvalidRow as exc:
        assert exc.reason in LESSON_COLUMNS or exc.reason == "row"
        return
    assert_lesson_fits(record)


@FUZZ
@given(row=rows(SCHOOL_COLUMNS) | json_values)
def test_it_makes_any_school_row_a_record_that_fits_or_invalid_row(row):
    try:
        record = parse.school_from_row(row)
    except InvalidRow as exc:
        assert exc.reason in SCHOOL_COLUMNS or exc.reason == "row"
        return
    assert_school_fits(record)


# Rows that pass are rare among random ones, so the edges are also drawn from valid values.
NEAR_VALID_KEY = {
    "ATPT_OFCDC_SC_CODE": st.from_regex(r"[A-Z][0-9A-Z]{2}", fullmatch=True),
    "SD_SCHUL_CODE": st.from_regex(r"[0-9A-Z]{1,10}", fullmatch=True),
    "AY": st.integers(1940, 2110).map(str) | digits,
    "SEM": st.integers(-1, 6).map(str) | digits,
    "ALL_TI_YMD": st.dates().map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}"),
    "GRADE": st.integers(-1, 14).map(str) | digits,
    "PERIO": st.integers(-1, 22).map(str) | digits,
}
NEAR_VALID_REST = {
    **dict.fromkeys(["CLASS_NM", "DGHT_CRSE_SC_NM", "ORD_SC_NM", "DDDEP_NM"], texts),
    **dict.fromkeys(["SCHUL_CRSE_SC_NM", "CLRM_NM", "ITRT_CNTNT"], texts),
    "LOAD_DTM": digits,
}
near_valid_lessons = st.fixed_dictionaries(NEAR_VALID_KEY, optional=NEAR_VALID_REST)


@FUZZ
@given(row=near_valid_lessons)
def test_it_keeps_rows_at_the_edges_inside_the_columns(row):
    try:
        record = parse.lesson_from_row(row)
    except InvalidRow:
        return
    assert_lesson_fits(record)


def test_it_bounds_school_texts_by_the_models_max_length():
    # The lesson's texts are TextFields, bounded by the B-tree (checked above); the schoolInfo
    # ones are CharFields, and a longer value would be a DataError.
    assert Lesson._meta.get_field("class_name").get_internal_type() == "TextField"
    for column, model, name in [
        ("ATPT_OFCDC_SC_NM", Office, "name"),
        ("SCHUL_NM", School, "name"),
        ("SCHUL_KND_SC_NM", School, "kind"),
        ("LCTN_SC_NM", School, "location"),
        ("FOND_SC_NM", School, "founding_type"),
        ("DGHT_SC_NM", School, "day_night"),
        ("ORG_RDNMA", School, "address"),
    ]:
        assert parse.MAX_TEXT[column] == max_length(model, name), column


@FUZZ
@given(page=st.lists(near_valid_lessons | rows(LESSON_COLUMNS) | json_values, max_size=6))
def test_it_converts_a_page_through_its_memory_exactly_as_row_by_row(page):
    # LessonRows remembers each column's conversions across the rows of an answer: whatever
    # the rows, and in whatever order they repeat values, it must give what lesson_from_row
    # gives, record for record and InvalidRow reason for reason.
    remembered = parse.LessonRows()
    for row in page + page:
        assert outcome(remembered, row) == outcome(parse.lesson_from_row, row)


def outcome(convert, row) -> LessonRecord | str:
    """The record ``convert`` makes of ``row``, or the reason of its InvalidRow."""
    try:
        return convert(row)
    except InvalidRow as exc:
        return exc.reason


# --- Typed timetable pages (parse.read_lessons, LessonRows.columns, _LessonsOf.page) ---------

TIMETABLE_COLUMNS = [*LESSON_COLUMNS, "ATPT_OFCDC_SC_NM", "SCHUL_NM"]
served_values = st.none() | texts | digits | codes  # what NEIS serves: a string or null


@st.composite
def lesson_pages(draw) -> bytes:
    """A timetable page, written key by key: rows of strings and nulls as NEIS serves them,
    with hostile parts: any JSON value, another column, duplicate keys (json keeps the
    last), escaped keys, raw control characters json takes, a head or parts otherwise
    shaped, a body cut short."""
    served = st.tuples(st.sampled_from(TIMETABLE_COLUMNS), served_values)
    pair = served | st.tuples(st.sampled_from(TIMETABLE_COLUMNS) | texts, values)
    rows = st.lists(st.lists(served, max_size=20) | st.lists(pair, max_size=6), max_size=6)
    ascii_only = draw(st.booleans())

    def dump(value) -> str:
        return json.dumps(value, ensure_ascii=ascii_only)

    def obj(pairs) -> str:
        return "{" + ",".join(f"{dump(key)}:{value}" for key, value in pairs) + "}"

    page_rows = [obj((key, dump(value)) for key, value in row) for row in draw(rows)]
    total = draw(st.just(len(page_rows)) | totals.map(dump))
    result = obj([("CODE", dump(draw(result_codes))), ("MESSAGE", dump(draw(texts)))])
    head = "[" + obj([("list_total_count", total)]) + "," + obj([("RESULT", result)]) + "]"
    parts = [("head", head), ("row", "[" + ",".join(page_rows) + "]")]
    parts += draw(st.lists(st.tuples(st.sampled_from(["head", "row", "x"]), st.just("[]"))))
    text = obj([("hisTimetable", "[" + ",".join(obj([part]) for part in parts) + "]")])
    how = draw(st.sampled_from(["as is", "as is", "raw controls", "escaped key", "cut"]))
    if how == "raw controls":  # what json takes with strict=False, and orjson refuses
        text = text.replace("\\u0000", "\x00").replace("\\t", "\t").replace("\\n", "\n")
    elif how == "escaped key":
        text = text.replace('"AY"', '"\\u0041Y"')
    body = text.encode("utf-8", "surrogatepass")  # a lone surrogate unescaped: not UTF-8
    return body[: draw(st.integers(0, len(body)))] if how == "cut" else body


@FUZZ
@given(body=lesson_pages() | bodies, max_rows=st.sampled_from([1, 5, 1000]))
@example(
    body=b'{"hisTimetable":[{"head":[{"list_total_count":1}]},{"row":[{"AY":"1","AY":null}]}]}',
    max_rows=5,
)
def test_it_reads_a_page_typed_only_as_read_envelope_reads_it(body, max_rows):
    """Where read_lessons reads a body, read_envelope reads it too, to the same head and the
    same value in every column of every row (types included)."""
    typed = parse.read_lessons(body, ["hisTimetable"], max_rows=max_rows)
    if typed is None:
        return
    envelope = parse.read_envelope(body, ["hisTimetable"], max_rows=max_rows)
    assert (typed.code, typed.message, typed.list_total_count) == (
        envelope.code,
        envelope.message,
        envelope.list_total_count,
    )
    assert len(typed.rows) == len(envelope.rows)
    for one, other in zip(typed.rows.dicts(), envelope.rows, strict=True):
        assert set(other) <= set(one) == set(TIMETABLE_COLUMNS)
        assert repr(one) == repr({column: other.get(column) for column in one})


def ymd(day: datetime.date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


short_texts = st.none() | st.text(max_size=12) | texts.filter(lambda text: len(text) <= 60)
valid_lessons = st.fixed_dictionaries(
    {
        "ATPT_OFCDC_SC_CODE": st.from_regex(r"[A-Z][0-9A-Z]{2}", fullmatch=True),
        "SD_SCHUL_CODE": st.from_regex(r" ?[0-9A-Z]{1,10} ?", fullmatch=True),
        "AY": st.integers(1950, 2100).map(str),
        "SEM": st.integers(0, 4).map(str),
        "ALL_TI_YMD": st.dates(datetime.date(1950, 1, 10), datetime.date(2101, 12, 20)).map(ymd),
        "GRADE": st.integers(0, 12).map(str),
        "PERIO": st.integers(0, 20).map(str),
    },
    optional={
        **dict.fromkeys(["CLASS_NM", "DGHT_CRSE_SC_NM", "ORD_SC_NM", "DDDEP_NM"], short_texts),
        **dict.fromkeys(["SCHUL_CRSE_SC_NM", "CLRM_NM", "ITRT_CNTNT"], short_texts),
        **dict.fromkeys(["ATPT_OFCDC_SC_NM", "SCHUL_NM"], short_texts),
        "LOAD_DTM": digits | st.none(),
    },
)


@st.composite
def school_pages(draw):
    """(office, school, first day, last day, page): rows of one school around one day, as
    NEIS serves them, some changed in a column as lessons differ (a period, a subject, a
    day) or as nothing served should (another school, a value that fails its checks)."""
    base = draw(valid_lessons)
    day = datetime.date(int(base["ALL_TI_YMD"][:4]), int(base["ALL_TI_YMD"][4:6]), 1)
    day += datetime.timedelta(days=int(base["ALL_TI_YMD"][6:]) - 1)
    days = st.integers(-4, 4).map(lambda shift: ymd(day + datetime.timedelta(days=shift)))
    lesson = {"PERIO": st.integers(0, 20).map(str), "ALL_TI_YMD": days}
    lesson.update(dict.fromkeys(["CLASS_NM", "CLRM_NM", "ITRT_CNTNT", "LOAD_DTM"], short_texts))
    odd = st.fixed_dictionaries({}, optional={**NEAR_VALID_KEY, **NEAR_VALID_REST})
    odd |= st.fixed_dictionaries({}, optional=dict.fromkeys(TIMETABLE_COLUMNS, served_values))
    changes = st.fixed_dictionaries({}, optional=lesson)
    changes = st.one_of(st.just({}), changes, changes, odd)
    page = draw(st.lists(changes, min_size=1, max_size=8).map(lambda c: [{**base, **x} for x in c]))
    first = day - datetime.timedelta(days=draw(st.integers(-1, 4)))
    last = day + datetime.timedelta(days=draw(st.integers(-1, 4)))
    office = draw(st.just(base["ATPT_OFCDC_SC_CODE"]) | codes)
    school = draw(st.just(base["SD_SCHUL_CODE"].strip()) | codes)
    return office, school, first, last, page


@FUZZ
@given(query=school_pages(), ascii_only=st.booleans())
def test_it_converts_a_typed_page_exactly_as_row_by_row(query, ascii_only):
    """A page converted by column (read_lessons, _LessonsOf.page) is the records row by row
    conversion makes of read_envelope's rows, each the same, or None exactly when a row is
    not one; and the memory it shares with row by row conversion gives the same after it,
    page after page."""
    office, school, first, last, rows = query
    body = json.dumps(
        {"hisTimetable": [{"head": [{"list_total_count": len(rows)}]}, {"row": rows}]},
        ensure_ascii=ascii_only,
    ).encode("utf-8", "surrogatepass")
    typed = parse.read_lessons(body, ["hisTimetable"])
    if typed is None:
        return
    served = parse.read_envelope(body, ["hisTimetable"]).rows
    by_page = _LessonsOf(parse.LessonRows(), office, school, first, last)
    by_row = _LessonsOf(parse.LessonRows(), office, school, first, last)
    for _ in range(2):
        outcomes = [outcome(by_row, row) for row in served]
        records = by_page.page(typed.rows)
        assert (records is not None) == all(type(done) is LessonRecord for done in outcomes)
        if records is not None:
            assert repr(list(records)) == repr(outcomes)  # the same values and types
            assert all(type(record) is LessonRecord for record in records)
        assert [outcome(by_page, row) for row in typed.rows.dicts()] == outcomes


@FUZZ
@given(body=lesson_pages() | bodies)
def test_it_peeks_in_one_pass_at_what_three_passes_see(body):
    """Where the one-pass decoder reads a body, the three levels read it too, to the same
    keys, head and rows (parse.peek_envelope takes either)."""
    try:
        page = parse._PEEK_PAGE.decode(body)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return
    levels = parse._PEEK_OBJECT.decode(body)
    assert list(page) == list(levels)
    for key in page:
        assert parse._peek_parts(page[key]) == parse._peek_parts(levels[key])
