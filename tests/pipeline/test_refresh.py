"""The refresh of the current and next school week (collector.planning): school-weeks in order
of value, only what the day's budget leaves after committed work, and a plan that says so
before it starts when that is not all of them."""

from __future__ import annotations

import datetime
import io
import logging

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.urls import reverse

from collector import clock, pipeline, planning
from collector.completeness import SchoolWeek
from collector.ledger import CollectionRun
from collector.limiter import budget_from_settings
from collector.models import ChangeKind, LessonChange, School
from collector.storage import ensure_partitions

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget", "fresh_caps")]

TODAY = datetime.date(2026, 11, 18)  # a Wednesday
CURRENT, NEXT = datetime.date(2026, 11, 16), datetime.date(2026, 11, 23)


@pytest.fixture
def registry(neis_sim, settings):
    """I10's middle schools in the registry; a budget of its own (nothing spent today)."""
    settings.NEIS_BASE_URL, settings.NEIS_API_KEY = neis_sim.url, neis_sim.key
    settings.NEIS_QUOTA_MARGIN_PERCENT = 0
    pipeline.create_run("middle", CURRENT, NEXT, offices=["I10"]).delete()  # sync the registry
    settings.VAR_DIR = settings.VAR_DIR / "today"  # a fresh budget: the sync spent requests
    return list(School.objects.filter(level="middle", active=True).order_by("code"))


def _partial(school, monday):
    SchoolWeek.objects.create(
        school=school, monday=monday, lessons=100, classes_expected=10, classes_seen=7,
        days_expected=5, days_seen=5, partial=True, computed_at=clock.now(),
    )  # fmt: skip


def _changed(school, day):
    ensure_partitions(day, day)
    LessonChange.objects.create(
        observed_at=clock.now(), school=school, date=day, kind=ChangeKind.ADDED, lessons=1
    )


def _budget(left: int) -> planning.DayBudget:
    return planning.DayBudget((planning.KeyDay("k", left, 0),), 0)


def test_the_weeks_go_current_first_then_coming_then_past():
    assert planning.weeks_by_value(TODAY, weeks_before=1, weeks_after=2) == [
        CURRENT,
        NEXT,
        NEXT + datetime.timedelta(weeks=1),
        CURRENT - datetime.timedelta(weeks=1),
    ]


def test_partial_school_weeks_come_first_then_changed_schools_then_the_rest(registry):
    first, second, *rest = registry
    partial, changed = rest[-1], rest[-2]  # last by code: only their value moves them up
    _partial(partial, CURRENT)
    _changed(changed, CURRENT + datetime.timedelta(days=1))
    _changed(second, CURRENT - datetime.timedelta(weeks=8))  # too long ago to count

    ordered = planning.by_value(School.objects.filter(level="middle"), CURRENT)
    codes = list(ordered.values_list("code", flat=True))
    assert codes[:4] == [partial.code, changed.code, first.code, second.code]

    plan = planning.plan_refresh("middle", today=TODAY, budget=_budget(10**6))
    assert plan.full and plan.weeks == [CURRENT, NEXT]
    assert [item.monday for item in plan.items] == [CURRENT] * len(registry) + [NEXT] * len(
        registry
    )
    assert [(i.code, i.reason) for i in plan.items[:3]] == [
        (partial.code, "partial"),
        (changed.code, "changed"),
        (first.code, "steady"),
    ]
    # Next week: not partial there, but the school that changed still counts as changing.
    assert (plan.items[len(registry)].code, plan.items[len(registry)].reason) == (
        changed.code,
        "changed",
    )


def test_the_refresh_spends_only_what_is_left_after_spent_and_committed_work(registry, settings):
    settings.NEIS_DAILY_QUOTA = 1000
    for _ in range(30):  # requests already started today with the key
        with budget_from_settings().slot():
            pass
    open_run = pipeline.create_run(  # not sent: its schools still need their requests
        "middle", CURRENT - datetime.timedelta(weeks=4), CURRENT - datetime.timedelta(days=22),
        offices=["I10"], refresh_registry=False,
    )  # fmt: skip
    left = planning.budget_left(TODAY)
    assert left.committed == open_run.units_total  # a middle school's week: one page
    assert left.left == 1000 - 30 - open_run.units_total
    plan = planning.plan_refresh("middle", today=TODAY)
    assert plan.fits == min(len(plan.items), left.left)


def test_max_requests_caps_the_refresh_below_what_the_day_leaves(registry):
    plan = planning.plan_refresh("middle", today=TODAY, budget=_budget(10**6), max_requests=5)
    assert plan.fits == 5 and plan.spends == 5 and not plan.full
    assert "Capped at 5 requests (max_requests)" in plan.note()
    roomy = planning.plan_refresh("middle", today=TODAY, budget=_budget(10**6), max_requests=10**6)
    assert roomy.full and roomy.cap is None  # a cap above what is left changes nothing
    for bad in (0, -3, 2.5, "9", True):
        with pytest.raises(pipeline.PipelineError, match="max_requests must be a whole number"):
            planning.plan_refresh("middle", today=TODAY, budget=_budget(10), max_requests=bad)


