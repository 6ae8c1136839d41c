"""The change feed: slot-level meaning, a stable cursor, filters, and every output form."""

from __future__ import annotations

import dataclasses
import datetime
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from collector.models import LessonChange
from collector.storage import Observer, store_lessons
from tests.storage.factories import MONDAY, SUNDAY, make_school, week

pytestmark = pytest.mark.django_db
TUESDAY = MONDAY + datetime.timedelta(days=1)


def _feed(*args) -> list[dict]:
    out = io.StringIO()
    call_command("timetable_changes", "--format", "jsonl", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def revised(school):
    """A first load, then a revision: a subject swapped on Monday, Tuesday gone."""
    records = week(school)
    store_lessons(school, MONDAY, SUNDAY, records, history=Observer(1, 10))
    swapped = records[0]
    new = dataclasses.replace(swapped, subject_raw="-미술", subject="미술")
    second = [new, *(r for r in records[1:] if r.date != TUESDAY)]
    store_lessons(school, MONDAY, SUNDAY, second, history=Observer(2, 20))
    return swapped, sum(r.date == TUESDAY for r in records)


def test_it_presents_a_subject_swap_as_one_change_of_the_slot(revised):
    swapped, gone = revised
    baseline = LessonChange.objects.get(kind="baseline").id
    feed = _feed("--after", str(baseline))  # after the first load's baseline row
    kinds = [change["kind"] for change in feed]
    assert sorted(kinds) == ["day_removed", "swapped"]
    swap = next(change for change in feed if change["kind"] == "swapped")
    assert (swap["subject_before"], swap["subject_after"]) == (swapped.subject, "미술")
    assert (swap["grade"], swap["class_name"], swap["period"]) == (
        swapped.grade,
        swapped.class_name,
        swapped.period,
    )
    assert swap["run"] == 2 and swap["date"] == MONDAY.isoformat()
    day = next(change for change in feed if change["kind"] == "day_removed")
    assert (day["date"], day["lessons"]) == (TUESDAY.isoformat(), gone)


def test_it_resumes_exactly_after_the_last_id_read(revised):
    everything = _feed()
    assert [change["kind"] for change in everything][0] == "baseline"
    first = _feed("--limit", "1")
    rest = _feed("--after", str(first[-1]["id"]))
    assert first + rest == everything
    assert _feed("--after", str(everything[-1]["id"])) == []


def test_it_filters_by_school_office_level_and_kind(revised, school):
    other = make_school("7010099", "J10", "중학교")
    store_lessons(other, MONDAY, SUNDAY, week(other))
    assert {c["school"] for c in _feed("--school", other.code)} == {other.code}
    assert {c["office"] for c in _feed("--office", "J10")} == {"J10"}
    assert {c["level"] for c in _feed("--level", "elementary")} == {"elementary"}
    assert [c["kind"] for c in _feed("--kind", "swapped")] == ["swapped"]
    assert _feed("--since", "2999-01-01") == []


def test_it_writes_a_line_a_person_can_read(revised):
    swapped, _ = revised
    out, err = io.StringIO(), io.StringIO()
    call_command("timetable_changes", "--kind", "swapped", stdout=out, stderr=err)
    expected = (
        f"{swapped.grade}-{swapped.class_name}, period {swapped.period}, Mon {MONDAY}: "
        f"{swapped.subject} -> 미술"
    )
    assert expected in out.getvalue()
    assert err.getvalue().strip() == "1 changes."


def test_it_writes_csv_with_a_header(revised):
    out = io.StringIO()
    call_command("timetable_changes", "--format", "csv", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("id,observed_at,run,school,office,level,kind,date")
    assert len(lines) == 1 + len(_feed())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a date or date-time"),
        (["--office", "Z99"], "unknown office code(s): Z99"),
        (["--after", "-1"], "--after and --limit must not be negative"),
    ],
)
def test_it_refuses_bad_input_in_one_line(args, message):
    with pytest.raises(CommandError) as caught:
        call_command("timetable_changes", *args, stdout=io.StringIO())
    assert str(caught.value).startswith(message)
