"""Where NEIS lesson records become lesson rows, and nothing else.

``store_lessons`` gives one school's date window replace semantics in one transaction (a
savepoint inside the caller's): afterwards the stored lessons of that school and window are
exactly the fetched ones. Unchanged lessons are not written at all, so a re-run leaves no dead
tuples. On PostgreSQL the records are COPYed into a temporary table and merged by one
statement; elsewhere (the embedded SQLite default) the same comparison is made in Python and
written with ``bulk_create(update_conflicts=True)``. Both report identical counts.

On PostgreSQL the lesson table is partitioned by month on ``date``. ``store_lessons`` creates
the partitions a window needs; ``drop_lesson_partitions`` removes old months in one statement.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import itertools
import logging
import operator
import re
import struct
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import psycopg
from django.db import connection, transaction

from collector import clock
from collector.models import (
    LESSON_KEY,
    LESSON_VALUES,
    RECORD_KEY,
    ChangeKind,
    Lesson,
    LessonChange,
    School,
    Subject,
    WindowDigest,
)
from collector.neis.records import LessonRecord, LessonRecords

log = logging.getLogger(__name__)

# Advisory lock namespaces (the first key), so that these locks never meet anyone else's.
LESSON_LOCK = 0x4E4C  # "NL": key is the school id
PARTITION_LOCK = 0x4E50  # "NP": key 0

# The lesson key as stored columns (subject_id, not the subject text), and the values.
_KEY_COLUMNS = tuple(f"{name}_id" if name in ("school", "subject") else name for name in LESSON_KEY)
_WINDOW_KEY = _KEY_COLUMNS[1:]  # everything after school_id
_STAGE_COLUMNS = (*_WINDOW_KEY, *LESSON_VALUES)
# A record's key columns between the school and the subject (the subject becomes its id).
_record_slot = operator.attrgetter(*RECORD_KEY[1:-1])
_day = operator.itemgetter(0)  # of a key (the window's key columns start with the date)


@dataclasses.dataclass(frozen=True)
class StoreResult:
    """What ``store_lessons`` did to one school's window.

    ``inserted + updated + unchanged`` is the number of distinct lessons fetched; ``collapsed``
    counts fetched records folded into another one with the same natural key.
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    collapsed: int = 0
    skipped: bool = False  # the answer's digest matched: nothing was compared or written
    # After a store that compared or wrote: the window (first and last day) and its lessons
    # by date as now stored (the window equals the records), so that counting them needs no
    # read. Not part of equality.
    window: tuple[datetime.date, datetime.date] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    by_day: Counter | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def stored(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in _COUNTS}


_COUNTS = [field for field in dataclasses.fields(StoreResult) if field.compare]  # the counts


@dataclasses.dataclass(frozen=True)
class Observer:
    """Who saw a change, for the history: the run and its unit (None when called directly)."""

    run_id: int | None = None
    unit_id: int | None = None


# --- Lessons --------------------------------------------------------------------------------


def store_lessons(
    school: School,
    date_from: datetime.date,
    date_to: datetime.date,
    records: Iterable[LessonRecord],
    *,
    method: str | None = None,
    history: Observer | None = Observer(),
    digest: str | None = None,
    unknown: bool = False,
    savepoint: bool = True,
) -> StoreResult:
    """Make the stored lessons of ``school`` between two dates (inclusive) equal ``records``.

    New lessons are inserted, lessons whose AY, SEM or LOAD_DTM differ are updated (and their
    ``changed_at`` set), lessons missing from ``records`` are deleted, and the rest are not
    touched. Records with the same natural key (``models.LESSON_KEY``) are one lesson: the one
    with the latest LOAD_DTM is kept. An empty ``records`` deletes the whole window; callers
    that get NEIS's "no data" should not call this.

    Runs in one transaction, or a savepoint of the caller's (none with ``savepoint=False``:
    for a caller that rolls its transaction back whole on any failure, as the pipeline does,
    two round trips fewer); never commits by itself. Two
    writers of the same school wait for each other. ``method`` is ``"copy"`` (PostgreSQL only)
    or ``"orm"``; the default is the fastest the database has. Raises ValueError when a record
    belongs to another school or lies outside the window.

    Every change is recorded in the history (``models.LessonChange``) in the same
    transaction, as observed by ``history`` (its run and unit); ``None``
    records nothing (benchmarks compare the two).

    ``digest`` identifies the answer ``records`` came from (``FetchResult.digest``). When the
    window's last merge was of an answer with the same digest and no merge has changed the
    school's lessons in the window since, the stored window already equals ``records``:
    nothing is compared or written, and the result says ``skipped``. ``unknown``: not asked
    (``known_answer``): the caller has just asked in this transaction and was told None, or
    knows the window had no digest (a skip missed costs only the merge, which finds the
    window equal and writes nothing).
    """
    if date_from > date_to:
        raise ValueError(f"date_from {date_from} is after date_to {date_to}")
    postgres = connection.vendor == "postgresql"
    method = method or ("copy" if postgres else "orm")
    if method not in ("copy", "orm") or (method == "copy" and not postgres):
        raise ValueError(f"unknown or unsupported method {method!r} on {connection.vendor}")
    if not isinstance(records, list | LessonRecords):  # whose columns storage reads
        records = list(records)
    with transaction.atomic(savepoint=savepoint):
        if digest is not None and not unknown:
            known = known_answer(school, date_from, date_to, digest)
            if known is not None and known.stored + known.collapsed == len(records):
                return known
        if postgres:
            ensure_partitions(date_from, date_to)
        if isinstance(records, LessonRecords):
            columns = records.columns
            names = dict(zip(columns["subject_raw"], columns["subject"], strict=True))
        else:
            names = {record.subject_raw: record.subject for record in records}
        subjects = _subject_ids(names)
        rows = _distinct_rows(school, date_from, date_to, records, subjects)
        by_day = Counter(map(_day, rows))  # the window's lessons by date, once written
        write = _merge_copy if method == "copy" else _merge_orm
        inserted, updated, removed = write(school, date_from, date_to, rows, by_day, history)
        changed = bool(inserted or updated or removed)
        if digest is not None:
            _remember_digest(
                school, date_from, date_to, digest, len(rows), len(records), forget=changed
            )
        elif changed:
            # The school's lessons changed: no digest of a window overlapping this one vouches
            # for them any more. Plain SQL: the ORM's delete cost 170 us more client CPU a
            # call (its collector, the query's compilation), once per window.
            with connection.cursor() as cursor:
                cursor.execute(_FORGET_DIGESTS, [school.pk, date_to, date_from])
    return StoreResult(
        inserted=inserted,
        updated=updated,
        unchanged=len(rows) - inserted - updated,
        removed=removed,
        collapsed=len(records) - len(rows),
        window=(date_from, date_to),
        by_day=by_day,
    )