def test_a_short_refresh_says_so_before_it_starts_and_covers_the_current_week_first(
    registry, settings, caplog, admin_client
):
    settings.NEIS_DAILY_QUOTA = len(registry) + 2
    partial = registry[-1]
    _partial(partial, NEXT)
    sent, said = [], []

    def send(unit_id, expires):
        said.append(any("SHORT" in r.getMessage() for r in caplog.records))
        sent.append(unit_id)

    with caplog.at_level(logging.WARNING, logger="collector.planning"):
        result = planning.start_refresh("middle", today=TODAY, send=send)

    assert not result["full"] and result["school_weeks"] == len(registry) + 2
    assert said and all(said)  # the warning came before the first message was sent
    current, coming = CollectionRun.objects.order_by("pk")
    assert (current.date_from, coming.date_from) == (CURRENT, NEXT)
    assert current.units_total == len(registry) and current.school_codes == []
    # The next week: its partial school-week first, then the first by code.
    assert coming.school_codes == sorted([partial.code, registry[0].code])
    assert set(sent[: len(registry)]) == set(current.units.values_list("pk", flat=True))
    for run in (current, coming):
        assert "SHORT of a full refresh" in run.note
        assert f"the next week 2 of {len(registry)} (partial 1 of 1, steady 1 of" in run.note
    assert result["note"] == current.note
    page = admin_client.get(reverse("admin:collector_collectionrun_change", args=[coming.pk]))
    assert "SHORT of a full refresh" in page.content.decode()  # the console shows the note

    again = planning.start_refresh("middle", today=TODAY, send=send)
    assert again["refused"] and again["run"] == current.pk
    assert CollectionRun.objects.count() == 2


def test_the_quota_plan_says_what_the_refresh_covers(registry, settings):
    n = School.objects.filter(active=True).exclude(level="").count()  # every level of I10
    settings.NEIS_DAILY_QUOTA = n + 5
    call_command("setup_schedules", stdout=io.StringIO())
    out = io.StringIO()
    with clock.pinned(datetime.datetime(2026, 11, 18, 9, tzinfo=clock.SEOUL)):
        call_command("quota_plan", "--days", "3", stdout=out)
    text = out.getvalue()
    assert (
        f"Wed 2026-11-18 refresh-current-weeks: {n:,} schools x 2.00 requests for 2 weeks "
        f"(estimate) = {2 * n:,}; {n + 5:,} left after committed work: covers the current week "
        f"{n:,} of {n:,} school-weeks, the next week 5 of {n:,} school-weeks"
    ) in text
    assert "Refresh: short of its full work on 3 of 3 day(s)" in text


def test_the_plan_gives_the_refresh_only_what_the_weekly_runs_leave(registry, settings):
    settings.NEIS_DAILY_QUOTA = 150  # the Saturday runs of I10 need more than two days' worth
    call_command("setup_schedules", stdout=io.StringIO())
    days = {day.day: day for day in planning.forecast(8, today=TODAY).days}
    saturday, sunday, monday = (days[NEXT - datetime.timedelta(days=n)] for n in (2, 1, 0))
    assert saturday.refresh == sunday.refresh == 0  # it does not fire at weekends
    assert saturday.waiting > 150 and sunday.waiting > 0
    # Monday: the weekly runs' last requests first, the refresh the rest of the day.
    assert monday.spent == sunday.waiting and monday.waiting == 0
    assert monday.refresh == 150 - monday.spent


def test_a_refresh_whose_later_week_fails_to_start_leaves_no_run_behind(registry, monkeypatch):
    """All its weeks' runs or none: a run left pending unsent would hold its schools as busy
    for every later run of the week, and the next firing would be refused as started."""
    create, calls = pipeline.create_run, []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OperationalError("the database went away")
        return create(*args, **kwargs)

    monkeypatch.setattr(pipeline, "create_run", failing)
    sent = []
    with pytest.raises(OperationalError):
        planning.start_refresh("middle", today=TODAY, send=lambda unit, expires: sent.append(unit))
    assert not CollectionRun.objects.exists() and not sent

    monkeypatch.setattr(pipeline, "create_run", create)
    again = planning.start_refresh("middle", today=TODAY, send=lambda u, e: sent.append(u))
    assert not again.get("refused") and len(again["runs"]) == 2


def test_a_refresh_whose_sending_fails_is_finished_by_the_watchdog(registry):
    """Its runs start with their creation: a send cut short leaves the later week's units to
    the watchdog (a running run's unsent units), not pending in a run nothing looks at."""

    def broken(unit_id, expires):
        raise OSError("broker unreachable")

    with pytest.raises(OSError):
        planning.start_refresh("middle", today=TODAY, send=broken)
    current, coming = CollectionRun.objects.order_by("pk")
    sent = []
    pipeline.requeue_stuck(send=lambda unit, expires: sent.append(unit), waiting=lambda: None)
    assert set(coming.units.values_list("pk", flat=True)) <= set(sent)
