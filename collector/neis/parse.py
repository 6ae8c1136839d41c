"""Turn NEIS response bodies into envelopes, and raw rows into typed records.

Pure functions, no I/O and no Django: the client feeds them bytes and decides what a RESULT
code means (``client.classify``). Everything here follows docs/neis-api.md sections 4 and 7.4.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Annotated

import msgspec
import orjson

from collector.clock import SEOUL
from collector.neis.records import ClassRecord, LessonRecord, ScheduleRecord, SchoolRecord

SUCCESS = "INFO-000"
#: pSize's ceiling (docs/neis-api.md section 2): no honest page holds more rows.
MAX_ROWS = 1000
#: A list_total_count beyond this is not a count (a whole year of the country is ~3e8 rows,
#: and one query is one school or one office); the ledger keeps it in a 4-byte integer.
MAX_TOTAL = 100_000_000
#: RESULT messages are a sentence or two; longer ones are cut to this many characters.
MAX_MESSAGE = 200

# --- What a row may hold -------------------------------------------------------------------
# Bounds that keep every accepted value inside its column (collector/models.py) and out of the
# implausible. PostgreSQL refuses a NUL in text and a B-tree entry over 2704 bytes, smallint
# holds -32768..32767, and a character is at most 4 bytes of UTF-8.
ACADEMIC_YEARS = range(1950, 2101)  # AY
YEARS = range(1950, 2102)  # of ALL_TI_YMD and LOAD_DTM: AY 2100 ends in February 2101
SEMESTERS = range(0, 5)  # NEIS documents 1 and 2; 0..4 keeps a lesson with a code never seen
GRADES = range(0, 13)  # 1-6 and 1-3 by level; 0 and up to 12 for special-school courses
PERIODS = range(0, 21)  # 0교시 (zero period) exists, and night courses run late
OFFICE_CODE = re.compile(r"[A-Z][0-9A-Z]{2}")  # Office.code, 3 characters: B10, V10
SCHOOL_CODE = re.compile(r"[0-9A-Z]{1,10}")  # School.code, at most 10; NEIS uses 7 digits
#: Longest text, in characters, a column takes. Subject.raw and .name are each a B-tree entry
#: (500 x 4 bytes = 2000); the six other text columns of the lesson key share one entry with
#: fixed columns (370 x 4 = 1480 bytes); the schoolInfo ones are School's and Office's
#: max_length (tests/neis/test_fuzz_parse.py checks them against the models).
MAX_TEXT = {
    "ITRT_CNTNT": 500,
    "CLASS_NM": 50,
    "DGHT_CRSE_SC_NM": 20,
    "ORD_SC_NM": 50,
    "DDDEP_NM": 100,
    "SCHUL_CRSE_SC_NM": 50,
    "CLRM_NM": 100,
    "ATPT_OFCDC_SC_NM": 100,
    "SCHUL_NM": 200,
    "SCHUL_KND_SC_NM": 50,
    "LCTN_SC_NM": 50,
    "FOND_SC_NM": 20,
    "DGHT_SC_NM": 20,
    "ORG_RDNMA": 300,
    "SBTR_DD_SC_NM": 20,
    "EVENT_NM": 200,
}
# C0 and C1 controls (CSI is U+009B), DEL and lone surrogates (JSON "\ud800" decodes to one,
# and it cannot be encoded as UTF-8). The raw subject keeps TAB, LF and CR: NEIS text has them.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_BUT_WHITESPACE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_COUNT_FROM = 1024 * 1024  # bytes; at most ~25 MB of Python objects below this
_UNBOUNDED = 1 << 62  # the limit of a column MAX_TEXT does not name (codes have patterns)
_DIGITS = re.compile(r"[0-9]+")
_RESULT_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_LEADING_MARKS = re.compile(r"^[\s\-*]+")


class BadBody(ValueError):
    """The body is not a NEIS JSON answer: HTML, XML, truncated or otherwise malformed."""


class TooManyRows(BadBody):
    """A page holds more rows than were asked for, or more JSON values than they could."""


class InvalidRow(ValueError):
    """A row lacks something a record cannot do without; ``reason`` names the column."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Envelope:
    """One decoded answer.

    ``code`` is the RESULT code: the top-level one for "no data" and errors, else the one in
    ``head`` (``INFO-000`` when a success envelope carries none). ``rows`` is empty unless the
    answer is a success envelope.
    """

    code: str
    message: str
    list_total_count: int = 0
    rows: list = dataclasses.field(default_factory=list)


