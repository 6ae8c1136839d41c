"""Turn NEIS response bodies into envelopes, and raw rows into typed records.

Pure functions, no I/O and no Django: the client feeds them bytes and decides what a RESULT
code means (``client.classify``). Everything here follows docs/neis-api.md sections 4 and 7.4.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping

from collector.clock import SEOUL
from collector.neis.records import LessonRecord, SchoolRecord

SUCCESS = "INFO-000"
#: pSize's ceiling (docs/neis-api.md section 2): no honest page holds more rows.
MAX_ROWS = 1000

_DIGITS = re.compile(r"[0-9]+")
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
    raises for a RESULT code, however bad.
    """
    _check_size(body, max_rows)
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
        # strict=False: NEIS text can hold raw control characters (tabs, newlines) in strings.
        data = json.loads(stripped, strict=False)
    except json.JSONDecodeError as exc:
        raise BadBody(f"invalid JSON ({exc.msg} at char {exc.pos} of {len(stripped)})") from None
    if not isinstance(data, dict):
        raise BadBody(f"JSON {type(data).__name__} instead of an object")

    if "RESULT" in data:
        code, message = _result(data["RESULT"])
        return Envelope(code=code, message=message)
    for key in envelope_keys:
        if key in data:
            return _success(data[key], key, max_rows)
    raise BadBody(f"no RESULT and no envelope among keys {sorted(data)[:5]}")


def _check_size(body: bytes | bytearray, max_rows: int) -> None:
    # Python objects cost 10 to 25 times the JSON text they come from when that text is all
    # tiny values ("[[],[],...]", "[1,1,...]"); a capped body of those would still cost
    # hundreds of MB to parse. A page has about one object per row and a few dozen values per
    # row, so counting brackets and commas first (memchr speed) bounds what parsing may build.
    containers = body.count(b"{") + body.count(b"[")
    if containers > 4 * max_rows + 64 or body.count(b",") > 100 * max_rows + 1024:
        raise TooManyRows(f"more JSON values than a page of {max_rows} rows can hold")


def _success(parts: object, key: str, max_rows: int) -> Envelope:
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
    return Envelope(code=code, message=message, list_total_count=total, rows=rows)


def _result(result: object) -> tuple[str, str]:
    if not isinstance(result, dict) or not isinstance(result.get("CODE"), str):
        raise BadBody("RESULT without a CODE")
    message = result.get("MESSAGE")
    return result["CODE"].strip(), message.strip() if isinstance(message, str) else ""


def _total(value: object) -> int:
    # Served as a JSON integer; a string form is accepted because nothing depends on the type.
    if isinstance(value, bool):
        raise BadBody("list_total_count is a boolean")
    try:
        total = int(value)
    except (TypeError, ValueError):
        raise BadBody(f"list_total_count is not an integer: {value!r}") from None
    if total < 0:
        raise BadBody(f"list_total_count is negative: {total}")
    return total


def _snippet(text: str, limit: int = 120) -> str:
    title = re.search(r"(?is)<title[^>]*>(.*?)</title>", text)
    shown = title.group(1) if title else text
    return " ".join(shown.split())[:limit]


# --- Rows -----------------------------------------------------------------------------------


def text(row: Mapping, column: str) -> str:
    """A text column trimmed; ``null`` or absent becomes ``""``."""
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""


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
    if not _DIGITS.fullmatch(value) or len(value) not in (8, 14):
        return None
    return _seoul_moment(value)


@functools.lru_cache(maxsize=4096)
def _seoul_moment(digits: str) -> datetime.datetime | None:
    # Not strptime: it was a third of a lesson row's parsing, and 8 or 14 ASCII digits split
    # only one way. Cached: a school's rows repeat a few LOAD_DTM values.
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
    value = text(row, column)
    if _DIGITS.fullmatch(value) and len(value) == 8:
        try:
            return datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            pass
    raise InvalidRow(column)


def _integer(row: Mapping, column: str) -> int:
    value = text(row, column)
    # fullmatch on [0-9]: str.isdigit() would also accept "²" and other Unicode digits.
    if not _DIGITS.fullmatch(value):
        raise InvalidRow(column)
    return int(value)


def _required(row: Mapping, column: str) -> str:
    value = text(row, column)
    if not value:
        raise InvalidRow(column)
    return value


def lesson_from_row(row: object) -> LessonRecord:
    """One timetable row (any level, current or archive) as a LessonRecord.

    Raises ``InvalidRow`` naming the first column that makes the row unusable: the codes, the
    date, AY, SEM, GRADE or PERIO. Every other column degrades to ``""`` or None.
    """
    if not isinstance(row, Mapping):
        raise InvalidRow("row")
    raw_subject = row.get("ITRT_CNTNT")
    subject_raw = raw_subject if isinstance(raw_subject, str) else ""
    return LessonRecord(
        office_code=_required(row, "ATPT_OFCDC_SC_CODE"),
        school_code=_required(row, "SD_SCHUL_CODE"),
        date=_date(row, "ALL_TI_YMD"),
        academic_year=_integer(row, "AY"),
        semester=_integer(row, "SEM"),
        grade=_integer(row, "GRADE"),
        class_name=text(row, "CLASS_NM"),
        period=_integer(row, "PERIO"),
        day_night=text(row, "DGHT_CRSE_SC_NM"),
        track=text(row, "ORD_SC_NM"),
        department=text(row, "DDDEP_NM"),
        course=text(row, "SCHUL_CRSE_SC_NM"),
        classroom=text(row, "CLRM_NM"),
        subject_raw=subject_raw,
        subject=normalise_subject(subject_raw),
        load_dtm=parse_load_dtm(row.get("LOAD_DTM")),
    )


def school_from_row(row: object) -> SchoolRecord:
    """One schoolInfo row as a SchoolRecord; ``InvalidRow`` when it has no codes."""
    if not isinstance(row, Mapping):
        raise InvalidRow("row")
    return SchoolRecord(
        office_code=_required(row, "ATPT_OFCDC_SC_CODE"),
        office_name=text(row, "ATPT_OFCDC_SC_NM"),
        code=_required(row, "SD_SCHUL_CODE"),
        name=text(row, "SCHUL_NM"),
        kind=normalise_kind(row.get("SCHUL_KND_SC_NM")),
        location=text(row, "LCTN_SC_NM"),
        founding_type=text(row, "FOND_SC_NM"),
        day_night=text(row, "DGHT_SC_NM"),
        address=text(row, "ORG_RDNMA"),
        load_dtm=parse_load_dtm(row.get("LOAD_DTM")),
    )
