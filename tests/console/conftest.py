"""A small world for the console tests: one open run part-way through, one closed run, and a
school whose timetable changed; dispatch is recorded instead of sent."""

from __future__ import annotations

import datetime

import pytest

from collector import clock
from collector.ledger import CollectionRun, RunStatus, SchoolRun, Trigger, UnitStatus
from tests.storage.factories import make_school

# The pinned clock's school week (tests/pinned_clock.py: Saturday 2026-11-21).
THIS_WEEK = datetime.date(2026, 11, 16)
LAST_WEEK = THIS_WEEK - datetime.timedelta(weeks=1)


@pytest.fixture(autouse=True)
def local_budget(settings, tmp_path):
    """The request budget in a lock file of this test's own, not in a shared Redis."""
    settings.NEIS_LIMITER_URL = ""
    settings.VAR_DIR = tmp_path


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "collector.pipeline.send_collect", lambda unit_id, expires: calls.append(unit_id)
    )
    return calls


def make_run(level="middle", status=RunStatus.RUNNING, week=THIS_WEEK, minutes_ago=30, **fields):
    run = CollectionRun.objects.create(
        level=level,
        date_from=week,
        date_to=week + datetime.timedelta(days=6),
        trigger=fields.pop("trigger", Trigger.SCHEDULE),
        status=status,
    )
    created = clock.now() - datetime.timedelta(minutes=minutes_ago)
    CollectionRun.objects.filter(pk=run.pk).update(
        created_at=created, started_at=fields.pop("started_at", created), **fields
    )
    run.refresh_from_db()
    return run


def make_unit(run, school, status, **fields):
    return SchoolRun.objects.create(run=run, school=school, status=status, **fields)


@pytest.fixture
def schools(db):
    return {
        f"M{n}": make_school(f"70100{n:02d}", "B10" if n <= 6 else "C10", "중학교")
        for n in range(1, 9)
    }


@pytest.fixture
def open_run(schools):
    """Middle schools of this week, started 30 minutes ago: 2 done, 1 no data, 1 deferred,
    1 failed, 1 running and 2 pending; the run's stored counts are still all zero."""
    run = make_run(units_total=0)
    s = schools
    units = {
        "done1": make_unit(run, s["M1"], UnitStatus.DONE, rows_fetched=1200, requests=2),
        "done2": make_unit(run, s["M2"], UnitStatus.DONE, rows_fetched=800, requests=1),
        "nodata": make_unit(run, s["M3"], UnitStatus.NO_DATA, requests=1),
        "deferred": make_unit(
            run,
            s["M4"],
            UnitStatus.DEFERRED,
            last_error_code="ERROR-337",
            last_error="ERROR-337: daily quota spent",
            defer_until=datetime.datetime(2026, 11, 21, 15, 0, tzinfo=datetime.UTC),
        ),
        "failed": make_unit(
            run, s["M5"], UnitStatus.FAILED, last_error_code="ERROR-300", last_error="bad"
        ),
        "running": make_unit(run, s["M6"], UnitStatus.RUNNING, requests=1),
        "pending1": make_unit(run, s["M7"], UnitStatus.PENDING),
        "pending2": make_unit(run, s["M8"], UnitStatus.PENDING),
    }
    return run, units
