"""Typed records the NEIS client yields; the rest of the project never sees raw rows.

Text columns that NEIS serves as ``null`` become ``""`` so that they can take part in
natural keys; ``subject_raw`` keeps the served text (``""`` for ``null``). Every text is
``parse.clean``: C0 and C1 control characters, DEL and lone surrogates are replaced by U+FFFD
(``subject_raw`` keeps TAB, LF and CR, which NEIS subjects contain), so no value can hold a NUL
(PostgreSQL refuses it) or act on the terminal that prints it. Every value fits its column
(``parse`` bounds them).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import itertools
from collections.abc import Iterable, Iterator, Sequence


class Level(enum.StrEnum):
    """School levels the collector knows how to fetch timetables for."""

    ELEMENTARY = "elementary"
    MIDDLE = "middle"
    HIGH = "high"
    SPECIAL = "special"

    @property
    def service(self) -> str:
        """The current NEIS timetable service for this level (archive twin adds ``bgs``)."""
        return _SERVICES[self]


_SERVICES = {
    Level.ELEMENTARY: "elsTimetable",
    Level.MIDDLE: "misTimetable",
    Level.HIGH: "hisTimetable",
    Level.SPECIAL: "spsTimetable",
}


@dataclasses.dataclass(frozen=True, slots=True)
class SchoolRecord:
    """One ``schoolInfo`` row."""

    office_code: str  # ATPT_OFCDC_SC_CODE
    office_name: str  # ATPT_OFCDC_SC_NM
    code: str  # SD_SCHUL_CODE
    name: str  # SCHUL_NM
    kind: str  # SCHUL_KND_SC_NM, whitespace-normalised
    location: str  # LCTN_SC_NM
    founding_type: str  # FOND_SC_NM
    day_night: str  # DGHT_SC_NM
    address: str  # ORG_RDNMA
    load_dtm: datetime.datetime | None  # LOAD_DTM


@dataclasses.dataclass(frozen=True, slots=True)
class LessonRecord:
    """One timetable row of any level (els/mis/his/sps and their archive twins)."""

    office_code: str  # ATPT_OFCDC_SC_CODE
    school_code: str  # SD_SCHUL_CODE
    date: datetime.date  # ALL_TI_YMD
    academic_year: int  # AY
    semester: int  # SEM
    grade: int  # GRADE
    class_name: str  # CLASS_NM, as served (archive data may be zero-padded)
    period: int  # PERIO
    day_night: str  # DGHT_CRSE_SC_NM (mis, his); "" elsewhere
    track: str  # ORD_SC_NM (his)
    department: str  # DDDEP_NM (his)
    course: str  # SCHUL_CRSE_SC_NM (sps)
    classroom: str  # CLRM_NM (his, sps)
    subject_raw: str  # ITRT_CNTNT as served, only cleaned; "" for null
    subject: str  # normalised ITRT_CNTNT (see client.normalise_subject)
    load_dtm: datetime.datetime | None  # LOAD_DTM, 8 or 14 digits


class LessonRecords(Sequence):
    """LessonRecords of rows given by column, made only when one is first read.

    ``columns`` maps every field name to the records' values of it, in their order
    (``parse.LessonRows.columns``). A first load reads nothing else
    (``storage.store_lessons`` takes the columns), so its records are never made. Otherwise
    a sequence of the same records, equal to a list of them; never changed after.
    """

    __slots__ = ("columns", "_records")
    __hash__ = None  # equal to a list, which has none

    def __init__(self, columns: dict[str, list]):
        self.columns = columns
        self._records: list[LessonRecord] | None = None

    @classmethod
    def of(cls, records: Iterable[LessonRecord]) -> LessonRecords:
        """``records`` by column, as a typed page's records come (benches and tests)."""
        records = list(records)
        return cls({name: [getattr(record, name) for record in records] for name in _FIELDS})

    @classmethod
    def joined(cls, parts: list[LessonRecords]) -> LessonRecords:
        """The records of ``parts``, in order, by column."""
        if len(parts) == 1:
            return parts[0]
        chain = itertools.chain.from_iterable
        return cls({name: list(chain(part.columns[name] for part in parts)) for name in _FIELDS})

    def records(self) -> list[LessonRecord]:
        """The records as a list (made once): the same records ``LessonRecord(...)`` makes,
        at about a third of the cost (``_NewLessonRecord``)."""
        if self._records is None:
            columns = [self.columns[name] for name in _FIELDS]
            self._records = list(map(_NewLessonRecord, *columns))
        return self._records

    def __len__(self) -> int:
        return len(self.columns[_FIELDS[0]])

    def __getitem__(self, index):
        return self.records()[index]

    def __iter__(self) -> Iterator[LessonRecord]:
        return iter(self.records())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LessonRecords):
            other = other.records()
        return self.records() == other if isinstance(other, list) else NotImplemented

    def __repr__(self) -> str:
        return f"LessonRecords({self.records()!r})"


