"""Partial school-weeks, exactly as the simulator's ground truth has them (real HTTP hub).

classInfo and SchoolSchedule are asked through ``refresh_calendars`` and timetables through a
real run (``run_in_process``), on PostgreSQL and on SQLite. The truth is ``World.week_truth``:
classes the world lists and days its calendar has lessons, against what it serves as of the
clock. When the clock passes the late classes' upload, a new collection completes the weeks.
"""

from __future__ import annotations

import contextlib
import datetime
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from collector import clock, console, pipeline, registry
from collector.completeness import SchoolDayOff, SchoolWeek, refresh_calendars, school_weeks
from collector.limiter import budget_from_settings
from collector.models import School
from collector.neis.client import NeisClient

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget")]

WINDOW = (datetime.date(2026, 11, 9), datetime.date(2026, 11, 29))  # the pinned clock's 3 weeks
HOLIDAYS_WEEK = datetime.date(2026, 10, 5)  # 대체공휴일 on Monday, 한글날 on Friday
LEVEL = {"els": "elementary", "mis": "middle", "his": "high", "sps": "special"}


@pytest.fixture
def sim(neis_sim, settings):
    settings.NEIS_BASE_URL = neis_sim.url
    settings.NEIS_API_KEY = neis_sim.key
    registry.sync_school_registry(NeisClient.from_settings(), offices=["I10"])
    return neis_sim


def _pick(world, now, mondays, partial: int, complete: int) -> list:
    """Schools of I10 with a partial week among ``mondays`` (as of ``now``), then others."""
    with_partial, others = [], []
    for school in world.schools(office="I10"):
        if school.level is None:
            continue
        truths = [world.week_truth(school.code, m, as_of=now) for m in mondays]
        if any(t.partial for t in truths):
            with_partial.append(school)
        elif any(t.published for t in truths):
            others.append(school)
    assert len(with_partial) >= partial, "the world has too few partial weeks in I10"
    return with_partial[:partial] + others[:complete]


def _collect(codes: list[str], window, levels: set[str]) -> None:
    for level in sorted(levels):
        chosen = [c for c in codes if School.objects.get(code=c).level == level]
        if chosen:
            run = pipeline.create_run(level, *window, school_codes=chosen, refresh_registry=False)
            pipeline.run_in_process(run)


def _observed(codes, mondays) -> dict:
    weeks = SchoolWeek.objects.filter(school__code__in=codes, monday__in=mondays)
    return {
        (w.school.code, w.monday): (
            w.classes_expected,
            w.classes_seen,
            w.days_expected,
            w.days_seen,
            w.partial,
        )
        for w in weeks.select_related("school")
    }


def _truth(world, codes, mondays, now) -> dict:
    out = {}
    for code in codes:
        for monday in mondays:
            t = world.week_truth(code, monday, as_of=now)
            out[(code, monday)] = (
                t.classes_expected,
                t.classes_with_lessons,
                len(t.days_expected),
                len(t.days_with_lessons),
                t.partial,
            )
    return out


def _shown(admin_client, partial, mondays) -> None:
    """The coverage grid (one office and the nation), its page, and collection_status."""
    codes = dict(School.objects.values_list("pk", "code"))
    by_office = console.coverage("all", mondays, "I10")
    cells = {
        (codes[pk], monday)
        for pk, states in by_office.cells.items()
        for monday, state in states.items()
        if state == "partial"
    }
    assert cells == partial
    nation = console.coverage("all", mondays)
    assert [nation.cell(None, m)["counts"]["partial"] for m in mondays] == [
        sum(1 for _, week in partial if week == m) for m in mondays
    ]
    page = admin_client.get(reverse("collector_coverage"), {"office": "I10"})
    assert page.status_code == 200
    assert page.content.decode().count('<td class="cell partial"') == len(partial)
    listed = admin_client.get(reverse("admin:collector_schoolweek_changelist"), {"partial": 1})
    assert listed.status_code == 200
    for monday in mondays:
        out = io.StringIO()
        with contextlib.suppress(SystemExit):  # its exit code says open or failed schools
            call_command("collection_status", "--level", "all", "--week", str(monday), stdout=out)
        week = sorted(code for code, m in partial if m == monday)
        if week:
            assert f"Partial: {len(week)} school-weeks" in out.getvalue()
            assert all(code in out.getvalue() for code in week)
        else:
            assert "every school-week with lessons has all its classes and days" in out.getvalue()