def read_envelope(
    body: bytes | bytearray, envelope_keys: Iterable[str], *, max_rows: int = MAX_ROWS
) -> Envelope:
    """Decode a JSON body whatever its Content-Type claimed.

    ``envelope_keys`` are the top-level keys a success may use (the archive services answer
    under their current twin's name). Raises ``BadBody`` for anything that is not a NEIS
    envelope, ``TooManyRows`` (a BadBody) for a page of more than ``max_rows`` rows; never
    raises for a RESULT code, however bad. Nothing else leaves, whatever the bytes.
    """
    try:
        return _read_envelope(body, envelope_keys, max_rows)
    except BadBody:
        raise
    except (RecursionError, ValueError, OverflowError, TypeError) as exc:
        # The JSON parser's own failures on hostile input: nesting past the recursion limit
        # (the bracket count in _check_size bounds it, not below that limit), a number of
        # thousands of digits, and whatever a future shape of hostility finds.
        raise BadBody(f"unreadable JSON ({type(exc).__name__}: {str(exc)[:80]})") from None


def _read_envelope(body: bytes | bytearray, envelope_keys: Iterable[str], max_rows: int):
    _check_size(body, max_rows)
    data = _fast_decode(body)
    if data is _UNDECIDED:
        data = _decode(body)
    if not isinstance(data, dict):
        raise BadBody(f"JSON {type(data).__name__} instead of an object")

    if "RESULT" in data:
        code, message = _result(data["RESULT"])
        return Envelope(code=code, message=message)
    for key in envelope_keys:
        if key in data:
            return _success(data[key], key, max_rows)
    raise BadBody(f"no RESULT and no envelope among keys {sorted(data)[:5]}")


