"""manage.py lesson_partitions: list, create ahead, dry-run, retire with and without export."""

from __future__ import annotations

import csv
import datetime
import gzip
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from collector import clock
from collector.models import Lesson, LessonChange
from collector.storage import lesson_partitions, store_lessons
from tests.storage.factories import lesson, make_school, postgres

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not postgres(), reason="PostgreSQL only"),
]
OLD = datetime.date(2024, 5, 13)  # a month long retired by the pinned clock (2026-11)


def _call(*args) -> str:
    out = io.StringIO()
    call_command("lesson_partitions", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def old_month():
    school = make_school()
    records = [lesson(school, OLD, 1, "1", period) for period in range(1, 4)]
    store_lessons(school, OLD, OLD, records)
    return len(records)


def test_it_creates_the_coming_months_ahead():
    output = _call("--create-ahead", "2")
    names = {p.name for p in lesson_partitions()}
    assert {
        "collector_lesson_2026_11",
        "collector_lesson_2026_12",
        "collector_lesson_2027_01",
    } <= names
    assert "collector_lessonchange_2027_01" in output
    assert "already exists" in _call("--create-ahead", "2")


def test_it_dry_runs_unless_told_and_says_exactly_what_it_would_drop(old_month):
    output = _call("--retire-before", "2024-06")
    assert output.startswith(
        "Dry run: would drop 2 partitions (collector_lesson_2024_05, "
        "collector_lessonchange_2024_05)"
    )
    assert Lesson.objects.filter(date=OLD).count() == old_month


def test_it_exports_then_drops_a_retired_month(old_month, tmp_path):
    output = _call("--retire-before", "2024-06", "--export", str(tmp_path), "--apply")
    assert output.startswith("Dropped 2 partitions")
    assert not Lesson.objects.filter(date=OLD).exists()
    assert not LessonChange.objects.filter(date=OLD).exists()
    with gzip.open(tmp_path / "collector_lesson_2024_05.csv.gz", "rt") as exported:
        rows = list(csv.DictReader(exported))
    assert len(rows) == old_month
    assert {row["date"] for row in rows} == {OLD.isoformat()}
    assert (tmp_path / "collector_lessonchange_2024_05.csv.gz").exists()


def test_it_drops_without_export_when_asked(old_month):
    _call("--retire-before", "2024-06", "--apply")
    assert "collector_lesson_2024_05" not in {p.name for p in lesson_partitions()}


def test_it_refuses_to_retire_the_current_month():
    month = clock.today().replace(day=1) + datetime.timedelta(days=32)
    with pytest.raises(CommandError, match="refusing to retire 2026-11 or later"):
        _call("--retire-before", f"{month:%Y-%m}", "--apply")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retire-before", "May"], "--retire-before 'May' is not a month; use YYYY-MM"),
        (["--export", "/tmp/x"], "--export goes with --retire-before"),
        (["--create-ahead", "99"], "--create-ahead must be 0-24 months, got 99"),
    ],
)
def test_it_refuses_bad_input(args, message):
    with pytest.raises(CommandError) as caught:
        _call(*args)
    assert str(caught.value) == message
