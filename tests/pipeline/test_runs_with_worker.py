"""Runs collected by a real worker, over Redis, into PostgreSQL, from the simulator over HTTP.

Every test ends by proving that the database equals what the simulated NEIS serves for the
run's schools and window, row for row.
"""

from __future__ import annotations

import datetime
import re
import signal

import pytest
import redis
from django.db.models import Sum
from django_celery_results.models import TaskResult

from collector import limiter, pipeline
from collector.ledger import CollectionRun, RunStatus, UnitStatus
from collector.models import School
from neis_simulator.lessons import EDIT_KINDS
from proj.celery import app
from tests.pipeline.truth import (
    expected_changes,
    expected_feed,
    expected_lessons,
    fed_changes,
    recorded_changes,
    stored_lessons,
)
from tests.processes import AMQP_URL, REDIS_URL, celery_worker, wait_until

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OFFICE = "I10"
WEEK = (datetime.date(2026, 11, 16), datetime.date(2026, 11, 20))


@pytest.fixture
def wired(neis_sim, settings):
    """Point this process and the workers at the simulator; start from empty queues."""
    return _wire(neis_sim, settings)


@pytest.fixture
def revising(neis_sim_factory, settings):
    """``wired``, with a simulator that revises every school-week, some twice, several edits
    at a time, so that every kind of edit happens in one office. No class is uploaded late:
    a late class appearing between the two moments is publication, not an edit."""
    sim = neis_sim_factory(
        revision_rate=1.0, second_revision_rate=0.5, revision_edits=(2, 4), late_class_rate=0.0
    )
    return _wire(sim, settings)


def _wire(neis_sim, settings):
    settings.NEIS_BASE_URL = neis_sim.url
    settings.NEIS_API_KEY = neis_sim.key
    settings.NEIS_LIMITER_URL = REDIS_URL
    settings.NEIS_MAX_CONCURRENCY = 4
    settings.NEIS_MAX_RPS = 200.0
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(f"neis:budget:{limiter.key_id(neis_sim.key)}:*"):
        client.delete(name)
    with app.connection_for_write() as conn:
        for queue in ("neis", "default"):
            conn.default_channel.queue_purge(queue)
    env = {
        "NEIS_BASE_URL": neis_sim.url,
        "NEIS_API_KEY": neis_sim.key,
        "NEIS_LIMITER_URL": REDIS_URL,
        "NEIS_MAX_CONCURRENCY": "4",
        "NEIS_MAX_RPS": "200",
        "NEIS_READ_TIMEOUT": "2",
        "NEIS_RETRY_BACKOFF_MAX": "2",
        "NEIS_MAX_RETRIES": "12",
    }
    return neis_sim, env


def _wait_for_run(run_id: int, timeout: float = 240) -> CollectionRun:
    def closed():
        run = CollectionRun.objects.get(pk=run_id)
        return run if not run.is_open else None

    return wait_until(closed, timeout=timeout, message=f"run {run_id} did not finish")


def _assert_equals_neis(sim, run: CollectionRun) -> dict:
    codes = list(run.units.values_list("school__code", flat=True))
    expected = expected_lessons(sim.world, codes, run.date_from, run.date_to, sim.control.now())
    stored = stored_lessons(codes, run.date_from, run.date_to)
    assert expected, "the window should hold lessons"
    assert stored.keys() - expected.keys() == set()
    assert expected.keys() - stored.keys() == set()
    assert stored == expected
    return expected


def _start(level="middle", window=WEEK, **kwargs) -> CollectionRun:
    run = pipeline.create_run(level, *window, offices=[OFFICE], **kwargs)
    pipeline.dispatch(run)
    return run


def test_it_collects_an_office_exactly(wired, tmp_path):
    sim, env = wired
    with celery_worker(tmp_path, env):
        run = _wait_for_run(_start().pk)

    assert run.status == RunStatus.DONE
    expected = _assert_equals_neis(sim, run)
    statuses = set(run.units.values_list("status", flat=True))
    assert statuses <= {UnitStatus.DONE, UnitStatus.NO_DATA}
    assert run.units_total == School.objects.filter(office_id=OFFICE, level="middle").count() > 0
    assert run.rows_inserted == len(expected)
    assert sim.control.stats()["max_in_flight"] <= 4
    # A collect task stores its outcome once; when it started is the ledger's to say.
    units = run.units.values_list("task_id", "started_at")
    results = dict(TaskResult.objects.values_list("task_id", "date_started"))
    assert all(results[task_id] is None and started for task_id, started in units)


def test_it_survives_transient_faults(wired, tmp_path):
    sim, env = wired
    sim.control.configure(hang_seconds=5)
    sim.control.set_faults(
        rate=0.2,
        kinds=["http500", "http503", "maintenance", "hang", "drop", "error500", "truncated"],
    )
    with celery_worker(tmp_path, env, concurrency=4):
        run = _wait_for_run(_start().pk, timeout=400)
    sim.control.clear_faults()

    assert run.status == RunStatus.DONE, list(run.units.values("status", "last_error"))
    _assert_equals_neis(sim, run)
    assert set(run.units.values_list("status", flat=True)) <= {"done", "no_data"}
    assert run.units.aggregate(n=Sum("retries"))["n"] > 0


