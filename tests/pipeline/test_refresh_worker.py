"""The refresh schedule's task on a real worker, with a day's budget smaller than its work:
it covers the current week first, and of the next week only its highest-value schools."""

from __future__ import annotations

import datetime

import pytest
import redis

from collector import clock, limiter, pipeline, quota
from collector.completeness import SchoolWeek
from collector.ledger import CollectionRun, RunStatus, UnitStatus
from collector.models import School
from proj.celery import app
from tests.processes import REDIS_URL, celery_worker, wait_until

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The test clock is Saturday 2026-11-21: its school week is the current one.
CURRENT, NEXT = datetime.date(2026, 11, 16), datetime.date(2026, 11, 23)


def test_a_refresh_with_a_budget_smaller_than_its_work_covers_the_current_week_first(
    neis_sim_factory, settings, tmp_path
):
    sim = neis_sim_factory()
    settings.NEIS_BASE_URL, settings.NEIS_LIMITER_URL = sim.url, REDIS_URL
    settings.NEIS_API_KEY, settings.NEIS_API_KEYS = sim.key, (sim.key,)
    pipeline.create_run("middle", CURRENT, NEXT, offices=["I10"]).delete()  # sync the registry
    schools = list(School.objects.filter(level="middle", active=True).order_by("code"))
    partial = schools[-1]  # last by code: only its value can move it up
    SchoolWeek.objects.create(
        school=partial, monday=NEXT, lessons=100, classes_expected=10, classes_seen=6,
        days_expected=5, days_seen=5, partial=True, computed_at=clock.now(),
    )  # fmt: skip
    # A new quota day: nothing spent yet with the key.
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(f"neis:budget:{limiter.key_id(sim.key)}:*"):
        client.delete(name)
    quota.forget_cached_caps()
    with app.connection_for_write() as conn:
        for queue in ("neis", "default"):
            conn.default_channel.queue_purge(queue)
    before = sim.control.stats()["requests"]
    # The current week (a page a school, by the rows estimate) and three of the next week's.
    budget = len(schools) + 3
    env = {
        "NEIS_BASE_URL": sim.url,
        "NEIS_API_KEY": sim.key,
        "NEIS_LIMITER_URL": REDIS_URL,
        "NEIS_DAILY_QUOTA": str(budget),
        "NEIS_QUOTA_MARGIN_PERCENT": "0",
        "NEIS_MAX_RPS": "200",
    }
    with celery_worker(tmp_path, env, concurrency=2) as worker:
        app.send_task("collector.start_refresh", kwargs={"level": "middle"})

        def closed():
            runs = list(CollectionRun.objects.order_by("pk"))
            return runs if len(runs) == 2 and not any(run.is_open for run in runs) else None

        current, coming = wait_until(closed, timeout=240, message="the refresh did not finish")
        log = worker.output()

    assert "SHORT of a full refresh" in log  # said before it started, in the worker's log
    assert (current.date_from, current.date_to) == (CURRENT, CURRENT + datetime.timedelta(6))
    assert coming.date_from == NEXT
    assert current.status == coming.status == RunStatus.DONE
    settled = (UnitStatus.DONE, UnitStatus.NO_DATA)
    assert current.units.filter(status__in=settled).count() == len(schools)
    # Of the next week, the partial school-week first, then the first schools by code.
    assert sorted(coming.units.values_list("school__code", flat=True)) == sorted(
        [partial.code, schools[0].code, schools[1].code]
    )
    assert "SHORT of a full refresh" in current.note and current.note == coming.note
    # No request went to the next week's other schools.
    spent = sim.control.stats()["requests"] - before
    assert spent == current.requests + coming.requests
