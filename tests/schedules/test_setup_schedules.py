"""setup_schedules writes the code's schedules idempotently and respects admin edits."""

import datetime
import io
import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from collector.clock import SEOUL
from schedules.apply import apply_schedules
from schedules.definitions import SCHEDULES

pytestmark = pytest.mark.django_db


def _run(*args):
    out = io.StringIO()
    call_command("setup_schedules", *args, stdout=out)
    return out.getvalue()


def test_it_creates_every_schedule_once():
    first = apply_schedules()
    assert sorted(first["created"]) == sorted(d.name for d in SCHEDULES)
    second = apply_schedules()
    assert second["created"] == second["updated"] == second["kept"] == []
    assert sorted(second["unchanged"]) == sorted(d.name for d in SCHEDULES)
    assert PeriodicTask.objects.filter(name__in=[d.name for d in SCHEDULES]).count() == len(
        SCHEDULES
    )


def test_it_changes_nothing_when_run_twice():
    _run()
    before = list(PeriodicTask.objects.order_by("name").values())
    changed = PeriodicTasks.last_change()
    output = _run()
    assert list(PeriodicTask.objects.order_by("name").values()) == before
    assert PeriodicTasks.last_change() == changed
    assert f"{len(SCHEDULES)} unchanged" in output


def test_it_keeps_an_operator_edit_unless_reset():
    _run()
    task = PeriodicTask.objects.get(name="collect-middle-weekly")
    task.crontab = CrontabSchedule.objects.create(
        minute="30", hour="7", day_of_week="0", timezone="Asia/Seoul"
    )
    task.kwargs = json.dumps({"level": "middle", "weeks_before": 2, "weeks_after": 0})
    task.save()

    output = _run()
    task.refresh_from_db()
    assert task.crontab.hour == "7"
    assert "kept  collect-middle-weekly (kwargs, crontab edited)" in output

    before = PeriodicTasks.last_change()
    output = _run("--reset")
    task.refresh_from_db()
    assert task.crontab.hour == "5"
    assert json.loads(task.kwargs)["weeks_before"] == 1
    assert "updated  collect-middle-weekly" in output
    assert PeriodicTasks.last_change() > before


def _next_fire(task, now):
    schedule = task.schedule
    schedule.nowfun = lambda: now
    return now + schedule.remaining_estimate(now)


@pytest.mark.parametrize(
    ("name", "now", "expected"),
    [
        # Tuesday 29 December 2026 in Seoul: the next Saturday is across the year boundary.
        ("collect-elementary-weekly", (2026, 12, 29, 12, 0), (2027, 1, 2, 1, 0)),
        ("collect-middle-weekly", (2026, 12, 29, 12, 0), (2027, 1, 2, 5, 0)),
        ("collect-high-weekly", (2026, 12, 29, 12, 0), (2027, 1, 2, 8, 0)),
        ("collect-special-weekly", (2026, 12, 29, 12, 0), (2027, 1, 2, 11, 0)),
        # Saturday 1 a.m. Seoul is Friday 16:00 UTC; just after it, the next one is a week on.
        ("collect-elementary-weekly", (2027, 1, 2, 1, 0, 1), (2027, 1, 9, 1, 0)),
        ("refresh-school-registry", (2027, 1, 1, 0, 0), (2027, 1, 1, 23, 30)),
        # Friday noon: Saturday night belongs to the weekly runs, so Sunday 02:30 is next.
        ("refresh-school-calendars", (2027, 1, 1, 12, 0), (2027, 1, 3, 2, 30)),
        ("refresh-school-calendars", (2027, 1, 3, 3, 0), (2027, 1, 4, 2, 30)),
        # School days only: from Friday noon the next refresh is Monday's.
        ("refresh-current-weeks", (2027, 1, 1, 12, 0), (2027, 1, 4, 6, 0)),
        ("refresh-current-weeks", (2027, 1, 4, 7, 0), (2027, 1, 5, 6, 0)),
    ],
)
def test_it_fires_at_the_right_time_in_seoul(name, now, expected):
    apply_schedules()
    task = PeriodicTask.objects.get(name=name)
    now = datetime.datetime(*now, tzinfo=SEOUL)
    fire = _next_fire(task, now).astimezone(SEOUL)
    assert fire.replace(second=0, microsecond=0) == datetime.datetime(*expected, tzinfo=SEOUL)


def test_it_collects_three_school_weeks_by_default():
    apply_schedules()
    for level in ("elementary", "middle", "high", "special"):
        kwargs = json.loads(PeriodicTask.objects.get(name=f"collect-{level}-weekly").kwargs)
        assert kwargs == {"level": level, "weeks_before": 1, "weeks_after": 1}