def _decode(body: bytes | bytearray) -> object:
    """The body's JSON value as the standard library reads it, with this module's rules:
    any control character in a string, no NaN or infinite number, no integer over 18
    characters; BadBody for anything else."""
    try:
        # utf-8-sig: a BOM in front of the JSON would otherwise make it "invalid".
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadBody(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    stripped = text.lstrip()
    if not stripped:
        raise BadBody("empty body")
    if stripped[0] == "<":
        raise BadBody(f"markup instead of JSON: {_snippet(stripped)}")
    try:
        return _JSON.decode(stripped)
    except json.JSONDecodeError as exc:
        raise BadBody(f"invalid JSON ({exc.msg} at char {exc.pos} of {len(stripped)})") from None


def _fast_decode(body: bytes | bytearray) -> object:
    """What ``_decode`` reads from ``body``, by orjson (about twice as fast, in C), or
    ``_UNDECIDED`` when orjson cannot vouch for giving the same value: it refuses what
    ``_decode`` may take (a control character in a string, a BOM, a lone surrogate) and
    takes what ``_decode`` refuses only as a long integer, so any body holding a run of 19
    digits or minus signs, in a string or not, is left to ``_decode``. What orjson refuses
    ``_decode`` reads again, for its own verdict and message.
    """
    if _LONG_NUMBER in body.translate(_NUMBER_CHARACTERS):
        return _UNDECIDED
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _UNDECIDED


_UNDECIDED = object()
# Digits and "-" as "0", every other byte as a space: a run of 19 zeros is a run of 19 such
# characters, where an integer _short_int refuses could hide. One pass in C (about 0.3 ms a
# page, a third of orjson's time), then a substring search.
_NUMBER_CHARACTERS = bytes(0x30 if chr(i) in "0123456789-" else 0x20 for i in range(256))
_LONG_NUMBER = b"0" * 19


def _not_a_number(name: str) -> float:
    raise BadBody(f"{name} is not a number NEIS sends")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise BadBody(f"number {text[:20]} overflows")
    return value


def _short_int(text: str) -> int:
    # Counts have a few digits; converting thousands of them is slow and raises past 4300.
    if len(text) > 18:
        raise BadBody(f"integer of {len(text)} digits")
    return int(text)


# strict=False: NEIS text can hold raw control characters (tabs, newlines) in strings. NaN,
# Infinity and overlong numbers are refused while parsing.
_JSON = json.JSONDecoder(
    strict=False, parse_constant=_not_a_number, parse_float=_finite, parse_int=_short_int
)


def _check_size(body: bytes | bytearray, max_rows: int) -> None:
    # Python objects cost 10 to 25 times the JSON text they come from when that text is all
    # tiny values ("[[],[],...]", "[1,1,...]"); a capped body of those would still cost
    # hundreds of MB to parse. A page has about one object per row and a few dozen values per
    # row, so counting brackets and commas first bounds what parsing may build. Counting costs
    # about 1 ms a MB, so bodies that cannot cost much whatever they hold are not counted.
    if len(body) <= _COUNT_FROM:
        return
    containers = body.count(b"{") + body.count(b"[")
    if containers > 4 * max_rows + 64 or body.count(b",") > 100 * max_rows + 1024:
        raise TooManyRows(f"more JSON values than a page of {max_rows} rows can hold")


def peek_envelope(
    body: bytes | bytearray, envelope_keys: Iterable[str], *, max_rows: int = MAX_ROWS
) -> Envelope | None:
    """``read_envelope``'s success envelope with its rows left as JSON text (each row a
    ``msgspec.Raw``, compared and decoded by ``same_row`` and ``read_envelope``), or None:
    then only ``read_envelope`` can say what the body is (an error RESULT, another shape, a
    head or a page it refuses, anything msgspec does not read).

    The head is decoded and checked as ``read_envelope`` does, and the rows are counted, at
    a fraction of the cost of decoding them (msgspec skips over them in C, in one pass over a
    page shaped as NEIS shapes it, three over any other). What the rows
    hold is not looked at: a page peeked here may still be one ``read_envelope`` refuses (a
    row with bytes that are not UTF-8, a number json refuses), so whoever uses its rows reads
    the body with ``read_envelope``, which says. Never raises.
    """
    if len(body) > _COUNT_FROM:  # where _check_size counts; no page of rows comes near
        return None
    try:
        try:
            data = _PEEK_PAGE.decode(body)
        except msgspec.ValidationError:  # another shape, read a level at a time
            data = _PEEK_OBJECT.decode(body)
        key = next((key for key in envelope_keys if key in data), None)
        if "RESULT" in data or key is None:
            return None
        head, rows = _peek_parts(data[key])
        if head is None or rows is None:
            return None
        head = _fast_decode(bytes(head))
        if head is _UNDECIDED or len(rows) > max_rows:
            return None
        return _success([{"head": head}], key, max_rows, rows)
    except (msgspec.MsgspecError, RecursionError, ValueError, OverflowError, TypeError):
        return None  # BadBody and UnicodeDecodeError (a key that is not UTF-8) among them


def same_row(one: object, other: object) -> bool:
    """Whether two rows, each decoded or a ``msgspec.Raw`` of ``peek_envelope``, are equal as
    decoded rows. Raises BadBody when a Raw one does not decode."""
    if isinstance(one, msgspec.Raw) and isinstance(other, msgspec.Raw) and one == other:
        return True  # the same JSON text is the same row
    return _row(one) == _row(other)


def _row(row: object) -> object:
    if not isinstance(row, msgspec.Raw):
        return row
    value = _fast_decode(bytes(row))
    if value is not _UNDECIDED:
        return value
    try:
        return _decode(bytes(row))
    except BadBody:
        raise
    except (RecursionError, ValueError, OverflowError, TypeError) as exc:  # as read_envelope
        raise BadBody(f"unreadable JSON ({type(exc).__name__})") from None


def _peek_parts(parts: list | msgspec.Raw) -> tuple[msgspec.Raw | None, list | None]:
    """The head and the rows (each a Raw) of an envelope's parts, found as ``_success`` finds
    them, or None for either that is missing: ``parts`` as _PEEK_PAGE or _PEEK_OBJECT left
    them. Raises what msgspec raises when the rows are not a list."""
    head = rows = None
    if isinstance(parts, msgspec.Raw):
        for part in _PEEK_PARTS.decode(parts):
            head, rows = part.get("head", head), part.get("row", rows)
        return head, (None if rows is None else _PEEK_ROWS.decode(rows))
    for part in parts:
        head = head if part.head is msgspec.UNSET else part.head
        rows = rows if part.row is msgspec.UNSET else part.row
    return head, rows


class _PeekPart(msgspec.Struct, forbid_unknown_fields=True):
    # Another key in a part (skipped unchecked here) sends the body to the three levels below,
    # whose dict decodes every key: the peek sees what it always saw.
    head: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    row: list[msgspec.Raw] | msgspec.UnsetType = msgspec.UNSET


# A page as NEIS shapes it, in one pass: every key of the object a list of parts, each only
# "head" and "row", the rows a list (a row, or the head, is left undecoded).
_PEEK_PAGE = msgspec.json.Decoder(dict[str, list[_PeekPart]])
# Any other shape: three levels, each leaving the level below undecoded: the object (a success
# is under one of its keys), its parts (dicts: "head" and "row"), and the rows.
_PEEK_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])
_PEEK_PARTS = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_PEEK_ROWS = msgspec.json.Decoder(list[msgspec.Raw])


