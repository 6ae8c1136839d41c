"""Offices, schools and the lessons of their timetables, as NEIS serves them.

Every field's ``help_text`` names the NEIS column it comes from. ``Lesson`` is the large table
(about 20 million rows a week, 250-300 million a year): on PostgreSQL it is partitioned by
month on ``date`` (see migration 0001 and ``collector.storage``), and it is written only by
``collector.storage.store_lessons``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from django.db import models

from collector.levels import SchoolLevel

# The natural key of a lesson, in index order. NEIS rows have no id, so a lesson is every column
# that says which lesson it is: electives sharing a period differ only in the subject (and for
# high and special schools the classroom), so both are in the key; AY and SEM follow from the
# date, and LOAD_DTM is when NEIS reloaded the row, so they are values, not key. School and
# date lead so that one school's window is one contiguous index range.
LESSON_KEY = (
    "school",
    "date",
    "grade",
    "class_name",
    "period",
    "day_night",
    "track",
    "department",
    "course",
    "classroom",
    "subject",
)
# What a stored lesson can change to without becoming another lesson.
LESSON_VALUES = ("academic_year", "semester", "load_dtm")
# The key as a ``LessonRecord`` (collector.neis.records) spells it, and as lookups that read it
# back from the database in the same form: code and subject text instead of ids.
_AS_SERVED = {"school": ("school_code", "school__code"), "subject": ("subject_raw", "subject__raw")}
RECORD_KEY = tuple(_AS_SERVED.get(name, (name,))[0] for name in LESSON_KEY)
STORED_KEY = tuple(_AS_SERVED.get(name, (name, name))[1] for name in LESSON_KEY)
#: ``record_key(record)``: a fetched record's natural key, comparable with ``STORED_KEY`` rows.
record_key = operator.attrgetter(*RECORD_KEY)


class OfficeQuerySet(models.QuerySet):
    def unknown(self, codes: Iterable[str]) -> list[str]:
        """The codes among ``codes`` that name no office, sorted."""
        codes = set(codes)
        return sorted(codes - set(self.filter(code__in=codes).values_list("code", flat=True)))


class Office(models.Model):
    """An office of education (시·도교육청): the 17 of the regions plus V10 (overseas schools).

    Migration 0002 seeds all eighteen, so this table is the one list of offices; the registry
    renames them and adds any new one that schoolInfo lists.
    """

    code = models.CharField(
        "code",
        max_length=3,
        primary_key=True,
        help_text="ATPT_OFCDC_SC_CODE, e.g. B10 (Seoul). Offices are keyed by code only.",
    )
    name = models.CharField(
        "name",
        max_length=100,
        help_text="ATPT_OFCDC_SC_NM as last served; names change (K10, P10), codes do not.",
    )

    objects = OfficeQuerySet.as_manager()

    class Meta:
        verbose_name = "office of education"
        verbose_name_plural = "offices of education"
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} {self.name}"


class School(models.Model):
    """One ``schoolInfo`` row, kept after it stops being listed (then ``active`` is off)."""

    id = models.AutoField(primary_key=True)  # int4: every lesson row carries it
    code = models.CharField(
        "school code",
        max_length=10,
        unique=True,
        help_text="SD_SCHUL_CODE, the 7-digit NEIS school code.",
    )
    office = models.ForeignKey(
        Office,
        on_delete=models.PROTECT,
        related_name="schools",
        verbose_name="office",
        help_text="ATPT_OFCDC_SC_CODE.",
    )
    name = models.CharField("name", max_length=200, help_text="SCHUL_NM.")
    kind = models.CharField(
        "kind",
        max_length=50,
        help_text="SCHUL_KND_SC_NM as served, whitespace removed (각종학교(중)).",
    )
    level = models.CharField(
        "level",
        max_length=10,
        choices=SchoolLevel,
        blank=True,
        help_text="The timetable service SCHUL_KND_SC_NM maps to (collector/levels.py); "
        "empty when the kind is not collected.",
    )
    location = models.CharField(
        "location", max_length=50, blank=True, help_text="LCTN_SC_NM, the province."
    )
    founding_type = models.CharField(
        "founding type", max_length=20, blank=True, help_text="FOND_SC_NM: 국립, 공립 or 사립."
    )
    day_night = models.CharField(
        "day/night", max_length=20, blank=True, help_text="DGHT_SC_NM: 주간 or 야간."
    )
    address = models.CharField(
        "address", max_length=300, blank=True, help_text="ORG_RDNMA, the road-name address."
    )
    first_seen = models.DateTimeField(
        "first seen", help_text="When a schoolInfo listing first included this school."
    )
    last_seen = models.DateTimeField(
        "last seen", help_text="When a schoolInfo listing last included this school."
    )
    active = models.BooleanField(
        "active",
        default=True,
        help_text="Off once a complete schoolInfo listing of its office no longer has it.",
    )

    class Meta:
        verbose_name = "school"
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} {self.name}"


class Subject(models.Model):
    """One ITRT_CNTNT text exactly as served, with its normalised name.

    A dimension: a lesson row stores a 4-byte id instead of repeating the text, and the
    natural key compares ids, not strings. Rows are only ever added.
    """

    id = models.AutoField(primary_key=True)
    raw = models.TextField(
        "as served",
        unique=True,
        help_text="ITRT_CNTNT exactly as served, whitespace and marks included; '' for null.",
    )
    name = models.TextField(
        "subject",
        db_index=True,
        help_text="ITRT_CNTNT normalised (leading -/* and extra spaces removed).",
    )

    class Meta:
        verbose_name = "subject"
        ordering = ["name", "raw"]

    def __str__(self):
        return self.name or "(empty)"


class Lesson(models.Model):
    """One timetable row: a lesson of one class in one period on one day.

    Several rows may share a period (electives, split groups); they differ in the subject or
    the classroom, and all are kept. Rows identical in every key column are one lesson.
    """

    id = models.BigAutoField(primary_key=True)
    school = models.ForeignKey(
        School,
        on_delete=models.CASCADE,
        related_name="lessons",
        verbose_name="school",
        help_text="SD_SCHUL_CODE (ATPT_OFCDC_SC_CODE through the school).",
        # No database constraint: checking every inserted row halved COPY throughput
        # (bench_storage.py --designs), and storage writes only schools it has loaded.
        # No index: the natural key leads with the school.
        db_constraint=False,
        db_index=False,
    )
    date = models.DateField("date", help_text="ALL_TI_YMD.")
    academic_year = models.SmallIntegerField(
        "academic year", help_text="AY (the school year starts in March)."
    )
    semester = models.SmallIntegerField("semester", help_text="SEM.")
    grade = models.SmallIntegerField("grade", help_text="GRADE.")
    class_name = models.TextField(
        "class", help_text="CLASS_NM as served (archive years may be zero-padded)."
    )
    period = models.SmallIntegerField("period", help_text="PERIO.")
    day_night = models.TextField(
        "day/night course", blank=True, help_text="DGHT_CRSE_SC_NM (middle, high); '' elsewhere."
    )
    track = models.TextField("track", blank=True, help_text="ORD_SC_NM (high); '' elsewhere.")
    department = models.TextField(
        "department", blank=True, help_text="DDDEP_NM (high); '' elsewhere."
    )
    course = models.TextField(
        "course", blank=True, help_text="SCHUL_CRSE_SC_NM (special); '' elsewhere."
    )
    classroom = models.TextField(
        "classroom", blank=True, help_text="CLRM_NM (high, special); '' elsewhere."
    )
    subject = models.ForeignKey(
        Subject,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="subject",
        help_text="ITRT_CNTNT, as served and normalised.",
        # As for school; storage adds subjects before their lessons and never deletes one.
        db_constraint=False,
        db_index=False,
    )
    load_dtm = models.DateTimeField(
        "NEIS load time",
        null=True,
        blank=True,
        help_text="LOAD_DTM: when NEIS (re)loaded the row; null when absent or malformed.",
    )
    first_stored_at = models.DateTimeField(
        "first stored", help_text="When this project first stored the lesson (not NEIS)."
    )
    changed_at = models.DateTimeField(
        "changed",
        help_text="When this project last stored a different AY, SEM or LOAD_DTM for it "
        "(not NEIS); equals 'first stored' until then.",
    )

    class Meta:
        verbose_name = "lesson"
        constraints = [
            models.UniqueConstraint(fields=LESSON_KEY, name="collector_lesson_natural_key"),
        ]

    def __str__(self):
        return f"{self.school_id} {self.date} {self.grade}-{self.class_name} p{self.period}"


class WindowDigest(models.Model):
    """A digest of what NEIS served for one school window, as last merged into the lessons.

    The pipeline compares a new answer's digest with this one (``storage.known_answer``)
    before converting a single row: equal means the stored window already equals the answer,
    and nothing is converted, written or even compared (most of a weekly run re-reads weeks
    already stored); ``records`` then gives the unit's counts. Any merge
    that changes a school's lessons drops the digests of the windows it overlaps, so a digest
    only ever vouches for lessons nobody has touched since.
    """

    school = models.ForeignKey(
        School, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    date_from = models.DateField("from")
    date_to = models.DateField("to")
    digest = models.CharField(
        "digest",
        max_length=64,
        help_text="XXH3-128 of the conversion code, then each page's query and body, in order.",
    )
    lessons = models.IntegerField("lessons", help_text="Distinct lessons the answer holds.")
    records = models.IntegerField("records", help_text="Records the answer held.")
    merged_at = models.DateTimeField("merged")

    class Meta:
        verbose_name = "window digest"
        constraints = [
            models.UniqueConstraint(
                fields=["school", "date_from", "date_to"], name="window_digest_unique"
            )
        ]

    def __str__(self):
        return f"{self.school_id} {self.date_from}..{self.date_to}"


class ChangeKind(models.TextChoices):
    """What one row of the change history says happened."""

    BASELINE = "baseline", "first seen"  # lessons on days that held none: one row per window
    ADDED = "added", "added"  # a lesson appeared on a day that already had lessons
    REMOVED = "removed", "removed"  # a lesson vanished from a day that still has lessons
    UPDATED = "updated", "AY/SEM changed"  # same lesson, another academic year or semester
    RELOADED = "reloaded", "reloaded (LOAD_DTM only)"  # NEIS reloaded it, nothing else moved
    DAY_REMOVED = "day_removed", "day removed"  # every lesson of the day vanished: one row


class LessonChange(models.Model):
    """One change the merge made to the stored timetable, kept as history (a public table).

    Written by ``storage.store_lessons`` in the same transaction as the change itself, so
    history and lessons never disagree. ``id`` only grows: a consumer that keeps
    the last id it read resumes exactly there (``manage.py timetable_changes --after``).
    ``baseline`` and ``day_removed`` rows summarise a whole day or window in one row
    (``lessons`` counts them; the slot columns are empty); every other row is one lesson.
    On PostgreSQL the table is partitioned by month on ``date``, like the lessons.
    """

    id = models.BigAutoField(primary_key=True)
    observed_at = models.DateTimeField("observed", help_text="When the merge saw the change.")
    run_id = models.IntegerField("run", null=True, blank=True, help_text="Collection run.")
    unit_id = models.BigIntegerField(
        "unit", null=True, blank=True, help_text="The run's ledger unit (school in run)."
    )
    school = models.ForeignKey(
        School,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
        verbose_name="school",
    )
    date = models.DateField("date", help_text="ALL_TI_YMD of the lesson or day.")
    kind = models.CharField("kind", max_length=16, choices=ChangeKind.choices)
    grade = models.SmallIntegerField("grade", null=True, blank=True)
    class_name = models.TextField("class", blank=True)
    period = models.SmallIntegerField("period", null=True, blank=True)
    day_night = models.TextField("day/night course", blank=True)
    track = models.TextField("track", blank=True)
    department = models.TextField("department", blank=True)
    course = models.TextField("course", blank=True)
    classroom = models.TextField("classroom", blank=True)
    subject_before = models.ForeignKey(
        Subject,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
        verbose_name="subject before",
    )
    subject_after = models.ForeignKey(
        Subject,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
        verbose_name="subject after",
    )
    academic_year_before = models.SmallIntegerField("AY before", null=True, blank=True)
    academic_year_after = models.SmallIntegerField("AY after", null=True, blank=True)
    semester_before = models.SmallIntegerField("SEM before", null=True, blank=True)
    semester_after = models.SmallIntegerField("SEM after", null=True, blank=True)
    load_dtm_before = models.DateTimeField("LOAD_DTM before", null=True, blank=True)
    load_dtm_after = models.DateTimeField("LOAD_DTM after", null=True, blank=True)
    lessons = models.IntegerField(
        "lessons", default=1, help_text="Lessons this row stands for (more for summaries)."
    )

    class Meta:
        verbose_name = "timetable change"
        indexes = [
            models.Index(fields=["school", "date"], name="change_school_date"),
            models.Index(fields=["run_id"], name="change_run"),
        ]

    def __str__(self):
        return f"{self.kind} {self.school_id} {self.date}"


# The run ledger lives in its own module; importing it here registers its models with the app.
from collector.completeness import (  # noqa: E402, F401
    CalendarFetch,
    SchoolClass,
    SchoolDayOff,
    SchoolWeek,
)
from collector.ledger import CollectionRun, LatestUnit, SchoolRun  # noqa: E402, F401
from collector.quota import QuotaDay  # noqa: E402, F401
from collector.workers import WorkerHeartbeat  # noqa: E402, F401