def known_answer(
    school: School, date_from: datetime.date, date_to: datetime.date, digest: str
) -> StoreResult | None:
    """What ``store_lessons`` would find if given the answer ``digest`` identifies, when the
    window's last merge was of that answer and nothing has changed the school's lessons in
    the window since: a ``skipped`` result (nothing to write), else None. Needs no records:
    the pipeline asks before converting any row, and converts only when this says None.

    Call it inside the transaction that goes on to store (or to record the counts): it takes
    the school's write lock (PostgreSQL), so that no merge of the same school can change its
    lessons between this look and the caller's commit. The lock is its own statement, so
    that the look's snapshot is taken once the lock is held; then one query, which counts
    the window only when the digest matches.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_LOCK, [LESSON_LOCK, school.pk])
        cursor.execute(
            _KNOWN_DIGEST, [school.pk, date_from, date_to, school.pk, date_from, date_to, digest]
        )
        found = cursor.fetchone()
    # The digest vouches for lessons written by merges; the count guards against anything
    # else having emptied the window since (a TRUNCATE, a restore).
    if found is None or found[0] != found[2]:
        return None
    lessons, records, _ = found
    return StoreResult(unchanged=lessons, collapsed=records - lessons, skipped=True)


def _remember_digest(school, date_from, date_to, digest, lessons, records, *, forget) -> None:
    """Store the window's digest; with ``forget`` (the merge changed the school's lessons)
    first drop the digests of every other window overlapping it: none vouches any more."""
    remember = [school.pk, date_from, date_to, digest, lessons, records, clock.now()]
    others = [school.pk, date_to, date_from, date_from, date_to]
    with connection.cursor() as cursor:
        if not forget:
            cursor.execute(_REMEMBER_DIGEST, remember)
        elif connection.vendor == "postgresql":  # one round trip for both
            cursor.execute(_FORGET_OTHERS_AND_REMEMBER, others + remember)
        else:
            cursor.execute(_FORGET_OTHER_DIGESTS, others)
            cursor.execute(_REMEMBER_DIGEST, remember)


def _distinct_rows(
    school: School,
    date_from: datetime.date,
    date_to: datetime.date,
    records: list[LessonRecord] | LessonRecords,
    subjects: dict[str, int],
) -> dict[tuple, tuple]:
    """Records by natural key (``_WINDOW_KEY``) -> values (``LESSON_VALUES``).

    Of several records with one key the latest LOAD_DTM wins (then the higher AY and SEM), so
    the choice does not depend on NEIS's row order.

    Records given by column (``LessonRecords``, a first load's) are read a column at a time,
    in C, their LessonRecord objects never made; a list, a record at a time (reading its
    fields into columns first cost as much as the loop saves).
    """
    if not isinstance(records, LessonRecords) or not records:
        return _ranked_rows(school, date_from, date_to, records, subjects)
    c, count = records.columns, len(records)
    if c["school_code"].count(school.code) != count or not (
        date_from <= min(c["date"]) and max(c["date"]) <= date_to
    ):
        return _ranked_rows(school, date_from, date_to, records, subjects)  # raises, naming one
    # NEIS times are Seoul times, so a naive LOAD_DTM is made one (an aware one is no key of
    # the map and passes as it is, and so does None).
    load_dtm = c["load_dtm"]
    naive = {t: t.replace(tzinfo=clock.SEOUL) for t in set(load_dtm) if _is_naive(t)}
    key_columns = tuple(c[name] for name in RECORD_KEY[1:-1])
    key_columns += (list(map(subjects.__getitem__, c["subject_raw"])),)
    value_columns = (c["academic_year"], c["semester"])
    value_columns += (list(map(naive.get, load_dtm, load_dtm)) if naive else load_dtm,)
    keys = list(zip(*key_columns, strict=True))
    values = list(zip(*value_columns, strict=True))
    rows = _Rows(zip(keys, values, strict=True))  # each key where it first comes, its last value
    # A key given twice with the same values (NEIS serves byte-identical rows) is one lesson
    # whichever is kept; only a key with values that differ needs the ranking: then a value
    # differs from its key's last one, the one kept (looked up in C: a set of the pairs
    # cost twice as much, 0.11 us a record).
    if len(rows) < count and list(map(rows.__getitem__, keys)) != values:
        return _ranked_rows(school, date_from, date_to, records, subjects)
    rows.columns = key_columns + value_columns
    return rows


class _Rows(dict):
    """``_distinct_rows``' result; ``columns``: the keys' and values' columns of the records
    it was made of, in their order (each key a row of the result, or more alike rows), when
    it had them at hand, for ``_copy_lines``."""

    columns: tuple | None = None


def _is_naive(moment: datetime.datetime | None) -> bool:
    return moment is not None and moment.tzinfo is None


def _ranked_rows(
    school: School,
    date_from: datetime.date,
    date_to: datetime.date,
    records: list[LessonRecord],
    subjects: dict[str, int],
) -> dict[tuple, tuple]:
    """``_distinct_rows`` a record at a time, ranking the records of one key; raises
    ValueError for the first record of another school or outside the window. (LessonRecords
    make their records for it.)"""
    rows: dict[tuple, tuple] = {}
    code = school.code
    for record in records:
        if record.school_code != code:
            raise ValueError(f"a record of school {record.school_code} given for {code}")
        if not date_from <= record.date <= date_to:
            raise ValueError(f"a record dated {record.date} outside {date_from}..{date_to}")
        load_dtm = record.load_dtm
        if load_dtm is not None and load_dtm.tzinfo is None:
            load_dtm = load_dtm.replace(tzinfo=clock.SEOUL)  # NEIS times are Seoul times
        key = (*_record_slot(record), subjects[record.subject_raw])
        value = (record.academic_year, record.semester, load_dtm)
        kept = rows.get(key)
        if kept is None or _rank(value) > _rank(kept):
            rows[key] = value
    return rows


def _rank(value: tuple) -> tuple:
    academic_year, semester, load_dtm = value
    return (load_dtm is not None, load_dtm or datetime.datetime.min, academic_year, semester)


def _subject_ids(names: dict[str, str]) -> dict[str, int]:
    """Subject ids by raw text, adding the texts not seen before.

    Inserted in sorted order with ON CONFLICT DO NOTHING, so concurrent writers adding the
    same new subjects wait for each other instead of deadlocking. A name that the normaliser
    now spells differently is corrected.
    """
    found = _stored_subjects(list(names))
    missing = sorted(raw for raw in names if raw not in found)
    if missing:
        Subject.objects.bulk_create(
            [Subject(raw=raw, name=names[raw]) for raw in missing], ignore_conflicts=True
        )
        found.update(_stored_subjects(missing))
    for raw, (pk, name) in found.items():
        if name != names[raw]:
            Subject.objects.filter(pk=pk).update(name=names[raw])
    return {raw: pk for raw, (pk, _) in found.items()}


def _stored_subjects(raws: list[str]) -> dict[str, tuple[int, str]]:
    # Plain SQL: this runs once per call, and the ORM would double its cost.
    found = {}
    with connection.cursor() as cursor:
        for batch in batches(raws, 500):
            placeholders = ", ".join(["%s"] * len(batch))
            cursor.execute(
                f"SELECT raw, id, name FROM collector_subject WHERE raw IN ({placeholders})", batch
            )
            found.update((raw, (pk, name)) for raw, pk, name in cursor.fetchall())
    return found


# A window's digest row matching an answer, and then only, how many lessons the window holds.
_KNOWN_DIGEST = """
SELECT d.lessons, d.records, (SELECT count(*) FROM collector_lesson l
                              WHERE l.school_id = %s AND l.date BETWEEN %s AND %s)
FROM collector_windowdigest d
WHERE d.school_id = %s AND d.date_from = %s AND d.date_to = %s AND d.digest = %s
"""
# The digests of a school's windows overlapping a window (school, its last day, its first
# day), and of those the other windows' (then the window's first and last day).
_FORGET_DIGESTS = """
DELETE FROM collector_windowdigest
WHERE school_id = %s AND date_from <= %s AND date_to >= %s
"""
_FORGET_OTHER_DIGESTS = _FORGET_DIGESTS + "AND NOT (date_from = %s AND date_to = %s)\n"
_REMEMBER_DIGEST = """
INSERT INTO collector_windowdigest
    (school_id, date_from, date_to, digest, lessons, records, merged_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (school_id, date_from, date_to) DO UPDATE
SET digest = EXCLUDED.digest, lessons = EXCLUDED.lessons, records = EXCLUDED.records,
    merged_at = EXCLUDED.merged_at
"""
# Both at once (a data-modifying WITH): the other windows' rows go, the window's own is upserted.
_FORGET_OTHERS_AND_REMEMBER = (
    f"WITH forgotten AS ({_FORGET_OTHER_DIGESTS.strip()}) {_REMEMBER_DIGEST.strip()}"
)
# Held until the transaction ends; the first key is a namespace (LESSON_LOCK, PARTITION_LOCK).
_LOCK = "SELECT pg_advisory_xact_lock(%s, %s)"
# The temporary table the COPY path fills, once per connection; it empties itself at every
# commit, and the DELETE empties it between two calls in one transaction.
_STAGE_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS collector_lesson_stage (
    date date NOT NULL,
    grade smallint NOT NULL,
    class_name text COLLATE "C" NOT NULL,
    period smallint NOT NULL,
    day_night text COLLATE "C" NOT NULL,
    track text COLLATE "C" NOT NULL,
    department text COLLATE "C" NOT NULL,
    course text COLLATE "C" NOT NULL,
    classroom text COLLATE "C" NOT NULL,
    subject_id integer NOT NULL,
    academic_year smallint NOT NULL,
    semester smallint NOT NULL,
    load_dtm timestamp with time zone
) ON COMMIT DELETE ROWS;
DELETE FROM collector_lesson_stage
"""
_COPY_STAGE = f"COPY collector_lesson_stage ({', '.join(_STAGE_COLUMNS)}) FROM STDIN"
# How many lessons a window holds and, only when that is the number of lines fetched, the
# lessons as one text, a line each in the stage's columns: COPY text when no value needs an
# escape ({window}: the window's condition; {lines}: how many rows were fetched). Read as
# one value because psycopg reads COPY TO a row at a time, in Python (2.8 us a row against
# 0.4); only on equal counts because a changed window (a weekly run's new week, a removed
# lesson) would pay the read for nothing (the subquery in CASE runs only when its branch does).
_STORED_TEXT = ", ".join(
    "coalesce(load_dtm::text, '\\N')" if c == "load_dtm" else c for c in _STAGE_COLUMNS
)
# {baseline}: nothing, or ``_BASELINE``: the history's row of a first load, written by the
# same statement when the window holds no lesson (one round trip less a first load).
_WINDOW_TEXT = f"""
WITH counted AS (SELECT count(*) AS held FROM collector_lesson WHERE {{window}}){{baseline}}
SELECT held, CASE WHEN held = {{lines}} THEN (
    SELECT string_agg(concat_ws(E'\\t', {_STORED_TEXT}), E'\\n')
    FROM collector_lesson WHERE {{window}}) END
FROM counted
"""


class _CopyText(dict):
    """Each value's spelling in COPY's text format, worked out once per distinct value.

    A window's rows repeat a few dates, grades, class names, subjects and LOAD_DTM stamps, so
    the rows become COPY text by dictionary lookups and one join each: several times cheaper
    than psycopg's per-row ``write_row`` (binary or text), which converts every value anew.
    Keys never collide across types: a date never equals a datetime, and no value is a bool.

    Each value is spelled as the server writes it as text in the session Django opens (ISO
    dates, time zone UTC), so that a stored window read back as text equals the lines of the
    same lessons (``_merge_copy`` compares them). A naive datetime is spelled without an
    offset and left to the session's zone: it never equals what the server writes back (which
    always has one), so its window goes through the merge.
    """

    def __missing__(self, value) -> str:
        if value is None:
            text = "\\N"
        elif isinstance(value, str):
            text = value.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(value) else value
        elif isinstance(value, datetime.datetime):
            text = _timestamp_text(value)
        elif isinstance(value, datetime.date | int):
            text = str(value)
        else:
            raise TypeError(f"no COPY text for {type(value).__name__}")
        self[value] = text
        return text


def _timestamp_text(value: datetime.datetime) -> str:
    """A timestamp as PostgreSQL writes a timestamptz in UTC (``2025-04-03 15:00:00+00``,
    microseconds only when there are some, without trailing zeros)."""
    if value.tzinfo is None:
        return value.isoformat(sep=" ")
    utc = value.astimezone(datetime.UTC).replace(tzinfo=None)
    text = utc.replace(microsecond=0).isoformat(sep=" ")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "+00"


# COPY text's own characters: the backslash, the column and row separators, and the control
# characters COPY writes as escapes.
_COPY_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"}
)
_NEEDS_ESCAPE = re.compile("[" + re.escape("".join(map(chr, _COPY_ESCAPES))) + "]")


def copy_text(rows: Iterable[tuple]) -> str:
    """``rows`` (tuples of str, int, date, datetime or None) as COPY text, one line each."""
    spell = _CopyText().__getitem__
    return "".join(["\t".join(map(spell, row)) + "\n" for row in rows])


class _Lines(list):
    """Lines of COPY text; ``escaped``: a value in them needed an escape."""

    escaped = False


def _copy_lines(rows: dict[tuple, tuple]) -> _Lines:
    """``_distinct_rows`` as lines of COPY text (no line end) of ``_STAGE_COLUMNS``, in its
    order (``_spelled_rows``)."""
    spell = _CopyText()
    lines = _Lines(_spelled_rows(rows, [spell] * len(_STAGE_COLUMNS), "\t"))
    lines.escaped = any(_NEEDS_ESCAPE.search(text) for text in spell if isinstance(text, str))
    return lines


def _spelled_rows(rows: dict[tuple, tuple], spellers: list[dict], separator):
    """``_distinct_rows`` in ``_STAGE_COLUMNS``, each row its columns' spellings (each
    column's ``spellers`` entry maps a value to it) joined by ``separator``, in its order.

    A column at a time, in C (a Python loop a row cost twice as much): a column holding one
    value in every row (a window's course, track, year, often its LOAD_DTM) is spelled once
    and joined with its constant neighbours once; the other columns are spelled by lookup,
    then each row joined from them.
    """
    if not rows:
        return []
    columns = getattr(rows, "columns", None)
    if columns is None:
        columns = [*zip(*rows, strict=True), *zip(*rows.values(), strict=True)]
    count = len(columns[0])
    parts: list = []  # per row: a list of spellings, or one spelling for a constant run
    run: list = []
    for column, spell in zip(columns, spellers, strict=True):
        first = column[0]
        if column.count(first) == count:  # equal values spell alike (a timestamp in UTC)
            run.append(spell[first])
            continue
        if run:
            parts.append(separator.join(run))
            run = []
        parts.append(list(map(spell.__getitem__, column)))
    if run:
        parts.append(separator.join(run))
    if len(parts) == 1 and not isinstance(parts[0], list):
        spelled = [parts[0]] * count  # every column constant: one lesson, or alike ones
    else:
        rows_of = [part if isinstance(part, list) else itertools.repeat(part) for part in parts]
        spelled = list(map(separator.join, zip(*rows_of, strict=False)))  # repeat() is endless
    if len(spelled) > len(rows):
        # Columns of more records than rows (alike records collapsed): an alike record is the
        # same row, and each other row another one, so each distinct row once is the rows.
        spelled = list(dict.fromkeys(spelled))
    return spelled


class _CopyField(dict):
    """Each value's field in COPY's binary format (its length, 4 bytes, then its bytes; -1
    and none for NULL), worked out once per distinct value by ``encode``, for one column
    type: as ``_CopyText``, lookups instead of a conversion a value."""

    def __init__(self, encode):
        super().__init__()
        self.encode = encode

    def __missing__(self, value) -> bytes:
        field = b"\xff\xff\xff\xff" if value is None else self.encode(value)
        self[value] = field
        return field


# PostgreSQL's binary dates and timestamps count from 2000-01-01 (UTC for a timestamptz):
# days as int4, microseconds as int8. A naive datetime cannot be subtracted from the aware
# epoch and raises TypeError (``_distinct_rows`` makes every LOAD_DTM aware).
_PG_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_PG_EPOCH_DAY = _PG_EPOCH.date().toordinal()
_MICROSECOND = datetime.timedelta(microseconds=1)
_pack_int2 = struct.Struct(">ih").pack
_pack_int4 = struct.Struct(">ii").pack
_pack_int8 = struct.Struct(">iq").pack
_BINARY_ENCODERS = {
    "smallint": lambda value: _pack_int2(2, value),
    "integer": lambda value: _pack_int4(4, value),
    "date": lambda value: _pack_int4(4, value.toordinal() - _PG_EPOCH_DAY),
    "timestamp with time zone": lambda value: _pack_int8(8, (value - _PG_EPOCH) // _MICROSECOND),
    "text": lambda value: len(encoded := value.encode()).to_bytes(4, "big") + encoded,
}
# The types of the lesson columns a first load COPYs (migration 0001), as information_schema
# names them; each column's binary field must be its type's.
_LESSON_TYPES = {
    "school_id": "integer",
    "date": "date",
    "grade": "smallint",
    "class_name": "text",
    "period": "smallint",
    "day_night": "text",
    "track": "text",
    "department": "text",
    "course": "text",
    "classroom": "text",
    "subject_id": "integer",
    "academic_year": "smallint",
    "semester": "smallint",
    "load_dtm": "timestamp with time zone",
    "first_stored_at": "timestamp with time zone",
    "changed_at": "timestamp with time zone",
}
_COPY_LESSON_COLUMNS = ("school_id", *_STAGE_COLUMNS, "first_stored_at", "changed_at")
# COPY BINARY's signature, flags (none) and header extension length (none); a row starts
# with its number of fields (int2), and the data ends with -1 there.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_ROW = len(_COPY_LESSON_COLUMNS).to_bytes(2, "big")
_BINARY_TRAILER = b"\xff\xff"
_COPY_LESSONS = (
    f"COPY collector_lesson ({', '.join(_COPY_LESSON_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
)


def _copy_binary(school_id: int, rows: dict[tuple, tuple], now: datetime.datetime) -> bytes:
    """``_distinct_rows`` as COPY BINARY data of ``_COPY_LESSON_COLUMNS`` (the school's
    lessons, first stored and changed ``now``), header and trailer included.

    Spelled as ``_copy_lines`` spells text, a column at a time from each distinct value's
    field: the server converts binary fields for less than it parses text (a timestamp's
    text most of all), and the client spells them for about the same as text.
    """
    encoders = {kind: _CopyField(encode) for kind, encode in _BINARY_ENCODERS.items()}
    spellers = [encoders[_LESSON_TYPES[column]] for column in _STAGE_COLUMNS]
    fields = _spelled_rows(rows, spellers, b"")
    if not fields:
        return _BINARY_HEADER + _BINARY_TRAILER
    # Each row between the school and the two stamps: one join for the whole window.
    before = _BINARY_ROW + encoders["integer"][school_id]
    after = encoders["timestamp with time zone"][now] * 2
    return b"".join((_BINARY_HEADER, before, (after + before).join(fields), after, _BINARY_TRAILER))


# The slot columns of the change history: the natural key less school and subject.
_SLOT = _WINDOW_KEY[:-1]
_CHANGE_COLUMNS = (
    "observed_at, run_id, unit_id, school_id, kind, lessons, "
    f"{', '.join(_SLOT)}, subject_before_id, subject_after_id, "
    "academic_year_before, academic_year_after, semester_before, semester_after, "
    "load_dtm_before, load_dtm_after"
)
_CHANGE_FIELDS = tuple(_CHANGE_COLUMNS.split(", "))
_COPY_CHANGES = f"COPY collector_lessonchange ({_CHANGE_COLUMNS}) FROM STDIN"
# A summary row (baseline, day_removed) after its date: no lesson, so an empty slot, no
# subjects and no values.
_NO_SLOT = tuple(None if name in ("grade", "period") else "" for name in _SLOT[1:])
_NO_SLOT += (None,) * (2 + 2 * len(LESSON_VALUES))


def _merge_sql(record_changes: bool) -> str:
    key = ", ".join(_WINDOW_KEY)
    join = " AND ".join(f"c.{column} = s.{column}" for column in _WINDOW_KEY)
    values = ", ".join(LESSON_VALUES)
    stored_values = ", ".join(f"d.stored_{column}" for column in LESSON_VALUES)
    window = "l.school_id = %(school)s::integer AND l.date BETWEEN %(first)s AND %(last)s"
    # What the history needs back from each write: the whole lesson, and for an update the
    # values it had. Without history the writes only count.
    if record_changes:
        back = f"RETURNING l.{', l.'.join((*_WINDOW_KEY, *LESSON_VALUES))}"
        updated_back = back + ", " + ", ".join(f"d.stored_{c} AS old_{c}" for c in LESSON_VALUES)
        inserted_back = f"RETURNING {key}, {values}"
    else:
        back = updated_back = inserted_back = "RETURNING 1"
    # One statement: compare the staged rows with the stored window (a FULL JOIN on the natural
    # key), then insert the new, update the changed and delete the vanished lessons. Unchanged
    # lessons are never written, not even locked. (Inserting in key order was measured slower
    # and left a larger index: ascending runs into the middle of a B-tree split pages 50/50.)
    sql = f"""
    WITH stored AS (
        SELECT id, {key}, {values}
        FROM collector_lesson l
        WHERE {window}
    ), diff AS MATERIALIZED (
        SELECT s.*, c.id AS stored_id, c.date AS stored_date,
               {", ".join(f"c.{column} AS stored_{column}" for column in LESSON_VALUES)}
        FROM collector_lesson_stage s FULL JOIN stored c ON {join}
    ), inserted AS (
        INSERT INTO collector_lesson AS l
            (school_id, {key}, {values}, first_stored_at, changed_at)
        SELECT %(school)s::integer, {key}, {values}, %(now)s, %(now)s
        FROM diff WHERE stored_id IS NULL
        {inserted_back}
    ), updated AS (
        UPDATE collector_lesson l
        SET {", ".join(f"{column} = d.{column}" for column in LESSON_VALUES)},
            changed_at = %(now)s
        FROM diff d
        WHERE d.stored_id IS NOT NULL AND d.date IS NOT NULL
          AND ({", ".join(f"d.{column}" for column in LESSON_VALUES)})
              IS DISTINCT FROM ({stored_values})
          AND l.id = d.stored_id AND l.date = d.stored_date AND {window}
        {updated_back}
    ), removed AS (
        DELETE FROM collector_lesson l
        USING diff d
        WHERE d.date IS NULL AND l.id = d.stored_id AND l.date = d.stored_date AND {window}
        {back}
    )"""
    if not record_changes:
        return (
            sql
            + """
    SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM updated),
           (SELECT count(*) FROM removed)
    """
        )

    # The lessons the merge changed, for the history (written by the caller in the same
    # transaction): an INSERT of the history inside this statement cost more to plan than
    # the rest of the merge's history work, on every merge, even one that changes nothing.
    # LOAD_DTM comes back as text: it only passes through to the history's COPY text, and
    # Django's timestamptz loader is Python, once per value.
    def returned(prefix: str) -> str:
        return ", ".join(
            f"{prefix}{column}::text" if column == "load_dtm" else f"{prefix}{column}"
            for column in LESSON_VALUES
        )

    none = "NULL::smallint, NULL::smallint, NULL::text"
    return (
        sql
        + f"""
    SELECT 'i', {key}, {returned("")}, {none} FROM inserted
    UNION ALL SELECT 'r', {key}, {returned("")}, {none} FROM removed
    UNION ALL SELECT 'u', {key}, {returned("")}, {returned("old_")} FROM updated
    """
    )


_MERGE = {capture: _merge_sql(capture) for capture in (True, False)}
# What the merge's history records when no day of the window held lessons before: one
# ``baseline`` row (observed, run, unit, school, lessons, first day: literals, ``_literal``).
_BASELINE = f""", baseline AS (
    INSERT INTO collector_lessonchange ({_CHANGE_COLUMNS})
    SELECT {{now}}, {{run}}, {{unit}}, {{school}}, 'baseline', {{lessons}}, {{day}}, NULL, '',
           NULL, '', '', '', '', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM counted WHERE held = 0)"""


def _literal(value: int | datetime.date | None) -> str:
    """An integer, date, aware moment or None as SQL text (for statements with no parameters:
    only values this module made, never text)."""
    if value is None:
        return "NULL"
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError(f"a naive moment {value!r}")
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, datetime.date):
        return f"'{value.isoformat()}'::date"
    return str(int(value))


def _merge_copy(
    school: School,
    date_from: datetime.date,
    date_to: datetime.date,
    rows: dict[tuple, tuple],
    by_day: Counter,
    observer: Observer | None,
) -> tuple[int, int, int]:
    """PostgreSQL: read the stored window back as text; when it holds no lesson yet (a first
    load), COPY ``rows`` straight into the lessons (``_first_load``), the one ``baseline``
    change the merge would have recorded written by the read itself; when it holds exactly
    ``rows`` as lines of COPY text (``_copy_lines``), write nothing; else COPY the lines into
    the stage table and merge with one statement. ``by_day``: ``rows`` counted by date."""
    connection.ensure_connection()
    now = clock.now()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        # The lock is its own statement, so that the read of the window (a statement of its
        # own, with its own snapshot) sees every merge of this school committed before the
        # lock was granted. No parameters: the keys and the window are integers and dates.
        window = (
            f"school_id = {_literal(school.pk)} AND date BETWEEN "
            f"{_literal(date_from)} AND {_literal(date_to)}"
        )
        baseline = ""  # (its values are literals, as the window's)
        if observer is not None and rows:
            baseline = _BASELINE.format(
                now=_literal(now),
                run=_literal(observer.run_id),
                unit=_literal(observer.unit_id),
                school=_literal(school.pk),
                lessons=len(rows),
                day=_literal(min(by_day)),
            )
        look = _WINDOW_TEXT.format(window=window, lines=len(rows), baseline=baseline)
        cursor.execute(f"{_LOCK % (LESSON_LOCK, int(school.pk))}; {look}")
        cursor.nextset()
        held, text = cursor.fetchone()
        if not held:
            return _first_load(cursor, school, rows, now), 0, 0
        # The rows become lines (one each) only once the window is known to hold lessons: a
        # first load spells them in binary instead.
        lines = _copy_lines(rows)
        # The stored lessons are distinct by the natural key, and so are the lines: the same
        # number, all of them held, is the same window. A value spelled otherwise than the
        # server writes it back only sends the window through the merge, which compares values.
        # An escaped value is never spelled as the server writes it back (text read for
        # nothing, on a re-run of a window holding one: rare).
        if text is not None and not lines.escaped:
            stored = text.split("\n")
            if len(stored) == len(lines) and set(stored).issuperset(lines):
                return 0, 0, 0
        cursor.execute(_STAGE_TABLE)
        if lines:
            with cursor.copy(_COPY_STAGE) as copy:
                copy.write("\n".join(lines) + "\n")
        params = {"school": school.pk, "first": date_from, "last": date_to, "now": now}
        if observer is not None:
            params.update(run=observer.run_id, unit=observer.unit_id)
        # Not prepared: planned with the actual school and dates, the planner prunes to the
        # window's partitions. A generic plan opens every partition (6 ms a call instead of
        # 0.9 ms with 28 monthly partitions).
        cursor.execute(_MERGE[observer is not None], params)
        if observer is None:
            inserted, updated, removed = cursor.fetchone()
            return inserted, updated, removed
        changed = cursor.fetchall()
        if not changed:  # an unchanged re-run: no history, and nothing to work out for it
            return 0, 0, 0
        width, after = len(_WINDOW_KEY), len(_WINDOW_KEY) + len(LESSON_VALUES)
        inserted, updated, removed = [], [], []
        for row in changed:
            key, value = row[1 : width + 1], row[width + 1 : after + 1]
            op = row[0]
            if op == "i":
                inserted.append((key, value))
            elif op == "r":
                removed.append((key, value))
            else:
                updated.append((key, row[after + 1 :], value))
        # A day had lessons before the merge if one of them was removed, or if not every lesson
        # it holds now was inserted (``by_day``: the rows by date, what it holds now).
        days_after = set(by_day)
        if inserted:
            new = Counter(key[0] for key, _ in inserted)
            days_before = {day for day, count in by_day.items() if count > new[day]}
        else:
            days_before = set(days_after)
        days_before |= {key[0] for key, _ in removed}
        _record(
            school,
            observer,
            params["now"],
            inserted,
            updated,
            removed,
            days_before,
            days_after,
            cursor,
        )
    return len(inserted), len(updated), len(removed)


def _first_load(cursor, school: School, rows: dict, now) -> int:
    """COPY ``rows`` into the lessons of a window that holds none (under the school's lock),
    in binary (``_copy_binary``); return how many were inserted. The history's ``baseline``
    row was written by the look that found the window empty (``_BASELINE``).

    No stage table and no merge: nothing stored can conflict or differ.
    """
    if not rows:
        return 0
    with cursor.copy(_COPY_LESSONS) as copy:
        copy.write(_copy_binary(int(school.pk), rows, now))
    return len(rows)


def _merge_orm(
    school: School,
    date_from: datetime.date,
    date_to: datetime.date,
    rows: dict[tuple, tuple],
    by_day: Counter,
    observer: Observer | None,
) -> tuple[int, int, int]:
    """Any database: compare with the stored window in Python, write only the differences,
    and the same change history as the COPY path (``by_day``: ``rows`` counted by date)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_LOCK, [LESSON_LOCK, school.pk])
    stored = {}
    window = Lesson.objects.filter(school=school, date__range=(date_from, date_to))
    for pk, *key_and_values in window.values_list("pk", *_WINDOW_KEY, *LESSON_VALUES):
        key, value = key_and_values[: len(_WINDOW_KEY)], key_and_values[len(_WINDOW_KEY) :]
        stored[tuple(key)] = (pk, tuple(value))
    days_before = {key[0] for key in stored}
    days_after = set(by_day)
    now = clock.now()
    writes, inserted, updated = [], [], []
    for key, value in rows.items():
        current = stored.pop(key, None)
        if current is not None and current[1] == value:
            continue
        if current is None:
            inserted.append((key, value))
        else:
            updated.append((key, current[1], value))
        fields = dict(zip(_STAGE_COLUMNS, (*key, *value), strict=True))
        writes.append(Lesson(school=school, first_stored_at=now, changed_at=now, **fields))
    Lesson.objects.bulk_create(
        writes,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=LESSON_KEY,
        update_fields=[*LESSON_VALUES, "changed_at"],
    )
    vanished = [pk for pk, _ in stored.values()]
    for batch in batches(vanished, 500):
        # Within the window, so that the natural-key index finds them (PostgreSQL has no
        # B-tree on id alone).
        window.filter(pk__in=batch).delete()
    if observer is not None:
        removed = [(key, value) for key, (_, value) in stored.items()]
        _record(school, observer, now, inserted, updated, removed, days_before, days_after)
    return len(inserted), len(updated), len(vanished)


def _record(
    school, observer, now, inserted, updated, removed, days_before, days_after, cursor=None
) -> None:
    """Write the change history of one merge, as observed by ``observer`` at ``now``: with
    COPY on ``cursor`` (a psycopg cursor) when given, else with the ORM."""
    changes = _changes(school, inserted, updated, removed, days_before, days_after)
    seen = (now, observer.run_id, observer.unit_id)  # observed_at, run_id, unit_id
    if cursor is None:
        rows = [dict(zip(_CHANGE_FIELDS, seen + change, strict=True)) for change in changes]
        LessonChange.objects.bulk_create([LessonChange(**row) for row in rows], batch_size=1000)
    elif changes:
        # COPY text, each distinct value spelled once: a third of the client CPU of binary
        # write_row per change, itself a fraction of building model instances.
        with cursor.copy(_COPY_CHANGES) as copy:
            copy.write(copy_text([seen + change for change in changes]))


def _changes(school, inserted, updated, removed, days_before, days_after) -> list[tuple]:
    """The change history of one merge (both write paths): one tuple per ``LessonChange``,
    its ``_CHANGE_FIELDS`` less the observer's three (observed_at, run_id, unit_id).

    ``inserted`` and ``removed`` hold (key, values), ``updated`` (key, values before, values
    after). A day that held no lessons before is new (a first load, or a day NEIS just
    published): its lessons are one ``baseline`` row for the window. A day that holds none
    after lost them all: one ``day_removed`` row for it. Everything else is one row per lesson.
    """
    # Tuples built in place, not a dict per change: the history of a changed re-run is
    # thousands of rows, and this is the client's share of its cost.
    school_id, changes = school.pk, []
    new_days = [key for key, _ in inserted if key[0] not in days_before]
    if new_days:
        day = min(key[0] for key in new_days)
        changes.append((school_id, ChangeKind.BASELINE, len(new_days), day, *_NO_SLOT))
    added = ChangeKind.ADDED
    for key, (year, semester, load_dtm) in inserted:
        if key[0] in days_before:
            changes.append(
                (school_id, added, 1, *key[:-1], None, key[-1])
                + (None, year, None, semester, None, load_dtm)
            )
    gone: Counter = Counter()
    for key, (year, semester, load_dtm) in removed:
        if key[0] in days_after:
            changes.append(
                (school_id, ChangeKind.REMOVED, 1, *key[:-1], key[-1], None)
                + (year, None, semester, None, load_dtm, None)
            )
        else:
            gone[key[0]] += 1
    for day, count in sorted(gone.items()):
        changes.append((school_id, ChangeKind.DAY_REMOVED, count, day, *_NO_SLOT))
    reloaded, updated_kind = ChangeKind.RELOADED, ChangeKind.UPDATED
    for key, (year, semester, load_dtm), (new_year, new_semester, new_load_dtm) in updated:
        same = year == new_year and semester == new_semester
        changes.append(
            (school_id, reloaded if same else updated_kind, 1, *key[:-1], key[-1], key[-1])
            + (year, new_year, semester, new_semester, load_dtm, new_load_dtm)
        )
    return changes


# --- Partitions (PostgreSQL) ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Partition:
    name: str
    first_day: datetime.date  # inclusive
    end: datetime.date  # exclusive: the first day of the next month
    parent: str = "collector_lesson"


# (database, partition) pairs known to exist, so that most calls skip the catalog query.
# Partitions are dropped only by drop_lesson_partitions, and only months no longer written.
_partitions_seen: set[tuple[str, str]] = set()


# The tables partitioned by month on date: the lessons, and their change history.
PARTITIONED = ("collector_lesson", "collector_lessonchange")


def _month_partition(day: datetime.date, parent: str = PARTITIONED[0]) -> Partition:
    first = day.replace(day=1)
    end = (first + datetime.timedelta(days=32)).replace(day=1)
    return Partition(f"{parent}_{first:%Y_%m}", first, end, parent)


def ensure_partitions(date_from: datetime.date, date_to: datetime.date) -> list[str]:
    """Create the monthly partitions of the lessons and of their change history covering two
    dates; return the names created.

    A no-op except on PostgreSQL. A partition is created as a plain table and then attached,
    which locks the parent table only against other DDL, never against readers or writers.
    Runs in the caller's transaction when there is one, so a rolled-back run leaves none.
    """
    if connection.vendor != "postgresql":
        return []
    database = connection.settings_dict["NAME"]
    wanted, day = [], date_from.replace(day=1)
    while day <= date_to:
        for parent in PARTITIONED:
            partition = _month_partition(day, parent)
            if (database, partition.name) not in _partitions_seen:
                wanted.append(partition)
        day = partition.end
    if not wanted:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL",
            [[partition.name for partition in wanted]],
        )
        missing = {name for (name,) in cursor.fetchall()}
        created = []
        with transaction.atomic():
            if missing:
                cursor.execute(_LOCK, [PARTITION_LOCK, 0])
            for partition in wanted:
                if partition.name not in missing:
                    continue
                # Another writer may have created it while this one waited for the lock.
                cursor.execute("SELECT to_regclass(%s) IS NULL", [partition.name])
                if not cursor.fetchone()[0]:
                    continue
                parent = partition.parent
                cursor.execute(f"CREATE TABLE {partition.name} (LIKE {parent})")
                cursor.execute(
                    f"ALTER TABLE {parent} ATTACH PARTITION {partition.name} "
                    "FOR VALUES FROM (%s) TO (%s)",
                    [partition.first_day, partition.end],
                )
                created.append(partition.name)
            # Remembered only once committed: a rolled-back creation must be created again.
            names = [(database, partition.name) for partition in wanted]
            transaction.on_commit(lambda: _partitions_seen.update(names))
    if created:
        log.info("created partitions %s", ", ".join(created))
    return created


def lesson_partitions(parent: str = PARTITIONED[0]) -> list[Partition]:
    """The monthly partitions of a partitioned table (the lessons by default), oldest first
    ([] except on PostgreSQL)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [parent],
        )
        names = [name for (name,) in cursor.fetchall()]
    partitions = []
    for name in names:
        year, month = name.removeprefix(f"{parent}_").split("_")
        partitions.append(_month_partition(datetime.date(int(year), int(month), 1), parent))
    return partitions