def _success(parts: object, key: str, max_rows: int, peeked: list | None = None) -> Envelope:
    # Find head and row by name, not position: the order is documented but nothing needs it.
    if not isinstance(parts, list):
        raise BadBody(f"envelope {key!r} is not a list")
    head: list = []
    rows: object = []
    for part in parts:
        if isinstance(part, dict):
            head = part.get("head", head)
            rows = part.get("row", rows)
    if not isinstance(head, list) or not head:
        raise BadBody(f"envelope {key!r} has no head")
    if not isinstance(rows, list):
        raise BadBody(f"envelope {key!r} has a non-list row")
    if len(rows) > max_rows:
        raise TooManyRows(f"{len(rows)} rows on a page of at most {max_rows}")
    total: int | None = None
    code, message = SUCCESS, ""
    for item in head:
        if not isinstance(item, dict):
            continue
        if "list_total_count" in item:
            total = _total(item["list_total_count"])
        if "RESULT" in item:
            code, message = _result(item["RESULT"])
    if total is None:
        raise BadBody(f"envelope {key!r} has no list_total_count")
    rows = rows if peeked is None else peeked
    return Envelope(code=code, message=message, list_total_count=total, rows=rows)


def _result(result: object) -> tuple[str, str]:
    if not isinstance(result, dict) or not isinstance(result.get("CODE"), str):
        raise BadBody("RESULT without a CODE")
    # A code names an error class and ends up in logs and the ledger: plain ASCII only.
    code = result["CODE"].strip()
    if not _RESULT_CODE.fullmatch(code):
        raise BadBody(f"RESULT CODE is not a code: {code[:40]!r}")
    message = result.get("MESSAGE")
    message = clean(message.strip())[:MAX_MESSAGE] if isinstance(message, str) else ""
    return code, message


def _total(value: object) -> int:
    # Served as a JSON integer; a string of ASCII digits is accepted because nothing depends
    # on the type. int() would also take 1.5, "١٢" and True.
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = _short_int(value.strip())
    if type(value) is not int:
        raise BadBody(f"list_total_count is not an integer: {str(value)[:40]!r}")
    if not 0 <= value <= MAX_TOTAL:
        raise BadBody(f"list_total_count is out of range: {value}")
    return value


def _snippet(text: str, limit: int = 120) -> str:
    title = re.search(r"(?is)<title[^>]*>(.*?)</title>", text)
    shown = title.group(1) if title else text
    return " ".join(shown.split())[:limit]


# --- Rows -----------------------------------------------------------------------------------


def clean(value: str, *, keep_whitespace: bool = False) -> str:
    """``value`` with every control character, DEL and lone surrogate replaced by U+FFFD:
    safe to store in PostgreSQL text and to print. ``keep_whitespace`` spares TAB, LF and CR.

    Replaced rather than removed, so that "a\x00b" does not silently become another "ab".
    """
    if value.isprintable():
        return value
    unsafe = _UNSAFE_BUT_WHITESPACE if keep_whitespace else _UNSAFE
    return unsafe.sub("\ufffd", value)


def text(row: Mapping, column: str) -> str:
    """A text column trimmed and cleaned; ``null`` or absent becomes ``""``.

    Raises ``InvalidRow(column)`` when it is longer than ``MAX_TEXT`` allows.
    """
    value = row.get(column)
    if not isinstance(value, str):
        return ""
    value = value.strip()
    # clean(), inlined: this runs a dozen times a row, and nearly every value is printable.
    if not value.isprintable():
        value = _UNSAFE.sub("\ufffd", value)
    if len(value) > MAX_TEXT.get(column, _UNBOUNDED):
        raise InvalidRow(column)
    return value


def normalise_subject(raw: str | None) -> str:
    """The subject as a comparable name.

    Strips surrounding whitespace and the leading ``-``/``*`` marks many schools type, and
    collapses inner whitespace runs to one space. Roman numerals and brackets stay: ``수학Ⅰ``
    and ``수학Ⅱ``, or ``체육(A)`` and ``체육(B)``, are different lessons.
    """
    if not raw:
        return ""
    # NFC: a decomposed-jamo upload must compare equal to the usual composed Hangul.
    cleaned = _LEADING_MARKS.sub("", unicodedata.normalize("NFC", raw))
    return " ".join(cleaned.split())


