"""manage.py quota_plan and the backfill dry run's days of quota (collector.planning)."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command

from collector import pipeline, quota
from collector.limiter import key_id
from collector.models import School

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget", "fresh_caps")]

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)


@pytest.fixture
def registry(neis_sim, settings):
    settings.NEIS_BASE_URL, settings.NEIS_API_KEY = neis_sim.url, neis_sim.key
    settings.NEIS_API_KEYS = (neis_sim.key, "second-key")
    settings.NEIS_QUOTA_MARGIN_PERCENT = 0
    pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"]).delete()  # sync the registry
    call_command("setup_schedules", stdout=io.StringIO())
    return neis_sim


def _call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_plans_the_weekly_runs_against_every_keys_budget(registry, settings):
    settings.NEIS_DAILY_QUOTA = 100_000
    middle = School.objects.filter(level="middle", active=True).count()
    out = _call("quota_plan", "--days", "8")
    assert f"  {key_id(registry.key)}: cap 100,000 (configured (NEIS_DAILY_QUOTA))" in out
    assert "  all keys: 200,000 requests a day" in out
    # No history yet: a middle school's three weeks are ~1,800 rows, two pages.
    assert (
        f"collect-middle-weekly: {middle:,} schools x 2.00 requests for 3 weeks (estimate) = "
        f"{2 * middle:,}; done Sat 2026-11-28"
    ) in out
    assert out.rstrip().endswith(
        "Fits: yes, every schedule's work within its own day.\n"
        "Refresh: its full work fits on every day it fires."
    )

    settings.NEIS_DAILY_QUOTA = 10
    quota.QuotaDay.objects.create(key_id=key_id("second-key"), day=MONDAY, observed_cap=5)
    out = _call("quota_plan", "--days", "8")
    assert f"  {key_id('second-key')}: cap 5 (observed)" in out
    assert "  all keys: 15 requests a day" in out
    assert "  middle: not within the plan (its work does not fit)" in out
    assert "Fits: no;" in out


def test_the_plan_takes_a_schools_cost_from_the_ledgers_history(registry, settings):
    settings.NEIS_API_KEYS = (registry.key,)
    run = pipeline.run_in_process(pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"]))
    done = list(run.units.filter(status="done").values_list("requests", flat=True))
    per_week = sum(done) / (len(done) * 5 / 7)  # the window was five days
    out = _call("quota_plan", "--days", "8")
    assert f"x {max(1.0, per_week * 3):.2f} requests for 3 weeks (history)" in out


def test_a_dry_run_says_how_many_days_of_quota_it_takes(registry, settings):
    settings.NEIS_DAILY_QUOTA = 20
    middle = School.objects.filter(office_id="I10", level="middle", active=True).count()
    out = _call(
        "backfill_timetables", "--level", "middle", "--office", "I10",
        "--from", "2026-11-09", "--to", "2026-11-29", "--dry-run",
    )  # fmt: skip
    assert f"Estimated: {2 * middle} NEIS requests" in out
    days = -(-2 * middle // 40)
    assert f"Quota: {days} days of the 2 configured keys (40 requests a day" in out


def test_the_admin_page_shows_the_plan_and_the_console_links_it(registry, admin_client):
    from django.urls import reverse

    url = reverse("collector_quota_plan")
    page = admin_client.get(url).content.decode()
    assert "all keys: 20,000 requests a day" in page and "collect-middle-weekly" in page
    assert url in admin_client.get(reverse("admin:index")).content.decode()