def test_partial_weeks_match_the_truth_and_complete_once_published(sim, admin_client):
    world, now = sim.world, sim.control.now()
    mondays = school_weeks(*WINDOW)
    schools = _pick(world, now, mondays, partial=3, complete=3)
    codes = [s.code for s in schools]
    stored = School.objects.filter(code__in=codes)
    client = NeisClient.from_settings()
    done = refresh_calendars(client, stored)
    assert (done.schools, done.classes, done.schedules) == (6, 6, 6)
    assert done.requests == 12  # one page each: a school year of classes, a semester of days

    _collect(codes, WINDOW, {LEVEL[s.level] for s in schools})
    truth = _truth(world, codes, mondays, now)
    assert _observed(codes, mondays) == truth
    partial = {key for key, counts in truth.items() if counts[-1]}
    assert partial and len(partial) < len(truth)
    assert set(SchoolWeek.objects.partial().values_list("school__code", "monday")) == partial
    _shown(admin_client, partial, mondays)

    later = max(world.week_truth(c, m, as_of=now).late_until for c, m in partial)
    sim.control.set_clock(later)
    with clock.pinned(later):
        # Nothing is due again within the semester: the calendars are not asked twice.
        assert refresh_calendars(client, stored).requests == 0
        _collect(codes, WINDOW, {LEVEL[s.level] for s in schools})
        truth_later = _truth(world, codes, mondays, later)
        assert _observed(codes, mondays) == truth_later
    for key in partial:
        assert not truth_later[key][-1]
    assert not set(SchoolWeek.objects.partial().values_list("school__code", "monday")) & partial
    _shown(admin_client, {key for key, counts in truth_later.items() if counts[-1]}, mondays)


def test_a_holiday_is_not_a_missing_day(sim):
    world, now = sim.world, sim.control.now()
    schools = [
        s
        for s in world.schools(office="I10", level="mis")
        if world.week_truth(s.code, HOLIDAYS_WEEK, as_of=now).published
    ][:4]
    codes = [s.code for s in schools]
    refresh_calendars(NeisClient.from_settings(), School.objects.filter(code__in=codes))
    week = (HOLIDAYS_WEEK, HOLIDAYS_WEEK + datetime.timedelta(days=4))
    _collect(codes, week, {"middle"})
    observed = _observed(codes, [HOLIDAYS_WEEK])
    assert observed == _truth(world, codes, [HOLIDAYS_WEEK], now)
    for code in codes:
        classes, seen, days_expected, days_seen, partial = observed[(code, HOLIDAYS_WEEK)]
        assert days_expected == days_seen <= 3  # Monday and Friday are public holidays
        assert not partial
        off = set(SchoolDayOff.objects.filter(school__code=code).values_list("date", flat=True))
        assert {week[0], week[1]} <= off


def test_nothing_known_is_not_partial(sim):
    """Before classInfo and SchoolSchedule are stored, expectations are unknown, not zero."""
    world, now = sim.world, sim.control.now()
    mondays = school_weeks(*WINDOW)
    schools = _pick(world, now, mondays, partial=2, complete=0)
    _collect([s.code for s in schools], WINDOW, {LEVEL[s.level] for s in schools})
    weeks = SchoolWeek.objects.filter(school__code__in=[s.code for s in schools])
    assert weeks.filter(lessons__gt=0).exists()
    assert not weeks.filter(partial=True).exists()
    assert set(weeks.values_list("classes_expected", "days_expected")) == {(None, None)}


def test_a_refresh_spends_within_its_cap_and_the_shared_budget(sim):
    done = pipeline.refresh_calendars(offices=["I10"], max_requests=7)
    assert done["requests"] <= 7 and done["stopped"] == "max_requests (7) reached"
    budget = budget_from_settings()
    budget.block_until(clock.now().timestamp() + 3600)
    done = pipeline.refresh_calendars(offices=["I10"], budget=budget)
    assert (done["requests"], done["stopped"]) == (0, "the key's daily quota is spent")
    with pytest.raises(pipeline.PipelineError):
        pipeline.refresh_calendars(max_requests=0)


def test_a_spent_quota_stops_the_refresh_and_blocks_the_key(neis_sim_factory, settings):
    hub = neis_sim_factory(daily_quota=5)
    settings.NEIS_BASE_URL, settings.NEIS_API_KEY = hub.url, hub.key
    School.objects.all().delete()
    registry.sync_school_registry(NeisClient.from_settings(), offices=["I10"])  # request 1
    budget = budget_from_settings()
    done = pipeline.refresh_calendars(offices=["I10"], budget=budget)
    assert done["requests"] == 4 and done["stopped"].startswith("ERROR-337")
    assert budget.blocked_until() > clock.now().timestamp()


def test_an_unchanged_re_collection_does_not_recount_its_weeks(sim):
    """A weekly re-run of unchanged weeks writes nothing: the school-weeks keep their rows
    (a recount deletes and inserts them); a week without a row is counted again."""
    world, now = sim.world, sim.control.now()
    mondays = school_weeks(*WINDOW)
    schools = _pick(world, now, mondays, partial=1, complete=2)
    codes, levels = [s.code for s in schools], {LEVEL[s.level] for s in schools}
    _collect(codes, WINDOW, levels)
    weeks = SchoolWeek.objects.filter(school__code__in=codes)
    before = dict(weeks.values_list("pk", "lessons"))
    assert before
    _collect(codes, WINDOW, levels)
    assert dict(weeks.values_list("pk", "lessons")) == before

    gone = weeks.order_by("pk").first()
    key = (gone.school_id, gone.monday, gone.lessons)
    gone.delete()
    _collect(codes, WINDOW, levels)
    assert weeks.filter(school_id=key[0], monday=key[1], lessons=key[2]).exists()