def normalise_kind(raw: str | None) -> str:
    """SCHUL_KND_SC_NM without any whitespace: ``각종학교 (중)`` becomes ``각종학교(중)``."""
    return "".join(raw.split()) if isinstance(raw, str) else ""


def parse_load_dtm(raw: str | None) -> datetime.datetime | None:
    """LOAD_DTM (``YYYYMMDD`` or ``YYYYMMDDhhmmss``) as an aware Asia/Seoul datetime.

    Returns None for null, empty or anything that is not a real date and time: the column is
    informative only, so a bad value must not cost the row.
    """
    value = (raw or "").strip() if isinstance(raw, str) else ""
    if len(value) not in (8, 14) or not _DIGITS.fullmatch(value):
        return None
    return _seoul_moment(value)


@functools.lru_cache(maxsize=4096)
def _seoul_moment(digits: str) -> datetime.datetime | None:
    # Not strptime: it was a third of a lesson row's parsing, and 8 or 14 ASCII digits split
    # only one way. Cached: a school's rows repeat a few LOAD_DTM values.
    # Years outside YEARS are refused: year 1 in Seoul is year 0 in UTC, which no datetime
    # (nor the database driver converting to UTC) can hold.
    if int(digits[:4]) not in YEARS:
        return None
    try:
        return datetime.datetime(
            int(digits[:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10] or 0),
            int(digits[10:12] or 0),
            int(digits[12:14] or 0),
            tzinfo=SEOUL,
        )
    except ValueError:
        return None


def _date(row: Mapping, column: str) -> datetime.date:
    value = row.get(column)
    value = value.strip() if isinstance(value, str) else ""
    # The length first: only 8-character texts reach the cache, never a hostile megabyte.
    day = _day(value) if len(value) == 8 else None
    if day is None:
        raise InvalidRow(column)
    return day


@functools.lru_cache(maxsize=4096)
def _day(value: str) -> datetime.date | None:
    # Cached, like _seoul_moment: a page has a few distinct dates over a thousand rows.
    if value.isascii() and value.isdigit() and int(value[:4]) in YEARS:
        try:
            return datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            pass
    return None


def _integer(row: Mapping, column: str, bounds: range) -> int:
    value = text(row, column)
    # ASCII digits only: str.isdigit() alone would also accept "²" and other Unicode digits.
    # The length first, so that int() never meets thousands of digits.
    if len(value) <= 6 and value.isascii() and value.isdigit():
        number = int(value)
        if number in bounds:
            return number
    raise InvalidRow(column)


def _code(row: Mapping, column: str, pattern: re.Pattern) -> str:
    # The pattern admits neither control characters nor excess length: no text() needed.
    value = row.get(column)
    value = value.strip() if isinstance(value, str) else ""
    if not pattern.fullmatch(value):
        raise InvalidRow(column)
    return value


@functools.lru_cache(maxsize=1024)
def _subject(raw: str) -> tuple[str, str]:
    """(subject_raw, subject) of an ITRT_CNTNT text, or InvalidRow when either is too long.

    Cached: a school's thousand rows a page repeat a few dozen subjects. Callers pass texts
    of at most MAX_TEXT characters, so the cache holds at most about 2 MB.
    """
    subject_raw = clean(raw, keep_whitespace=True)
    subject = normalise_subject(subject_raw)
    # NFC can lengthen a text, so the normalised subject is measured too.
    if max(len(subject_raw), len(subject)) > MAX_TEXT["ITRT_CNTNT"]:
        raise InvalidRow("ITRT_CNTNT")
    return subject_raw, subject


