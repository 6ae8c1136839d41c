"""Reading the change history (``models.LessonChange``) as a feed of slot-level changes.

The history keeps one row per lesson change, as the merge saw it. A reader wants the meaning
of a slot: a period whose subject was swapped is one removal and one addition in the history
(the subject is part of a lesson's key), and is one change here (``swapped``). Rows come in
id order, so a consumer that remembers the last id it read resumes exactly there.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Iterator

from collector.models import LESSON_KEY, ChangeKind, LessonChange

SWAPPED = "swapped"  # a feed kind only: one removal and one addition in the same slot
# A period of one class: the natural key less school, classroom and subject, so that a subject
# (or classroom) swapped in it pairs its removal with its addition.
_PERIOD = LESSON_KEY[1:-2]
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclasses.dataclass
class Change:
    """One change of one slot, day or window, as a consumer reads it."""

    id: int  # the cursor: the largest history id this change stands for
    observed_at: datetime.datetime
    run: int | None
    school: str
    office: str
    level: str
    kind: str
    date: datetime.date
    grade: int | None
    class_name: str
    period: int | None
    day_night: str
    track: str
    department: str
    course: str
    classroom: str
    subject_before: str | None
    subject_after: str | None
    academic_year_before: int | None
    academic_year_after: int | None
    semester_before: int | None
    semester_after: int | None
    load_dtm_before: datetime.datetime | None
    load_dtm_after: datetime.datetime | None
    lessons: int

    FIELDS = ()  # set below

    def describe(self) -> str:
        """One line for a person: '2-3, period 4, Tue 2026-12-01: 수학 -> 영어'."""
        day = f"{_WEEKDAYS[self.date.weekday()]} {self.date}"
        if self.kind == ChangeKind.BASELINE:
            return f"{self.lessons:,} lessons first seen from {day}"
        if self.kind == ChangeKind.DAY_REMOVED:
            return f"{day}: all {self.lessons:,} lessons removed"
        slot = f"{self.grade}-{self.class_name}, period {self.period}, {day}"
        extra = ", ".join(
            v for v in (self.track, self.department, self.course, self.classroom) if v
        )
        slot += f" ({extra})" if extra else ""
        if self.kind == SWAPPED:
            return f"{slot}: {self.subject_before} -> {self.subject_after}"
        if self.kind == ChangeKind.ADDED:
            return f"{slot}: new {self.subject_after}"
        if self.kind == ChangeKind.REMOVED:
            return f"{slot}: cancelled {self.subject_before}"
        if self.kind == ChangeKind.RELOADED:
            return f"{slot}: {self.subject_after} reloaded by NEIS (LOAD_DTM only)"
        return (
            f"{slot}: {self.subject_after} moved from AY {self.academic_year_before} SEM "
            f"{self.semester_before} to AY {self.academic_year_after} SEM {self.semester_after}"
        )


Change.FIELDS = tuple(f.name for f in dataclasses.fields(Change))


def history(
    *,
    after: int = 0,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    offices: Iterable[str] = (),
    levels: Iterable[str] = (),
    schools: Iterable[str] = (),
    kinds: Iterable[str] = (),
):
    """The history rows asked for, in id order (a queryset: nothing is read yet)."""
    rows = LessonChange.objects.filter(id__gt=after).order_by("id")
    if since:
        rows = rows.filter(observed_at__gte=since)
    if until:
        rows = rows.filter(observed_at__lt=until)
    if offices:
        rows = rows.filter(school__office_id__in=list(offices))
    if levels:
        rows = rows.filter(school__level__in=list(levels))
    if schools:
        rows = rows.filter(school__code__in=list(schools))
    if kinds:
        rows = rows.filter(kind__in=[k for k in kinds if k != SWAPPED] + _swap_parts(kinds))
    return rows.select_related("school", "subject_before", "subject_after")


def _swap_parts(kinds: Iterable[str]) -> list[str]:
    return [ChangeKind.ADDED, ChangeKind.REMOVED] if SWAPPED in kinds else []


def feed(rows, *, chunk_size: int = 2000) -> Iterator[Change]:
    """Slot-level changes from history rows in id order, in constant memory.

    Rows of one merge (one unit) are read together; in them a slot with exactly one removal
    and one addition becomes one ``swapped`` change.
    """
    group: list[LessonChange] = []
    for row in rows.iterator(chunk_size=chunk_size):
        if group and (row.unit_id, row.run_id, row.observed_at) != (
            group[0].unit_id,
            group[0].run_id,
            group[0].observed_at,
        ):
            yield from _pair(group)
            group = []
        group.append(row)
    yield from _pair(group)


def _pair(group: list[LessonChange]) -> Iterator[Change]:
    by_slot: dict[tuple, list[LessonChange]] = {}
    for row in group:
        if row.kind in (ChangeKind.ADDED, ChangeKind.REMOVED):
            by_slot.setdefault(tuple(getattr(row, name) for name in _PERIOD), []).append(row)
    changes = []
    paired: set[int] = set()
    for rows in by_slot.values():
        kinds = sorted(row.kind for row in rows)
        if kinds == [ChangeKind.ADDED, ChangeKind.REMOVED]:
            added, removed = sorted(rows, key=lambda r: r.kind)
            swap = _change(added, kind=SWAPPED, id=max(added.id, removed.id))
            swap.subject_before = removed.subject_before and removed.subject_before.name
            swap.academic_year_before = removed.academic_year_before
            swap.semester_before = removed.semester_before
            swap.load_dtm_before = removed.load_dtm_before
            if removed.classroom != added.classroom:
                swap.classroom = f"{removed.classroom} -> {added.classroom}"
            changes.append(swap)
            paired.update((added.id, removed.id))
    changes += [_change(row) for row in group if row.id not in paired]
    yield from sorted(changes, key=lambda change: change.id)


def _change(row: LessonChange, **overrides) -> Change:
    values = {
        "id": row.id,
        "observed_at": row.observed_at,
        "run": row.run_id,
        "school": row.school.code,
        "office": row.school.office_id,
        "level": row.school.level,
        "kind": row.kind,
        "subject_before": row.subject_before and row.subject_before.name,
        "subject_after": row.subject_after and row.subject_after.name,
    }
    for name in Change.FIELDS:
        values.setdefault(name, getattr(row, name, None))
    values.update(overrides)
    return Change(**values)
