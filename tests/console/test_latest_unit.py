"""PostgreSQL keeps each school-week's latest unit (``LatestUnit``) whatever writes the ledger:
the table always says what working it out from the ledger says (``console.latest_states_sql``
off the table, as on SQLite), and what a plain reading of the definition says."""

from __future__ import annotations

import datetime
import threading
import time

import pytest

from collector import clock, console, pipeline, retention
from collector.ledger import CollectionRun, LatestUnit, RunLevel, RunStatus, SchoolRun, UnitStatus
from collector.models import School
from tests.console.conftest import LAST_WEEK, THIS_WEEK, make_run, make_unit
from tests.storage.factories import postgres

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not postgres(), reason="PostgreSQL keeps the table; elsewhere it is empty"),
]

WEEKS = [LAST_WEEK - datetime.timedelta(weeks=1), LAST_WEEK, THIS_WEEK]


def expected() -> set[tuple]:
    """(monday, school, unit, status) by the definition: the unit of the newest run (created,
    then id) whose window holds the school week, cancelled units aside."""
    best: dict[tuple, SchoolRun] = {}
    for unit in SchoolRun.objects.exclude(status=UnitStatus.CANCELLED).select_related("run"):
        for monday in WEEKS:
            if unit.run.date_from <= monday and unit.run.date_to >= monday + datetime.timedelta(4):
                key = (monday, unit.school_id)
                rank = (unit.run.created_at, unit.run_id)
                if key not in best or rank > (best[key].run.created_at, best[key].run_id):
                    best[key] = unit
    return {(m, s, unit.pk, unit.status) for (m, s), unit in best.items()}


def kept() -> set[tuple]:
    return set(LatestUnit.objects.values_list("monday", "school_id", "unit_id", "status"))


def worked_out(monkeypatch) -> set[tuple]:
    """The same, from ``latest_states_sql`` as it reads the ledger without the table."""
    from django.db import connection

    with monkeypatch.context() as patch:
        patch.setattr(LatestUnit, "kept", staticmethod(lambda: False))
        covering = console.week_runs(WEEKS, RunLevel.ALL)
        sql, params = console.latest_states_sql(covering, RunLevel.ALL, None, active_only=False)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT monday, school_id, unit_id, status FROM ({sql}) l", params)
        return set(cursor.fetchall())


def two_weeks_run(minutes_ago: int, **fields) -> CollectionRun:
    """A run over last week and this one."""
    run = make_run(week=LAST_WEEK, minutes_ago=minutes_ago, **fields)
    CollectionRun.objects.filter(pk=run.pk).update(date_to=THIS_WEEK + datetime.timedelta(6))
    run.refresh_from_db()
    return run


@pytest.fixture
def world(schools):
    """Three runs over the schools, created out of order: the newest run was stored first."""
    newest = make_run(minutes_ago=10)
    oldest = two_weeks_run(minutes_ago=300)
    middle = two_weeks_run(minutes_ago=100)
    for i, school in enumerate(schools.values()):
        if i % 3:
            make_unit(newest, school, UnitStatus.PENDING)
        make_unit(oldest, school, UnitStatus.DONE)
        if i % 2:
            make_unit(middle, school, UnitStatus.FAILED)
    return newest, middle, oldest


def test_it_holds_each_school_weeks_newest_unit_however_the_runs_were_stored(world, monkeypatch):
    assert kept() == expected() == worked_out(monkeypatch)
    assert len(kept()) == 2 * 8  # last week and this one, every school


def test_it_copies_every_status_change_single_or_bulk(world, monkeypatch):
    newest, middle, _ = world
    unit = SchoolRun.objects.filter(run=newest).first()
    assert unit.claim("task-1")
    SchoolRun.objects.filter(run=middle).update(status=UnitStatus.PENDING)  # as reopen() does
    assert LatestUnit.objects.get(unit=unit).status == UnitStatus.RUNNING
    assert kept() == expected() == worked_out(monkeypatch)


