"""Compare what the database holds with what the simulated NEIS serves, row for row."""

from __future__ import annotations

import datetime

from collector.models import LESSON_VALUES, STORED_KEY, Lesson, record_key
from collector.neis import parse


def expected_lessons(world, codes, start: datetime.date, end: datetime.date, as_of) -> dict:
    """Natural key -> (AY, SEM, LOAD_DTM, normalised subject) of every lesson NEIS serves.

    Byte-identical duplicates are one lesson; rows differing only in LOAD_DTM are one lesson
    with the latest LOAD_DTM (the storage contract).
    """
    expected: dict[tuple, tuple] = {}
    for code in codes:
        for row in world.timetable(code, start, end, as_of=as_of):
            record = parse.lesson_from_row(row)
            value = (*(getattr(record, name) for name in LESSON_VALUES), record.subject)
            key = record_key(record)
            if key not in expected or _later(value, expected[key]):
                expected[key] = value
    return expected


def _later(value: tuple, current: tuple) -> bool:
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return (value[2] or epoch) > (current[2] or epoch)


def stored_lessons(codes, start: datetime.date, end: datetime.date) -> dict:
    rows = Lesson.objects.filter(
        school__code__in=list(codes), date__gte=start, date__lte=end
    ).values_list(*STORED_KEY, *LESSON_VALUES, "subject__name")
    return {row[: len(STORED_KEY)]: row[len(STORED_KEY) :] for row in rows}


def expected_changes(old: dict, new: dict) -> set[tuple]:
    """The change history a merge from ``old`` to ``new`` (``expected_lessons`` maps) must
    leave: per-lesson rows as (kind, *natural key), summaries as (kind, school, date, count).

    A day a school had no lessons on before is new (one baseline row per school, counting
    them); a day it has none on after vanished (one day_removed row per school and day).
    """
    days_before = {(key[0], key[1]) for key in old}
    days_after = {(key[0], key[1]) for key in new}
    changes: set[tuple] = set()
    baseline: dict[str, int] = {}
    vanished: dict[tuple, int] = {}
    for key in new.keys() - old.keys():
        if (key[0], key[1]) in days_before:
            changes.add(("added", *key))
        else:
            baseline[key[0]] = baseline.get(key[0], 0) + 1
    for key in old.keys() - new.keys():
        if (key[0], key[1]) in days_after:
            changes.add(("removed", *key))
        else:
            vanished[key[:2]] = vanished.get(key[:2], 0) + 1
    for key in new.keys() & old.keys():
        if new[key][:3] != old[key][:3]:
            kind = "reloaded" if new[key][:2] == old[key][:2] else "updated"
            changes.add((kind, *key))
    changes |= {("baseline", code, count) for code, count in baseline.items()}
    changes |= {("day_removed", *day, count) for day, count in vanished.items()}
    return changes


def recorded_changes(run_id: int) -> set[tuple]:
    """The change history of one run, in the form ``expected_changes`` gives."""
    from collector.models import LessonChange

    rows = LessonChange.objects.filter(run_id=run_id).values_list(
        "kind",
        "school__code",
        "date",
        *STORED_KEY[2:-1],
        "subject_before__raw",
        "subject_after__raw",
        "lessons",
    )
    found = set()
    for kind, code, date, *slot, before, after, lessons in rows:
        if kind == "baseline":
            found.add((kind, code, lessons))
        elif kind == "day_removed":
            found.add((kind, code, date, lessons))
        else:
            found.add((kind, code, date, *slot, after if before is None else before))
    return found


def _slot(record) -> tuple:
    return (record.school_code, record.date, record.grade, record.class_name, record.period)


def expected_feed(world, codes, start: datetime.date, end: datetime.date, since, until) -> set:
    """The change feed (``collector.changes.feed``) a merge of what NEIS served at ``since``
    into what it serves at ``until`` must give, from the simulator's record of each edit
    (``World.edits``), in the form ``fed_changes`` gives.

    A subject swapped in a period or a period moved to another classroom is one ``swapped``
    change; a cancelled or an added period one ``removed`` or ``added`` change per lesson; a day
    reloaded unchanged one ``reloaded`` change per lesson; a removed day one ``day_removed``.
    """
    changes: set[tuple] = set()
    for code in codes:
        for edit in world.edits(code, start, end, since=since, until=until):
            before = [parse.lesson_from_row(row) for row in edit.before]
            after = [parse.lesson_from_row(row) for row in edit.after]
            if edit.kind == "day_off":
                lessons = len({record_key(record) for record in before})
                changes.add(("day_removed", code, before[0].date, lessons))
            elif edit.kind in ("swap", "classroom"):
                (old,), (new,) = before, after
                room = old.classroom
                if new.classroom != old.classroom:
                    room = f"{old.classroom} -> {new.classroom}"
                changes.add(("swapped", *_slot(old), room, old.subject, new.subject))
            elif edit.kind == "reload":
                for record in after:
                    changes.add(
                        ("reloaded", *_slot(record), record.classroom) + (record.subject,) * 2
                    )
            else:
                for record in before:
                    changes.add(("removed", *_slot(record), record.classroom, record.subject, None))
                for record in after:
                    changes.add(("added", *_slot(record), record.classroom, None, record.subject))
    return changes


def fed_changes(run_id: int) -> set[tuple]:
    """The change feed of one run, in the form ``expected_feed`` gives (baselines left out)."""
    from collector.changes import feed, history

    found = set()
    for change in feed(history().filter(run_id=run_id)):
        if change.kind == "baseline":
            continue
        if change.kind == "day_removed":
            found.add((change.kind, change.school, change.date, change.lessons))
        else:
            slot = (change.school, change.date, change.grade, change.class_name, change.period)
            subjects = (change.subject_before, change.subject_after)
            found.add((change.kind, *slot, change.classroom, *subjects))
    return found
