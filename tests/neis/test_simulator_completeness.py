"""classInfo and SchoolSchedule agree with the timetables, and late classes come later (item 16).

Everything is asked over HTTP of an in-process simulator and compared with the world's own
ground truth (``World.week_truth``, ``classes``, ``school_days``).
"""

import datetime

from neis_simulator.clock import academic_year

pytest_plugins = ["tests.fixtures_neis"]

MONDAY = datetime.date(2026, 11, 16)  # the school week of the default test clock
WEEK = datetime.timedelta(days=7)
FRIDAY = datetime.timedelta(days=4)
NO_LESSONS = {"휴업일", "공휴일"}


def _week(sim, school, monday):
    return sim.fetch_all(
        f"{school.level}Timetable",
        ATPT_OFCDC_SC_CODE=school.office.code,
        SD_SCHUL_CODE=school.code,
        TI_FROM_YMD=monday.strftime("%Y%m%d"),
        TI_TO_YMD=(monday + FRIDAY).strftime("%Y%m%d"),
    )


def _class(row, level):
    """A class as its timetable rows name it (the columns every level serves)."""
    return (
        row["GRADE"],
        row["CLASS_NM"],
        row.get("DGHT_CRSE_SC_NM") if level in ("mis", "his") else None,
        row.get("SCHUL_CRSE_SC_NM") if level == "sps" else None,
    )


def _late_week(world, now):
    for school in world.schools(office="I10"):
        if school.level is None:
            continue
        for monday in (MONDAY, MONDAY + WEEK):
            truth = world.week_truth(school.code, monday, as_of=now)
            if truth.partial:
                return school, monday, truth
    raise AssertionError("no partial school-week in I10")


def test_late_classes_are_missing_until_their_time_then_served(neis_sim):
    world, now = neis_sim.world, neis_sim.control.now()
    school, monday, truth = _late_week(world, now)
    ay = academic_year(monday + FRIDAY)
    listed = neis_sim.fetch_all(
        "classInfo",
        ATPT_OFCDC_SC_CODE=school.office.code,
        SD_SCHUL_CODE=school.code,
        AY=str(ay),
    )
    expected = {_class(r, school.level) for r in listed}
    assert len(expected) == truth.classes_expected == len(world.classes(school.code, ay))

    served = {_class(r, school.level) for r in _week(neis_sim, school, monday)}
    assert served < expected
    assert len(served) == truth.classes_with_lessons == len(expected) - len(truth.late)

    neis_sim.control.set_clock(truth.late_until - datetime.timedelta(seconds=1))
    assert {_class(r, school.level) for r in _week(neis_sim, school, monday)} == served
    neis_sim.control.set_clock(truth.late_until)
    assert {_class(r, school.level) for r in _week(neis_sim, school, monday)} == expected
    assert not world.week_truth(school.code, monday, as_of=truth.late_until).partial


def test_the_school_schedule_says_which_days_have_no_lessons(neis_sim):
    world, now = neis_sim.world, neis_sim.control.now()
    # The week of 5 October 2026 holds two public holidays (a substitute one and 한글날).
    monday = datetime.date(2026, 10, 5)
    schools = [s for s in world.schools(office="I10") if s.level][:12]
    for school in schools:
        rows = neis_sim.fetch_all(
            "SchoolSchedule",
            ATPT_OFCDC_SC_CODE=school.office.code,
            SD_SCHUL_CODE=school.code,
            AA_FROM_YMD=monday.strftime("%Y%m%d"),
            AA_TO_YMD=(monday + FRIDAY).strftime("%Y%m%d"),
        )
        off = {r["AA_YMD"] for r in rows if r["SBTR_DD_SC_NM"] in NO_LESSONS}
        assert {"20261005", "20261009"} <= off
        weekdays = {(monday + datetime.timedelta(days=n)).strftime("%Y%m%d") for n in range(5)}
        days = {d.strftime("%Y%m%d") for d in world.school_days(school.code, monday)}
        assert days == weekdays - off
        truth = world.week_truth(school.code, monday, as_of=now)
        lessons = _week(neis_sim, school, monday)
        if truth.published:
            assert {r["ALL_TI_YMD"] for r in lessons} == days
            assert not truth.partial
        else:
            assert lessons == []


def test_every_class_of_a_complete_week_has_lessons(neis_sim):
    world, now = neis_sim.world, neis_sim.control.now()
    checked = 0
    for school in world.schools(office="I10"):
        if school.level is None:
            continue
        truth = world.week_truth(school.code, MONDAY - WEEK, as_of=now)
        if not truth.published or truth.partial:
            continue
        classes = world.classes(school.code, academic_year(MONDAY))
        served = {_class(r, school.level) for r in _week(neis_sim, school, MONDAY - WEEK)}
        assert len(served) == len(classes) == truth.classes_with_lessons
        checked += 1
        if checked == 10:
            break
    assert checked == 10
