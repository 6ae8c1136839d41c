"""Each key's quota as observed: requests per quota day and the cap at the first ERROR-337,
kept in the database (collector.quota) and read by plans and the console."""

from __future__ import annotations

import datetime

import pytest

from collector import clock, pipeline, quota
from collector.ledger import UnitStatus
from collector.limiter import budget_from_settings, key_id

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget", "fresh_caps")]

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)


def _spend(budget, n):
    for _ in range(n):
        with budget.slot():
            pass


def test_it_copies_the_days_counts_and_cap_into_the_history(settings):
    settings.NEIS_API_KEY = "k" * 32
    budget = budget_from_settings()
    _spend(budget, 7)
    assert quota.flush() == 1
    row = quota.QuotaDay.objects.get()
    assert (row.key_id, row.day, row.requests, row.observed_cap) == (
        key_id("k" * 32),
        clock.today(),
        7,
        None,
    )
    budget.note_quota_hit()  # the seventh request was refused
    _spend(budget, 2)
    assert quota.flush() == 1
    row.refresh_from_db()
    assert (row.requests, row.observed_cap) == (9, 6)
    assert row.capped_at is not None
    assert quota.flush() == 0  # nothing new: nothing written


def test_plans_use_the_lowest_recent_cap_less_the_margin_or_the_configured_quota(settings):
    settings.NEIS_DAILY_QUOTA, settings.NEIS_QUOTA_MARGIN_PERCENT = 1000, 10
    today = clock.today()
    for days_ago, cap in ((1, 900), (3, 800), (20, 100)):  # 20 days ago: too old to count
        quota.QuotaDay.objects.create(
            key_id="aaa", day=today - datetime.timedelta(days=days_ago), observed_cap=cap
        )
    quota.QuotaDay.objects.create(key_id="bbb", day=today, requests=50)
    plans = quota.plan_for(["aaa", "bbb"], today)
    assert [(p.key, p.cap, p.observed, p.budget) for p in plans] == [
        ("aaa", 800, True, 720),
        ("bbb", 1000, False, 900),
    ]


def test_the_observed_cap_equals_the_simulators_quota(neis_sim, settings):
    settings.NEIS_BASE_URL, settings.NEIS_API_KEY = neis_sim.url, neis_sim.key
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])  # syncs the registry
    neis_sim.control.reset_quota()
    neis_sim.control.set_quota(5)
    # The next quota day for both (the registry's requests counted on this one).
    with clock.pinned(clock.now() + datetime.timedelta(days=1)):
        run = pipeline.run_in_process(run)
        tomorrow = clock.today()

    assert run.units.filter(status=UnitStatus.DEFERRED, last_error_code="ERROR-337").exists()
    row = quota.QuotaDay.objects.get(key_id=key_id(neis_sim.key), day=tomorrow)
    assert row.observed_cap == 5
    assert row.requests == neis_sim.control.quota_used(neis_sim.key) + 1  # and the refused one
    assert quota.plan_for([row.key_id], tomorrow)[0].cap == 5


def test_the_console_shows_each_keys_requests_today_against_its_budget(settings):
    settings.NEIS_API_KEY = "c" * 32
    settings.NEIS_DAILY_QUOTA, settings.NEIS_QUOTA_MARGIN_PERCENT = 200, 5
    _spend(budget_from_settings(), 3)
    from collector import console

    [state] = console.quota()
    assert (state.key, state.requests_today, state.plan.budget, state.left_today) == (
        key_id("c" * 32),
        3,
        190,
        187,
    )
    assert state.plan.source == "configured (NEIS_DAILY_QUOTA)"