def test_a_cancelled_unit_gives_its_weeks_back_to_the_older_runs(world, monkeypatch):
    newest, middle, _ = world
    before = kept()
    newest.cancel()
    assert kept() != before
    assert not LatestUnit.objects.filter(unit__run=newest).exists()
    assert kept() == expected() == worked_out(monkeypatch)
    middle.cancel()  # failed units stay failed: cancel takes pending and deferred only
    assert kept() == expected()


def test_a_run_whose_creation_or_window_changes_is_worked_out_again(world, monkeypatch):
    newest, _, oldest = world
    CollectionRun.objects.filter(pk=oldest.pk).update(created_at=clock.now())
    assert kept() == expected() == worked_out(monkeypatch)
    CollectionRun.objects.filter(pk=newest.pk).update(date_from=LAST_WEEK)
    assert kept() == expected() == worked_out(monkeypatch)


def test_a_run_created_by_the_pipeline_takes_over_its_schools_weeks(world, monkeypatch):
    run = pipeline.create_run(
        "middle", LAST_WEEK, THIS_WEEK + datetime.timedelta(6), refresh_registry=False, force=True
    )
    assert run.status == RunStatus.PENDING
    assert set(LatestUnit.objects.values_list("unit__run", flat=True)) == {run.pk}
    assert kept() == expected() == worked_out(monkeypatch)


def test_deleted_units_take_their_rows_with_them(world):
    newest, _, _ = world
    SchoolRun.objects.filter(run=newest).delete()
    assert not LatestUnit.objects.filter(unit__run=newest).exists()


def _waits_or_ends(thread: threading.Thread) -> None:
    """Until ``thread`` ended or its statement waits for a row lock another transaction holds."""
    from django.db import connection

    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)


def _in_thread(work, *, held: threading.Event | None = None, release=None) -> threading.Thread:
    """``work`` on a connection of its own; with ``held``, in a transaction kept open (``held``
    set once ``work`` ran) until ``release`` is set."""
    from django.db import connection, transaction

    def run():
        try:
            if held is None:
                work()
                return
            with transaction.atomic():
                work()
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["older finishes", "newer is cancelled"])
def test_a_unit_given_its_weeks_back_keeps_the_status_it_got_meanwhile(schools, first):
    """A newer run's unit cancelled while the older run's unit of the school finishes: whichever
    commits first, the school-week ends with the older unit's status as it was committed."""
    school = schools["M1"]
    older = make_unit(make_run(minutes_ago=100), school, UnitStatus.RUNNING)
    newer = make_unit(make_run(minutes_ago=10), school, UnitStatus.PENDING)

    def finish():
        SchoolRun.objects.filter(pk=older.pk).update(status=UnitStatus.DONE)

    def cancel():
        SchoolRun.objects.filter(pk=newer.pk).update(status=UnitStatus.CANCELLED)

    held, release = threading.Event(), threading.Event()
    hold, other = (finish, cancel) if first == "older finishes" else (cancel, finish)
    holder = _in_thread(hold, held=held, release=release)
    try:
        assert held.wait(10)
        second = _in_thread(other)
        _waits_or_ends(second)  # it must not read what the first has not committed yet
    finally:
        release.set()
        holder.join(10)
    second.join(10)
    assert LatestUnit.objects.get(school=school, monday=THIS_WEEK).unit_id == older.pk
    assert LatestUnit.objects.get(school=school, monday=THIS_WEEK).status == UnitStatus.DONE


def test_units_pruned_give_their_school_weeks_to_the_older_units_kept(world, monkeypatch):
    """Retention keeps an open run's units however old its window: the weeks a pruned newer
    run held go back to them, as working them out from the ledger says."""
    newest, _, _ = world  # the older two are still running
    CollectionRun.objects.filter(pk=newest.pk).update(status=RunStatus.DONE)
    policy = retention.Policy(
        ledger_before=THIS_WEEK + datetime.timedelta(weeks=1), results_before=clock.now()
    )
    units = newest.units.count()
    assert retention.prune(policy, apply=True, batch=2).units == units and units > 2
    assert not newest.units.exists()
    assert kept() == expected() == worked_out(monkeypatch)
    assert LatestUnit.objects.filter(monday=THIS_WEEK).count() == 8