def lesson_from_row(row: object) -> LessonRecord:
    """One timetable row (any level, current or archive) as a LessonRecord.

    Raises ``InvalidRow`` naming a column that makes the row unusable: a code that is not
    one, a date or number outside its bounds (YEARS, SEMESTERS, GRADES, PERIODS), a text longer
    than MAX_TEXT (the subject is measured first). Other columns degrade to ``""`` or None.
    Every text is ``clean``: ``subject_raw`` is the served text with only that done to it, and
    keeps its TABs, LFs and CRs.
    """
    if not isinstance(row, Mapping):
        raise InvalidRow("row")
    raw_subject = row.get("ITRT_CNTNT")
    if not isinstance(raw_subject, str):
        subject_raw, subject = "", ""
    elif len(raw_subject) > MAX_TEXT["ITRT_CNTNT"]:  # clean() keeps the length
        raise InvalidRow("ITRT_CNTNT")
    else:
        subject_raw, subject = _subject(raw_subject)
    return LessonRecord(
        office_code=_code(row, "ATPT_OFCDC_SC_CODE", OFFICE_CODE),
        school_code=_code(row, "SD_SCHUL_CODE", SCHOOL_CODE),
        date=_date(row, "ALL_TI_YMD"),
        academic_year=_integer(row, "AY", ACADEMIC_YEARS),
        semester=_integer(row, "SEM", SEMESTERS),
        grade=_integer(row, "GRADE", GRADES),
        class_name=text(row, "CLASS_NM"),
        period=_integer(row, "PERIO", PERIODS),
        day_night=text(row, "DGHT_CRSE_SC_NM"),
        track=text(row, "ORD_SC_NM"),
        department=text(row, "DDDEP_NM"),
        course=text(row, "SCHUL_CRSE_SC_NM"),
        classroom=text(row, "CLRM_NM"),
        subject_raw=subject_raw,
        subject=subject,
        load_dtm=parse_load_dtm(row.get("LOAD_DTM")),
    )


class LessonRows:
    """``lesson_from_row`` for the many rows of one answer, remembering conversions.

    A school's pages repeat a few values per column (its codes, a few dates, class names,
    periods, subjects, LOAD_DTM stamps), so each column's conversion is done once per distinct
    value and looked up after that. The result is always what ``lesson_from_row`` gives,
    record or ``InvalidRow``: a row holding a value that fails its column's checks (those are
    never remembered), an unhashable value, or a row that is not a dict goes through
    ``lesson_from_row`` itself, which names the column. Each column remembers at most
    ``MAX_REMEMBERED`` values, so a hostile answer of unique values costs memory like any
    answer, not more.
    """

    MAX_REMEMBERED = 4096

    def __init__(self) -> None:
        self._memos = [_Memo(convert, self.MAX_REMEMBERED) for convert in _LESSON_CONVERTERS]

    def __call__(self, row: object) -> LessonRecord:
        if type(row) is not dict:
            return lesson_from_row(row)
        try:
            return LessonRecord(*map(_lookup, self._memos, map(row.get, _LESSON_FIELDS)))
        except (InvalidRow, TypeError):  # TypeError: unhashable, a list where text belongs
            return lesson_from_row(row)  # raises InvalidRow for the first bad column

    def columns(self, page: LessonPage) -> dict[str, list] | None:
        """Every LessonRecord field's values over the rows of ``page``, by field name in the
        record's field order (what ``records.lesson_records`` takes), when every row makes a
        record; None when one may not: then convert the rows one by one (``page.dicts()``),
        which says which and why.

        The page's columns come by one transpose of its rows as tuples (a third cheaper than
        an attribute getter a column), and each is converted through the same memory as
        ``__call__``: one lookup a value in C, and one in all for a column holding a single
        value (codes, years, courses).
        """
        count = len(page)
        if not count:
            return {name: [] for name in _RECORD_FIELDS}
        read = list(zip(*map(msgspec.structs.astuple, page), strict=True))
        columns = {}
        try:
            for name, memo, column in zip(_RECORD_FIELDS, self._memos, _LESSON_FIELDS, strict=True):
                values = read[_COLUMN_INDEX[column]]  # ITRT_CNTNT makes two fields
                first = values[0]
                if values == (first,) * count:  # stops at the first other value
                    columns[name] = [memo[first]] * count
                else:
                    columns[name] = list(map(memo.__getitem__, values))
        except InvalidRow:
            return None
        return columns


class _Memo(dict):
    """One column's conversions, value -> converted value; a value whose conversion raises
    InvalidRow is not remembered, so the exception leaves every lookup of it."""

    __slots__ = ("convert", "limit")

    def __init__(self, convert, limit: int):
        super().__init__()
        self.convert, self.limit = convert, limit

    def __missing__(self, value):
        result = self.convert(value)
        if len(self) >= self.limit:
            self.clear()
        self[value] = result
        return result


_lookup = dict.__getitem__
# The row's columns in LessonRecord's field order; ITRT_CNTNT twice: subject_raw, subject.
_LESSON_FIELDS = ("ATPT_OFCDC_SC_CODE", "SD_SCHUL_CODE", "ALL_TI_YMD", "AY", "SEM", "GRADE")
_LESSON_FIELDS += ("CLASS_NM", "PERIO", "DGHT_CRSE_SC_NM", "ORD_SC_NM", "DDDEP_NM")
_LESSON_FIELDS += ("SCHUL_CRSE_SC_NM", "CLRM_NM", "ITRT_CNTNT", "ITRT_CNTNT", "LOAD_DTM")
_RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(LessonRecord))