def test_it_defers_on_a_spent_quota_and_finishes_after_the_reset(wired, tmp_path):
    sim, env = wired
    run = pipeline.create_run("middle", *WEEK, offices=[OFFICE])  # registry sync spends quota
    sim.control.reset_quota()
    sim.control.set_quota(max(1, run.units_total // 2))
    pipeline.dispatch(run)
    with celery_worker(tmp_path, env):
        wait_until(
            lambda: not run.units.filter(status__in=["pending", "running"]).exists(), timeout=120
        )
        deferred = run.units.filter(status=UnitStatus.DEFERRED).count()
        assert deferred > 0
        assert run.units.filter(status=UnitStatus.DEFERRED, last_error_code="ERROR-337").exists()
        # Nothing hammered: only requests already in flight when the quota ran out may follow.
        after = sum(sim.control.stats()["after_337"].values())
        assert after <= 4

        sim.control.set_quota(10_000)
        sim.control.reset_quota()  # the simulated midnight reset
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        assert pipeline.resume_deferred(now=later) == deferred
        run = _wait_for_run(run.pk)

    assert run.status == RunStatus.DONE
    _assert_equals_neis(sim, run)


def test_it_loses_nothing_when_the_worker_is_killed(wired, tmp_path):
    sim, env = wired
    sim.control.configure(latency_ms=150)
    short = {**env, "BROKER_VISIBILITY_TIMEOUT": "10", "CELERY_TASK_TIME_LIMIT": "8",
             "CELERY_TASK_SOFT_TIME_LIMIT": "6", "NEIS_REQUEST_DEADLINE": "4",
             # A unit the killed worker held is claimed again once its lease runs out.
             "NEIS_LEASE_SECONDS": "6"}  # fmt: skip
    run = _start(level="elementary")
    with celery_worker(tmp_path, short, concurrency=2) as worker:
        wait_until(lambda: run.units.filter(status=UnitStatus.DONE).count() >= 2, timeout=120)
        worker.kill(signal.SIGKILL)
        worker.popen.wait(10)
    assert run.units.exclude(status__in=["done", "no_data"]).exists()
    sim.control.configure(latency_ms=0)
    with celery_worker(tmp_path, short, concurrency=2):
        # The killed worker's messages come back within a restore sweep (10 s) of their
        # visibility timeout; kombu's default throttle made that up to 100 s.
        run = _wait_for_run(run.pk, timeout=75)

    assert run.status == RunStatus.DONE
    expected = _assert_equals_neis(sim, run)
    # Done once in effect: every lesson was inserted by exactly one unit's transaction.
    assert run.units.aggregate(n=Sum("rows_inserted"))["n"] == len(expected)


def test_it_collects_with_rabbitmq_as_the_broker(wired, tmp_path):
    """The product path end to end: a start_run message fans out inside the worker."""
    from collector.tasks import start_run

    sim, env = wired
    with celery_worker(tmp_path, {**env, "CELERY_BROKER_URL": AMQP_URL}):
        with app.connection_for_write(AMQP_URL) as conn:
            for queue in ("neis", "default"):
                conn.default_channel.queue_purge(queue)
            start_run.apply_async(
                args=["middle", *(day.isoformat() for day in WEEK)],
                kwargs={"offices": [OFFICE]},
                connection=conn,
            )
        run_id = wait_until(
            lambda: CollectionRun.objects.values_list("pk", flat=True).first(), timeout=60
        )
        run = _wait_for_run(run_id)
    assert run.status == RunStatus.DONE
    _assert_equals_neis(sim, run)


def _revised_week(sim, codes):
    """A (before, after) pair of clock times between which some schools' week changes."""
    monday = WEEK[0]
    for code in codes:
        times = sim.world.publications(code, monday)
        if len(times) >= 2:
            return times[0] + datetime.timedelta(minutes=1), times[-1] + datetime.timedelta(
                minutes=1
            )
    pytest.fail("no school in the office has a revised week")


def _codes(level: str) -> list[str]:
    pipeline.create_run(level, *WEEK, offices=[OFFICE]).delete()  # sync the registry
    return list(School.objects.filter(office_id=OFFICE, level=level).values_list("code", flat=True))


def _collect_twice(sim, env, tmp_path, level, before, after):
    """Collect the week as NEIS served it at ``before``, then at ``after``; check the second
    run's counts and its recorded history against the difference, lesson for lesson."""
    codes = list(
        School.objects.filter(office_id=OFFICE, level=level).values_list("code", flat=True)
    )
    with celery_worker(tmp_path, env):
        sim.control.set_clock(before)
        first = _wait_for_run(_start(level=level).pk)
        old = expected_lessons(sim.world, codes, *WEEK, before)
        sim.control.set_clock(after)
        second = _wait_for_run(_start(level=level).pk)
    new = _assert_equals_neis(sim, second)

    assert first.status == second.status == RunStatus.DONE
    inserted = new.keys() - old.keys()
    removed = old.keys() - new.keys()
    updated = {key for key in new.keys() & old.keys() if new[key][:3] != old[key][:3]}
    assert inserted or removed or updated
    assert second.rows_inserted == len(inserted)
    assert second.rows_removed == len(removed)
    assert second.rows_updated == len(updated)
    # The history of the second run is exactly the difference NEIS made, no more, no less.
    changes = expected_changes(old, new)
    assert changes and recorded_changes(second.pk) == changes
    assert {kind for kind, *_ in recorded_changes(first.pk)} == {"baseline"}
    return codes, second


def test_it_applies_a_changed_timetable_exactly(wired, tmp_path):
    sim, env = wired
    codes = _codes("elementary")
    _collect_twice(sim, env, tmp_path, "elementary", *_revised_week(sim, codes))


def _busiest_moments(world, codes):
    """(before, after): after every publication of the week, and before the moment that
    leaves the most kinds of edit (then the most edits) between the two."""
    monday, friday = WEEK
    times = [t for code in codes for t in world.publications(code, monday)]
    after = max(times) + datetime.timedelta(minutes=1)

    def score(before):
        edits = [
            e for c in codes for e in world.edits(c, monday, friday, since=before, until=after)
        ]
        return len({edit.kind for edit in edits}), len(edits)

    return max((t + datetime.timedelta(minutes=1) for t in times), key=score), after


def test_its_history_and_feed_equal_the_edits_neis_made(revising, tmp_path):
    """High schools of one office, every week revised: subject swaps, cancelled and added
    periods, classroom moves, reloaded and removed days all between the two runs; the feed
    shows each edit exactly as the simulator made it."""
    sim, env = revising
    codes = _codes("high")
    before, after = _busiest_moments(sim.world, codes)
    edits = [e for c in codes for e in sim.world.edits(c, *WEEK, since=before, until=after)]
    assert {edit.kind for edit in edits} == set(EDIT_KINDS)

    codes, second = _collect_twice(sim, env, tmp_path, "high", before, after)

    expected = expected_feed(sim.world, codes, *WEEK, before, after)
    assert fed_changes(second.pk) == expected
    assert {change[0] for change in expected} == {
        "swapped",
        "added",
        "removed",
        "reloaded",
        "day_removed",
    }
    assert any(" -> " in change[6] for change in expected if change[0] == "swapped")


def test_a_plain_worker_consumes_the_collect_queue(wired, tmp_path):
    """`celery -A proj worker` with no -Q, as the README's first lines run it."""
    sim, env = wired
    with celery_worker(tmp_path, env, queues=None) as worker:
        run = _wait_for_run(_start().pk, timeout=120)
        log = worker.output()
    assert "neis" in log.split("[queues]")[1].split("[tasks]")[0]
    assert run.status == RunStatus.DONE
    _assert_equals_neis(sim, run)


def test_settings_govern_retries_and_the_ledger_keeps_the_neis_code(wired, tmp_path):
    """NEIS_MAX_RETRIES, NEIS_RETRY_WINDOW_SECONDS and NEIS_RETRY_BACKOFF_* reach the worker's
    retries, and when they run out the unit records ERROR-500 with its message, not an
    exception wrapper."""
    sim, env = wired
    school = School.objects.filter(office_id=OFFICE, level="middle").order_by("code").first()
    if school is None:
        pipeline.create_run("middle", *WEEK, offices=[OFFICE]).delete()  # sync the registry
        school = School.objects.filter(office_id=OFFICE, level="middle").order_by("code")[0]
    run = pipeline.create_run("middle", *WEEK, school_codes=[school.code])
    sim.control.set_faults(rate=1.0, kinds=["error500"])
    policy = {"NEIS_MAX_RETRIES": "5", "NEIS_RETRY_BACKOFF_BASE": "0.5",
              "NEIS_RETRY_BACKOFF_MAX": "1", "NEIS_RETRY_WINDOW_SECONDS": "0"}  # fmt: skip
    try:
        with celery_worker(tmp_path, {**env, **policy}) as worker:
            pipeline.dispatch(run)
            run = _wait_for_run(run.pk, timeout=120)
            log = worker.output()
    finally:
        sim.control.clear_faults()

    unit = run.units.get()
    assert (run.status, unit.status, unit.last_error_code) == ("partial", "failed", "ERROR-500")
    assert unit.last_error.startswith("ERROR-500: ")
    assert "Unpickleable" not in unit.last_error
    assert (unit.attempts, unit.retries) == (6, 5)  # the sixth failure is not retried
    countdowns = [float(s) for s in re.findall(r"retry: Retry in ([0-9.]+)s", log)]
    assert len(countdowns) == 5
    assert max(countdowns) <= 1.0  # NEIS_RETRY_BACKOFF_MAX, not the 300 s once frozen in code