def test_a_one_level_grid_reads_that_levels_runs_for_a_school_whose_level_changed(
    schools, monkeypatch
):
    """The table holds the newest unit of any level; a one-level grid counts only runs of its
    level (and of every level), as it did before the table and still does on SQLite."""
    school, other = schools["M1"], schools["M2"]
    high = make_run(level="high", minutes_ago=100)
    make_unit(high, school, UnitStatus.DONE)
    middle = make_run(minutes_ago=10)  # both were middle schools then
    make_unit(middle, school, UnitStatus.FAILED)
    make_unit(middle, other, UnitStatus.DONE)
    School.objects.filter(pk__in=[school.pk, other.pk]).update(level="high")

    def grids():
        office = console.coverage("high", [THIS_WEEK], office=school.office_id)
        nation = console.coverage("high", [THIS_WEEK]).cell(None, THIS_WEEK)["counts"]
        return office.cells, {state: n for state, n in nation.items() if n}

    with monkeypatch.context() as patch:
        patch.setattr(LatestUnit, "kept", staticmethod(lambda: False))
        worked_out_ = grids()
    assert worked_out_ == ({school.pk: {THIS_WEEK: "done"}}, {"done": 1, "never": 1})
    assert grids() == worked_out_


def test_the_planner_takes_a_windows_school_weeks_at_three_not_a_thousand():
    """The triggers' statements join each unit to its run's school weeks: estimated at
    generate_series's 1,000 rows a run, a bulk write of a few thousand units looked like
    millions of rows and was JIT-compiled on every execution (0.2-1 s for 20 ms of work)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (FORMAT JSON) SELECT w FROM collector_collectionrun r, "
            "LATERAL collector_school_weeks(r.date_from, r.date_to) AS w"
        )
        nodes, todo = [], [cursor.fetchone()[0][0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo += node.get("Plans", [])
    weeks = [node for node in nodes if node.get("Function Name") == "collector_school_weeks"]
    assert [node["Plan Rows"] for node in weeks] == [3]


@pytest.mark.django_db(transaction=True)
def test_a_cancel_and_an_older_units_status_change_do_not_deadlock(schools):
    """Both lock the school's weeks in the table's index order: the status change upserts
    them in that order, and the cancel locks the rows it deletes in it too (in the order it
    happened to read them, it could hold the second week while waiting for the first)."""
    from django.db import connection

    school = schools["M1"]
    older = make_unit(two_weeks_run(minutes_ago=100), school, UnitStatus.RUNNING)
    newer = make_unit(two_weeks_run(minutes_ago=10), school, UnitStatus.PENDING)
    first = LatestUnit.objects.filter(school=school, monday=LAST_WEEK)
    row = first.get()
    first.delete()
    row.pk = None
    row.save()  # stored, and indexed by unit, after the second week's row now
    errors, held, release = [], threading.Event(), threading.Event()

    def caught(work):
        def run():
            try:
                work()
            except Exception as exc:  # the deadlock PostgreSQL breaks
                errors.append(exc)

        return run

    def hold_first_week():
        list(first.select_for_update())

    holder = _in_thread(hold_first_week, held=held, release=release)
    try:
        assert held.wait(10)
        finish = _in_thread(
            caught(lambda: SchoolRun.objects.filter(pk=older.pk).update(status=UnitStatus.DONE))
        )
        _waits_or_ends(finish)
        cancel = _in_thread(
            caught(
                lambda: SchoolRun.objects.filter(pk=newer.pk).update(status=UnitStatus.CANCELLED)
            )
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # both wait for the first week's row
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0] >= 2:
                    break
            time.sleep(0.02)
    finally:
        release.set()
        holder.join(10)
    finish.join(10)
    cancel.join(10)
    assert not errors
    assert set(LatestUnit.objects.values_list("monday", "unit_id", "status")) == {
        (LAST_WEEK, older.pk, UnitStatus.DONE),
        (THIS_WEEK, older.pk, UnitStatus.DONE),
    }