def all_partitions() -> list[Partition]:
    """The monthly partitions of every partitioned table, lessons first."""
    return [p for parent in PARTITIONED for p in lesson_partitions(parent)]


def create_partitions_ahead(months: int) -> list[str]:
    """Create this month's partitions and the next ``months`` months' (a weekly schedule
    does, so that no merge creates one under load); return the names created."""
    first = clock.today().replace(day=1)
    last = first
    for _ in range(months):
        last = (last + datetime.timedelta(days=32)).replace(day=1)
    end = (last + datetime.timedelta(days=32)).replace(day=1) - datetime.timedelta(days=1)
    return ensure_partitions(first, end)


def partition_sizes(partitions: Iterable[Partition]) -> dict[str, tuple[int, int]]:
    """Each partition's (estimated rows, bytes on disk with indexes), from the catalog: cheap
    at any size (the estimate is what ANALYZE or autovacuum last counted)."""
    names = [p.name for p in partitions]
    if not names:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, greatest(reltuples, 0)::bigint, pg_total_relation_size(oid) "
            "FROM pg_class WHERE relname = ANY(%s)",
            [names],
        )
        return {name: (rows, size) for name, rows, size in cursor.fetchall()}


def export_partition(partition: Partition, folder: Path) -> Path:
    """Write a partition to ``folder/<name>.csv.gz`` (CSV with a header, gzip) and return it.

    CSV because any tool reads it and PostgreSQL reloads it as it is
    (``\\copy collector_lesson FROM PROGRAM 'zcat <file>' CSV HEADER``); gzip because lesson
    rows compress about tenfold. Written to a temporary name and renamed when complete, so a
    file that exists is whole.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{partition.name}.csv.gz"
    partial = target.with_suffix(".gz.partial")
    connection.ensure_connection()
    with (
        gzip.open(partial, "wb") as out,
        connection.wrap_database_errors,
        psycopg.Cursor(connection.connection) as cursor,
        cursor.copy(f"COPY {partition.name} TO STDOUT (FORMAT csv, HEADER)") as copy,
    ):
        for chunk in copy:
            out.write(chunk)
    partial.rename(target)
    return target


def drop_lesson_partitions(
    before: datetime.date, *, dry_run: bool = True, export_to: Path | None = None
) -> list[str]:
    """Drop every monthly partition of the lessons and of their change history that ends on
    or before ``before``; return their names.

    Detaching and dropping a month takes milliseconds and leaves no dead tuples, where a
    DELETE of 25 million rows would take minutes and need a VACUUM. With ``dry_run`` (the
    default) nothing is dropped and the names that would be are returned. With ``export_to``
    each partition is first written there (``export_partition``), and dropped only once its
    file is complete.
    """
    doomed = [p for p in all_partitions() if p.end <= before]
    if dry_run or not doomed:
        return [p.name for p in doomed]
    if export_to is not None:
        for partition in doomed:
            export_partition(partition, export_to)
    with transaction.atomic(), connection.cursor() as cursor:
        WindowDigest.objects.filter(date_from__lt=max(p.end for p in doomed)).delete()
        for partition in doomed:
            cursor.execute(f"ALTER TABLE {partition.parent} DETACH PARTITION {partition.name}")
            cursor.execute(f"DROP TABLE {partition.name}")
            _partitions_seen.discard((connection.settings_dict["NAME"], partition.name))
    names = [p.name for p in doomed]
    log.info("dropped partitions %s", ", ".join(names))
    return names


def batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