def lesson_records(columns: dict[str, list]) -> LessonRecords:
    """LessonRecords of rows given by column: ``columns`` maps every field name, in the
    record's field order, to its values, one a row (``parse.LessonRows.columns``). The
    records are made when first read (``LessonRecords``)."""
    return LessonRecords(columns)


class _NewLessonRecord:
    """Builds a LessonRecord: an unfrozen class of the same slots sets them, then makes the
    object what it is (``__class__`` assignment, allowed between classes of one layout; a
    LessonRecord with another field list makes it raise TypeError)."""

    __slots__ = LessonRecord.__slots__

    def __init__(
        self,
        office_code,
        school_code,
        date,
        academic_year,
        semester,
        grade,
        class_name,
        period,
        day_night,
        track,
        department,
        course,
        classroom,
        subject_raw,
        subject,
        load_dtm,
    ):
        self.office_code = office_code
        self.school_code = school_code
        self.date = date
        self.academic_year = academic_year
        self.semester = semester
        self.grade = grade
        self.class_name = class_name
        self.period = period
        self.day_night = day_night
        self.track = track
        self.department = department
        self.course = course
        self.classroom = classroom
        self.subject_raw = subject_raw
        self.subject = subject
        self.load_dtm = load_dtm
        self.__class__ = LessonRecord


# The builder takes the fields by position in LessonRecord's order: a field added, removed or
# moved there must be here too, or values would land in the wrong fields.
_FIELDS = tuple(field.name for field in dataclasses.fields(LessonRecord))
_init = _NewLessonRecord.__init__.__code__
if _init.co_varnames[1 : _init.co_argcount] != _FIELDS:
    raise TypeError("_NewLessonRecord.__init__ does not take LessonRecord's fields in order")


@dataclasses.dataclass(frozen=True, slots=True)
class ClassRecord:
    """One ``classInfo`` row: a class of a school in one academic year."""

    office_code: str  # ATPT_OFCDC_SC_CODE
    school_code: str  # SD_SCHUL_CODE
    academic_year: int  # AY
    grade: int  # GRADE
    class_name: str  # CLASS_NM
    day_night: str  # DGHT_CRSE_SC_NM
    course: str  # SCHUL_CRSE_SC_NM
    track: str  # ORD_SC_NM
    department: str  # DDDEP_NM


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """One ``SchoolSchedule`` row: an event or a day without lessons of one school."""

    office_code: str  # ATPT_OFCDC_SC_CODE
    school_code: str  # SD_SCHUL_CODE
    date: datetime.date  # AA_YMD
    day_kind: str  # SBTR_DD_SC_NM: 휴업일, 공휴일 (no lessons) or 해당없음 (an event)
    name: str  # EVENT_NM
    course: str  # SCHUL_CRSE_SC_NM
    day_night: str  # DGHT_CRSE_SC_NM
