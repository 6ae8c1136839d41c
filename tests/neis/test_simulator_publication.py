"""Publication over simulated time: what is served depends only on the clock (item 16)."""

import datetime

from neis_simulator.lessons import EDIT_KINDS, versions, visible_version
from tests.fixtures_neis import sim_config, world_for

pytest_plugins = ["tests.fixtures_neis"]

MONDAY = datetime.date(2026, 11, 16)  # the school week of the default test clock
WEEK = datetime.timedelta(days=7)
ONE_DAY = datetime.timedelta(days=1)


def _share_published(world, monday, now):
    schools = [s for s in world.schools() if s.level and s.profile != "never"]
    seen = sum(visible_version(versions(world.config, s, monday), now) >= 0 for s in schools)
    return seen / len(schools)


def test_it_publishes_last_this_and_most_of_next_week_by_the_default_clock(neis_sim):
    world, now = neis_sim.world, neis_sim.control.now()
    assert _share_published(world, MONDAY - WEEK, now) > 0.97
    assert _share_published(world, MONDAY, now) > 0.95
    assert 0.6 < _share_published(world, MONDAY + WEEK, now) < 0.95
    assert _share_published(world, MONDAY + 3 * WEEK, now) < 0.05


def _keys(school, monday):
    friday = monday + datetime.timedelta(days=4)
    return {
        "ATPT_OFCDC_SC_CODE": school.office.code,
        "SD_SCHUL_CODE": school.code,
        "TI_FROM_YMD": monday.strftime("%Y%m%d"),
        "TI_TO_YMD": friday.strftime("%Y%m%d"),
    }


def test_it_reveals_a_week_exactly_at_its_publication_time(neis_sim):
    world = neis_sim.world
    school = next(s for s in world.schools(level="els") if s.profile == "week_before")
    monday = MONDAY + WEEK
    published = world.publications(school.code, monday)[0]
    neis_sim.control.set_clock(published - datetime.timedelta(seconds=1))
    assert neis_sim.fetch_all("elsTimetable", **_keys(school, monday)) == []
    neis_sim.control.set_clock(published)
    rows = neis_sim.fetch_all("elsTimetable", **_keys(school, monday))
    assert rows
    assert {r["LOAD_DTM"][:8] for r in rows} == {published.strftime("%Y%m%d")}


def test_it_changes_a_week_when_a_revision_is_published(neis_sim):
    world = neis_sim.world
    school, monday = next(
        (s, m)
        for s in world.schools(level="his")
        if s.profile == "early"
        for m in (MONDAY - WEEK * k for k in range(2, 30))
        if len(world.publications(s.code, m)) > 1
        and world.timetable(
            s.code, m, m + datetime.timedelta(days=4), as_of=world.publications(s.code, m)[1]
        )
    )
    first, revised = world.publications(school.code, monday)[:2]
    neis_sim.control.set_clock(revised - datetime.timedelta(seconds=1))
    before = neis_sim.fetch_all("hisTimetable", **_keys(school, monday))
    neis_sim.control.set_clock(revised)
    after = neis_sim.fetch_all("hisTimetable", **_keys(school, monday))
    assert before and after and before != after
    assert {r["LOAD_DTM"][:8] for r in before} == {first.strftime("%Y%m%d")}
    # Only the rows the revision wrote carry its LOAD_DTM; the rest keep the first one's.
    edits = world.edits(school.code, monday, monday + 4 * ONE_DAY, since=first, until=revised)
    written = [row for edit in edits for row in edit.after]
    assert edits and {r["LOAD_DTM"][:8] for r in written} <= {revised.strftime("%Y%m%d")}
    assert {r["LOAD_DTM"][:8] for r in after} - {first.strftime("%Y%m%d")} == {
        r["LOAD_DTM"][:8] for r in written
    }


def _rows(rows) -> set[tuple]:
    return {tuple(row.items()) for row in rows}


def test_its_edits_are_exactly_what_changed_between_two_moments():
    """Ground truth of a revision: the served week at one moment, with the edits published
    since applied, is the served week at a later moment; the edits never overlap, and every
    kind occurs. (No class is uploaded late here: that is publication, not an edit.)"""
    neis_world = world_for(sim_config(late_class_rate=0.0))
    kinds, checked = set(), 0
    for school in neis_world.schools()[::5]:
        for monday in (MONDAY - WEEK, MONDAY - 2 * WEEK):
            times = neis_world.publications(school.code, monday)
            if len(times) < 2:
                continue
            friday = monday + 4 * ONE_DAY
            before, after = times[0], times[-1]
            served = _rows(neis_world.timetable(school.code, monday, friday, as_of=before))
            rows = served
            for edit in neis_world.edits(school.code, monday, friday, since=before, until=after):
                kinds.add(edit.kind)
                # Edits never overlap: each takes away rows served at the first moment.
                assert _rows(edit.before) <= served
                rows = (rows - _rows(edit.before)) | _rows(edit.after)
            assert rows == _rows(neis_world.timetable(school.code, monday, friday, as_of=after))
            checked += 1
    assert checked > 50
    assert kinds == set(EDIT_KINDS)


def test_its_revisions_follow_the_configured_kinds(neis_sim_factory):
    sim = neis_sim_factory(revision_rate=1.0, revision_kinds={"day_off": 1})
    world = sim.world
    school = world.schools(level="mis")[0]
    times = world.publications(school.code, MONDAY - WEEK)
    friday = MONDAY - WEEK + 4 * ONE_DAY
    edits = world.edits(school.code, MONDAY - WEEK, friday, since=times[0], until=times[-1])
    assert edits and {edit.kind for edit in edits} == {"day_off"}
    assert all(edit.before and not edit.after for edit in edits)
    days = {
        row["ALL_TI_YMD"]
        for row in world.timetable(school.code, MONDAY - WEEK, friday, as_of=times[-1])
    }
    assert days and not days & {edit.date for edit in edits}


def test_it_holds_back_the_second_semester_of_late_schools(neis_sim):
    world, now = neis_sim.world, neis_sim.control.now()
    late = [s for s in world.schools(level="mis") if s.late_sem2 and s.profile != "never"]
    waiting = [s for s in late if world.publications(s.code, MONDAY)[0] > now]
    assert waiting
    school = waiting[0]
    keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
    assert neis_sim.fetch_all("misTimetable", AY="2026", SEM="2", **keys) == []
    assert neis_sim.fetch_all("misTimetable", AY="2026", SEM="1", **keys)
    released = world.publications(school.code, MONDAY)[0]
    neis_sim.control.set_clock(released)
    second = neis_sim.fetch_all("misTimetable", AY="2026", SEM="2", **keys)
    assert second and min(r["ALL_TI_YMD"] for r in second) < "20260920"
    assert {r["LOAD_DTM"][:8] for r in second if r["ALL_TI_YMD"] < "20261001"} == {
        released.strftime("%Y%m%d")
    }
