"""manage.py prune_history: ledger and task-result retention (collector/retention.py)."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_results.models import TaskResult

from collector import clock
from collector.ledger import CollectionRun, RunStatus, SchoolRun, Trigger, UnitStatus
from collector.tasks import prune_history
from tests.storage.factories import make_school

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 11, 21)  # the pinned clock's day


@pytest.fixture(autouse=True)
def frozen_clock():
    """The pinned moment, standing still: the messages below name dates and times."""
    with clock.pinned(datetime.datetime(2026, 11, 21, 10, 0, tzinfo=clock.SEOUL), frozen=True):
        yield


def _run(
    weeks_ago: int, status: str, school_count: int = 3, task_prefix: str = ""
) -> CollectionRun:
    """A run whose window ended ``weeks_ago`` weeks before today, with a unit per school."""
    date_to = TODAY - datetime.timedelta(weeks=weeks_ago)
    run = CollectionRun.objects.create(
        level="middle",
        date_from=date_to - datetime.timedelta(days=20),
        date_to=date_to,
        trigger=Trigger.COMMAND,
        status=status,
    )
    schools = [
        make_school(f"70{weeks_ago:03d}{n:02d}", "B10", "중학교") for n in range(school_count)
    ]
    for school in schools:
        SchoolRun.objects.create(
            run=run,
            school=school,
            status=UnitStatus.DONE if status != RunStatus.RUNNING else UnitStatus.PENDING,
            task_id=f"{task_prefix}{run.pk}-{school.pk}" if task_prefix else "",
        )
    return run


def _result(task_id: str, days_ago: int) -> TaskResult:
    result = TaskResult.objects.create(task_id=task_id, status="SUCCESS")
    done = clock.now() - datetime.timedelta(days=days_ago)
    TaskResult.objects.filter(pk=result.pk).update(date_done=done)
    return result


@pytest.fixture
def ledger():
    """Two old closed runs (60 weeks), a recent closed one (12 weeks), an old open one, and task
    results old and new, one of them the open run's."""
    old = [_run(60, RunStatus.DONE), _run(61, RunStatus.PARTIAL)]
    recent = _run(12, RunStatus.DONE)
    open_run = _run(62, RunStatus.RUNNING, task_prefix="open-")
    open_task = open_run.units.first().task_id
    results = {
        "old": _result("old-task", 30),
        "new": _result("new-task", 1),
        "open": _result(open_task, 30),
    }
    return {"old": old, "recent": recent, "open": open_run, "results": results}


def _call(*args) -> str:
    out = io.StringIO()
    call_command("prune_history", *args, stdout=out)
    return out.getvalue()


def _snapshot():
    return (
        sorted(SchoolRun.objects.values_list("pk", flat=True)),
        sorted(TaskResult.objects.values_list("task_id", flat=True)),
        sorted(CollectionRun.objects.values_list("pk", "status")),
    )


def test_it_dry_runs_unless_told_and_says_exactly_what_it_would_delete(ledger):
    before = _snapshot()
    output = _call()
    old = sorted(run.pk for run in ledger["old"])
    assert output.startswith(
        f"Dry run: would delete 6 ledger units of 2 closed runs whose window ended before "
        f"2025-10-17 (runs {old[0]}-{old[1]}), and 1 task results done before 2026-11-14 10:00 "
        "KST, the oldest done 2026-10-22."
    )
    assert "Add --apply" in output
    assert _snapshot() == before


def test_it_deletes_exactly_the_old_closed_runs_units_and_old_results(ledger):
    output = _call("--apply", "--batch", "100")
    assert output.startswith("Deleted 6 ledger units of 2 closed runs")
    assert "1 task results" in output
    old_ids = [run.pk for run in ledger["old"]]
    assert not SchoolRun.objects.filter(run_id__in=old_ids).exists()
    assert ledger["recent"].units.count() == 3
    # The runs themselves stay, with their status.
    assert CollectionRun.objects.filter(pk__in=old_ids).count() == 2
    assert set(TaskResult.objects.values_list("task_id", flat=True)) == {
        "new-task",
        ledger["results"]["open"].task_id,
    }


def test_it_never_touches_an_open_run_however_old(ledger):
    _call("--apply", "--ledger-days", "70", "--results-days", "1")
    open_run = ledger["open"]
    assert open_run.units.count() == 3
    assert TaskResult.objects.filter(task_id=ledger["results"]["open"].task_id).exists()
    open_run.refresh_from_db()
    assert open_run.status == RunStatus.RUNNING


def test_it_deletes_in_batches_that_each_commit(ledger):
    output = _call("--apply", "--batch", "100")
    # Units and results are deleted separately: one batch each here.
    assert "in 2 batches" in output


def test_a_second_prune_finds_nothing(ledger):
    _call("--apply")
    assert _call().startswith("Dry run: would delete 0 ledger units of 0 closed runs")


def test_the_scheduled_task_applies_the_settings(ledger, settings):
    settings.LEDGER_RETENTION_DAYS = 70
    assert prune_history() == {"units": 9, "runs": 3, "results": 1}
    assert not SchoolRun.objects.filter(run=ledger["recent"]).exists()
    assert ledger["open"].units.count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ledger-days", "abc"], "--ledger-days must be a whole number of days, got 'abc'"),
        (["--ledger-days", "30"], "--ledger-days must be 70-3650 days, got 30"),
        (["--results-days", "0"], "--results-days must be 1-3650 days, got 0"),
        (["--batch", "5"], "--batch must be 100-100000 rows, got 5"),
    ],
)
def test_it_refuses_bad_input_in_one_line_and_deletes_nothing(ledger, args, message):
    before = _snapshot()
    with pytest.raises(CommandError) as refused:
        _call("--apply", *args)
    assert str(refused.value) == message
    assert _snapshot() == before