def _subject_part(index: int):
    def convert(raw: object) -> str:
        if not isinstance(raw, str):
            return ""
        if len(raw) > MAX_TEXT["ITRT_CNTNT"]:
            raise InvalidRow("ITRT_CNTNT")
        return _subject(raw)[index]

    return convert


def _column(check, column: str, *args):
    # One column's conversion as lesson_from_row makes it, on a one-column row.
    return lambda value: check({column: value}, column, *args)


# Each field's conversion, the same helpers lesson_from_row calls.
_LESSON_CONVERTERS = (
    _column(_code, "ATPT_OFCDC_SC_CODE", OFFICE_CODE),
    _column(_code, "SD_SCHUL_CODE", SCHOOL_CODE),
    _column(_date, "ALL_TI_YMD"),
    _column(_integer, "AY", ACADEMIC_YEARS),
    _column(_integer, "SEM", SEMESTERS),
    _column(_integer, "GRADE", GRADES),
    _column(text, "CLASS_NM"),
    _column(_integer, "PERIO", PERIODS),
    _column(text, "DGHT_CRSE_SC_NM"),
    _column(text, "ORD_SC_NM"),
    _column(text, "DDDEP_NM"),
    _column(text, "SCHUL_CRSE_SC_NM"),
    _column(text, "CLRM_NM"),
    _subject_part(0),
    _subject_part(1),
    parse_load_dtm,
)


# --- Timetable pages decoded straight into typed rows ----------------------------------------
# The columns a timetable row may hold (docs/neis-api.md section 4.5), in the order NEIS
# serves them (msgspec matches keys fastest in the order declared): the lesson's, and the
# office's and school's names, which the records do not keep.
_TIMETABLE_COLUMNS = ("ATPT_OFCDC_SC_CODE", "ATPT_OFCDC_SC_NM", "SD_SCHUL_CODE", "SCHUL_NM")
_TIMETABLE_COLUMNS += ("AY", "SEM", "ALL_TI_YMD", "DGHT_CRSE_SC_NM", "ORD_SC_NM", "DDDEP_NM")
_TIMETABLE_COLUMNS += ("SCHUL_CRSE_SC_NM", "GRADE", "CLRM_NM", "CLASS_NM", "PERIO")
_TIMETABLE_COLUMNS += ("ITRT_CNTNT", "LOAD_DTM")

# A row is an object of those columns, each a string or null (absent is null too, as row.get
# reads it). Any other column or value makes msgspec refuse the page: skipped values are not
# checked (bytes that are not UTF-8, 1e999), so none is skipped. gc=False: strings only.
_LessonRow = msgspec.defstruct(
    "_LessonRow",
    [(column, str | None, None) for column in _TIMETABLE_COLUMNS],
    forbid_unknown_fields=True,
    gc=False,
)
# Where each column is in a row as a tuple (msgspec.structs.astuple: the columns' order).
_COLUMN_INDEX = {column: index for index, column in enumerate(_TIMETABLE_COLUMNS)}


class _HeadResult(msgspec.Struct, forbid_unknown_fields=True):
    CODE: str
    MESSAGE: str | msgspec.UnsetType = msgspec.UNSET


class _HeadItem(msgspec.Struct, forbid_unknown_fields=True):
    # _short_int's and _total's bounds hold for every integer msgspec takes here.
    list_total_count: Annotated[int, msgspec.Meta(ge=0, le=MAX_TOTAL)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    RESULT: _HeadResult | msgspec.UnsetType = msgspec.UNSET


class _Part(msgspec.Struct, forbid_unknown_fields=True):
    # UNSET, not None, for an absent part: json reads "row": null as a row that is not a list.
    head: list[_HeadItem] | msgspec.UnsetType = msgspec.UNSET
    row: list[_LessonRow] | msgspec.UnsetType = msgspec.UNSET


_LESSON_PAGE = msgspec.json.Decoder(dict[str, list[_Part]])


class LessonPage(list):
    """A timetable page's rows as ``read_lessons`` decodes them: each row's columns are
    attributes named like the columns, None where the row has null or nothing."""

    def dicts(self) -> list[dict]:
        """The rows as dicts, every column present: what ``row.get`` reads in the rows
        ``read_envelope`` gives for the same body."""
        return list(map(msgspec.structs.asdict, self))


def read_lessons(
    body: bytes | bytearray, envelope_keys: Iterable[str], *, max_rows: int = MAX_ROWS
) -> Envelope | None:
    """``read_envelope``'s envelope of a timetable page, its rows a ``LessonPage``, or None
    when only ``read_envelope`` can say what the body is.

    Decoded by msgspec straight into typed rows (no dict a row), and only when every value in
    the body has the type NEIS serves: the page's texts are strings or null, its count an
    integer within MAX_TOTAL, its parts and head items objects of the keys they document.
    Anything else (a number where text belongs, another column, a control character or lone
    surrogate json would take, anything json or msgspec refuses) gives None, so that
    ``read_envelope`` reads the body as before and names what is wrong. Duplicate keys: the
    last one counts, as in json. Never raises.
    """
    if len(body) > _COUNT_FROM:  # where _check_size counts; no page of rows comes near
        return None
    try:
        data = _LESSON_PAGE.decode(body)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return None
    key = next((key for key in envelope_keys if key in data), None)
    if "RESULT" in data or key is None:
        return None
    head: list = []
    rows: list = []
    for part in data[key]:  # by name and the last one counting, as _success finds them
        head = head if part.head is msgspec.UNSET else msgspec.to_builtins(part.head)
        rows = rows if part.row is msgspec.UNSET else part.row
    try:
        return _success([{"head": head, "row": rows}], key, max_rows, LessonPage(rows))
    except BadBody:
        return None


def school_from_row(row: object) -> SchoolRecord:
    """One schoolInfo row as a SchoolRecord, its texts ``clean``.

    Raises ``InvalidRow`` when a code is missing or not a code, or a text is longer than its
    column (MAX_TEXT).
    """
    if not isinstance(row, Mapping):
        raise InvalidRow("row")
    kind = clean(normalise_kind(row.get("SCHUL_KND_SC_NM")))
    if len(kind) > MAX_TEXT["SCHUL_KND_SC_NM"]:
        raise InvalidRow("SCHUL_KND_SC_NM")
    return SchoolRecord(
        office_code=_code(row, "ATPT_OFCDC_SC_CODE", OFFICE_CODE),
        office_name=text(row, "ATPT_OFCDC_SC_NM"),
        code=_code(row, "SD_SCHUL_CODE", SCHOOL_CODE),
        name=text(row, "SCHUL_NM"),
        kind=kind,
        location=text(row, "LCTN_SC_NM"),
        founding_type=text(row, "FOND_SC_NM"),
        day_night=text(row, "DGHT_SC_NM"),
        address=text(row, "ORG_RDNMA"),
        load_dtm=parse_load_dtm(row.get("LOAD_DTM")),
    )


def class_from_row(row: object) -> ClassRecord:
    """One classInfo row as a ClassRecord, with the same bounds as a timetable row's columns.

    Raises ``InvalidRow`` naming the column that makes it unusable (codes, AY, GRADE, a text
    over MAX_TEXT, or an empty CLASS_NM: a class without a name cannot be matched).
    """
    if not isinstance(row, Mapping):
        raise InvalidRow("row")
    class_name = text(row, "CLASS_NM")
    if not class_name:
        raise InvalidRow("CLASS_NM")
    return ClassRecord(
        office_code=_code(row, "ATPT_OFCDC_SC_CODE", OFFICE_CODE),
        school_code=_code(row, "SD_SCHUL_CODE", SCHOOL_CODE),
        academic_year=_integer(row, "AY", ACADEMIC_YEARS),
        grade=_integer(row, "GRADE", GRADES),
        class_name=class_name,
        day_night=text(row, "DGHT_CRSE_SC_NM"),
        course=text(row, "SCHUL_CRSE_SC_NM"),
        track=text(row, "ORD_SC_NM"),
        department=text(row, "DDDEP_NM"),
    )


def schedule_from_row(row: object) -> ScheduleRecord:
    """One SchoolSchedule row as a ScheduleRecord.

    Raises ``InvalidRow`` for a bad code or AA_YMD, or a text over MAX_TEXT.
    """
    if not isinstance(row, Mapping):
        raise InvalidRow("row")
    return ScheduleRecord(
        office_code=_code(row, "ATPT_OFCDC_SC_CODE", OFFICE_CODE),
        school_code=_code(row, "SD_SCHUL_CODE", SCHOOL_CODE),
        date=_date(row, "AA_YMD"),
        day_kind=text(row, "SBTR_DD_SC_NM"),
        name=text(row, "EVENT_NM"),
        course=text(row, "SCHUL_CRSE_SC_NM"),
        day_night=text(row, "DGHT_CRSE_SC_NM"),
    )
