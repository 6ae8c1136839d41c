"""The generated world: national school list, classes, calendars and lessons (items 14-16)."""

import collections
import datetime

from neis_simulator import SimulatorConfig, World
from neis_simulator.config import DIRT_FIELDS
from neis_simulator.vocab import OFFICE_BY_CODE

pytest_plugins = ["tests.fixtures_neis"]

NOW = "2026-11-21T10:00:00+09:00"
CLOSED = ("휴업일", "공휴일")


def test_it_builds_a_national_school_list_from_any_seed():
    # How long this takes is a budget, measured by bench/bench_simulator.py.
    world = World(SimulatorConfig(seed=7))
    assert 12_300 <= len(world.schools()) <= 12_700


def test_it_matches_the_national_school_counts(neis_world):
    kinds = collections.Counter(s.kind for s in neis_world.schools())
    assert kinds["초등학교"] == 6183
    assert kinds["중학교"] == 3272
    assert kinds["고등학교"] == 2380
    assert 185 <= kinds["특수학교"] <= 205
    for extra in (
        "각종학교(초)",
        "각종학교(중)",
        "각종학교(고)",
        "방송통신중학교",
        "방송통신고등학교",
        "평생학교(초)-3년6학기",
        "평생학교(고)-3년6학기",
        "공동실습소",
        "외국인학교",
        "재외한국학교(초)",
        "고등기술학교",
        "고등공민학교",
    ):
        assert kinds[extra] > 0, extra


def test_it_spreads_schools_over_the_offices_realistically(neis_world):
    schools = neis_world.schools()
    offices = collections.Counter(s.office.code for s in schools)
    assert set(offices) == set(OFFICE_BY_CODE)
    assert 0.22 <= offices["J10"] / len(schools) <= 0.28
    assert 120 <= offices["I10"] <= 180
    assert all(s.kind.startswith("재외한국학교") for s in neis_world.schools(office="V10"))
    names = {r["ATPT_OFCDC_SC_CODE"]: r["ATPT_OFCDC_SC_NM"] for r in (s.row() for s in schools)}
    assert names["K10"] == "강원특별자치도교육청"
    assert names["P10"] == "전북특별자치도교육청"
    assert names["B10"] == "서울특별시교육청"


def test_it_gives_every_school_a_unique_seven_digit_code(neis_world):
    codes = [s.code for s in neis_world.schools()]
    assert len(set(codes)) == len(codes)
    assert all(len(c) == 7 and c.isdigit() for c in codes)
    assert neis_world.school(codes[123]).code == codes[123]


def test_it_sizes_classes_like_the_national_statistics(neis_world):
    for kind, grades, target in (
        ("초등학교", 6, 125_000),
        ("중학교", 3, 54_000),
        ("고등학교", 3, 56_000),
    ):
        total = sum(s.size for s in neis_world.schools(kind=kind)) * grades
        assert abs(total - target) / target < 0.02, kind
    assert 6_000_000 <= neis_world.weekly_lessons_estimate(2026, every=25) <= 7_600_000


def test_it_plans_periods_per_day_by_level(neis_world):
    limits = {"els": (4, 6), "mis": (6, 7), "his": (4, 7), "sps": (4, 6)}
    for school in neis_world.schools()[::40]:
        sy = neis_world.year(school, 2026)
        if sy is None:
            continue
        for klass, week in zip(sy.classes, sy.plans(2), strict=True):
            for day in week:
                periods = {int(p) for p, _ in day}
                assert periods == set(range(1, len(periods) + 1))
                low, high = limits[school.level]
                if school.level == "els" and klass.grade <= 2:
                    high = 5
                if school.level == "his" and klass.dght == "주간":
                    low = 6
                assert low <= len(periods) <= high, (school.level, klass)


def test_it_generates_a_big_schools_three_weeks():
    # How long this takes is a budget, measured by bench/bench_simulator.py.
    world = World(SimulatorConfig())
    biggest = max(world.schools(level="els"), key=lambda s: s.size)
    rows = world.timetable(biggest.code, "20261102", "20261120", as_of=NOW)
    assert len(rows) > 5000


def test_it_teaches_on_weekdays_of_the_right_year_and_semester(neis_world):
    for school in [s for s in neis_world.schools() if s.level][::300]:
        for row in neis_world.timetable(school.code, "20260223", "20260320", as_of=NOW) + (
            neis_world.timetable(school.code, "20260817", "20260911", as_of=NOW)
        ):
            day = datetime.datetime.strptime(row["ALL_TI_YMD"], "%Y%m%d").date()
            assert day.weekday() < 5
            assert row["AY"] == str(day.year if day.month >= 3 else day.year - 1)
            assert row["SEM"] == ("1" if 3 <= day.month <= 8 else "2")


def test_it_keeps_lessons_and_school_schedule_consistent(neis_sim):
    world = neis_sim.world
    now = neis_sim.control.now()
    picked = [s for s in world.schools() if s.level and s.profile != "never" and not s.late_sem2][
        ::700
    ]
    for school in picked:
        keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
        schedule = neis_sim.fetch_all(
            "SchoolSchedule", AA_FROM_YMD="20260901", AA_TO_YMD="20261113", **keys
        )
        closed = {r["AA_YMD"] for r in schedule if r["SBTR_DD_SC_NM"] in CLOSED}
        service = f"{school.level}Timetable"
        taught = {
            r["ALL_TI_YMD"]
            for r in neis_sim.fetch_all(
                service, TI_FROM_YMD="20260901", TI_TO_YMD="20261113", **keys
            )
        }
        day = datetime.date(2026, 9, 1)
        while day <= datetime.date(2026, 11, 13):
            ymd = day.strftime("%Y%m%d")
            first = world.publications(school.code, day)[0]
            # A revision may take a whole day away (a closure, an exam day): not a school day
            # the calendar knows, so the schedule still lists it as one.
            monday = day - datetime.timedelta(days=day.weekday())
            friday = monday + datetime.timedelta(days=4)
            edits = world.edits(school.code, monday, friday, since=first, until=now)
            removed = {e.date for e in edits if e.kind == "day_off"}
            if day.weekday() >= 5 or ymd in closed:
                assert ymd not in taught, (school.code, ymd)
            elif first <= now and ymd not in removed:
                assert ymd in taught, (school.code, ymd)
            day += datetime.timedelta(days=1)
        assert any(r["EVENT_NM"] == "추석" and r["SBTR_DD_SC_NM"] == "공휴일" for r in schedule)
        assert any(r["EVENT_NM"] == "토요휴업일" for r in schedule)


def test_it_gives_high_schools_tracks_departments_and_rooms(neis_world):
    highs = [s for s in neis_world.schools(level="his") if s.profile != "never"]
    vocational = next(s for s in highs if s.departments)
    rows = neis_world.timetable(vocational.code, "20261116", "20261120", as_of=NOW)
    assert {r["ORD_SC_NM"] for r in rows} == {vocational.ord_name}
    assert len({r["DDDEP_NM"] for r in rows}) >= 2
    assert all(r["DGHT_CRSE_SC_NM"] in ("주간", "야간") and r["CLRM_NM"] for r in rows)
    night = next(s for s in highs if s.night)
    rows = neis_world.timetable(night.code, "20261116", "20261120", as_of=NOW)
    assert {r["DGHT_CRSE_SC_NM"] for r in rows} == {"주간", "야간"}
    special = next(
        s for s in neis_world.schools(level="sps") if s.profile != "never" and "유치원" in s.courses
    )
    rows = neis_world.timetable(special.code, "20261116", "20261120", as_of=NOW)
    assert {r["SCHUL_CRSE_SC_NM"] for r in rows} == set(special.courses)


def _sample_rows(world, level=None, every=40):
    schools = [s for s in world.schools(level=level) if s.level and s.profile != "never"]
    for school in schools[::every]:
        yield school, world.timetable(school.code, "20261102", "20261120", as_of=NOW)


def _class_key(row):
    return (
        row.get("DGHT_CRSE_SC_NM"),
        row.get("SCHUL_CRSE_SC_NM"),
        row.get("DDDEP_NM"),
        row["GRADE"],
        row["CLASS_NM"],
    )


def _in_served_order(rows) -> bool:
    """Sorted by date; each class one block per day, its periods ascending."""
    seen_blocks = set()
    for before, row in zip(rows, rows[1:], strict=False):
        if row["ALL_TI_YMD"] < before["ALL_TI_YMD"]:
            return False
        same = (row["ALL_TI_YMD"], _class_key(row)) == (before["ALL_TI_YMD"], _class_key(before))
        if same and int(row["PERIO"]) < int(before["PERIO"]):
            return False
        if not same:
            block = (row["ALL_TI_YMD"], _class_key(row))
            if block in seen_blocks:
                return False
            seen_blocks.add((before["ALL_TI_YMD"], _class_key(before)))
    return True


def test_it_includes_every_kind_of_dirt(neis_world):
    seen = collections.Counter()
    for school, rows in _sample_rows(neis_world, every=50):
        keys = [
            (
                r["ALL_TI_YMD"],
                r.get("DGHT_CRSE_SC_NM"),
                r.get("SCHUL_CRSE_SC_NM"),
                r["GRADE"],
                r["CLASS_NM"],
            )
            for r in rows
        ]
        for row in rows:
            text = row["ITRT_CNTNT"]
            if text is None:
                seen["null"] += 1
                continue
            seen["dash"] += text.startswith("-")
            seen["roman"] += "Ⅰ" in text or "Ⅱ" in text
            seen["ascii roman"] += text.endswith("I") or text.endswith("II")
            seen["brackets"] += "(" in text or "[" in text
            seen["whitespace"] += text != text.strip() or "  " in text
            seen["load after lesson"] += row["LOAD_DTM"][:8] > row["ALL_TI_YMD"]
            seen["load before lesson"] += row["LOAD_DTM"][:8] < row["ALL_TI_YMD"]
            seen[f"load {len(row['LOAD_DTM'])} digits"] += 1
        counts = collections.Counter(tuple(r.values()) for r in rows)
        seen["identical duplicate"] += sum(n > 1 for n in counts.values())
        periods = collections.defaultdict(list)
        for row, key in zip(rows, keys, strict=True):
            periods[key].append(row)
        for day_rows in periods.values():
            numbers = sorted({int(r["PERIO"]) for r in day_rows})
            seen["missing free period"] += numbers != list(range(1, numbers[-1] + 1))
            by_period = collections.Counter(r["PERIO"] for r in day_rows)
            subjects = collections.defaultdict(set)
            for r in day_rows:
                subjects[r["PERIO"]].add(r["ITRT_CNTNT"])
            seen["electives"] += any(len(s) > 1 for s in subjects.values())
            seen["repeated period"] += any(n > 1 for n in by_period.values())
        seen["unsorted"] += "unsorted" in school.flags and not _in_served_order(rows)
        assert "unsorted" in school.flags or _in_served_order(rows)
    for kind in (
        "null",
        "dash",
        "roman",
        "ascii roman",
        "brackets",
        "whitespace",
        "load after lesson",
        "load before lesson",
        "load 8 digits",
        "load 14 digits",
        "identical duplicate",
        "missing free period",
        "electives",
        "unsorted",
    ):
        assert seen[kind] > 0, kind


def test_it_switches_dirt_off(neis_sim_factory):
    sim = neis_sim_factory(**dict.fromkeys(DIRT_FIELDS, 0.0))
    clean = sim.world
    assert clean.config.world_key() == SimulatorConfig().without_dirt().world_key()
    for _, rows in _sample_rows(clean, every=200):
        assert _in_served_order(rows)
        assert len({tuple(r.values()) for r in rows}) == len(rows)
        for row in rows:
            text = row["ITRT_CNTNT"]
            assert text and text == text.strip() and not text.startswith("-")


def test_it_has_schools_without_any_timetable(neis_sim):
    world = neis_sim.world
    silent = next(s for s in world.schools(level="mis") if s.profile == "never")
    keys = {"ATPT_OFCDC_SC_CODE": silent.office.code, "SD_SCHUL_CODE": silent.code}
    assert neis_sim.fetch_all("misTimetable", TI_FROM_YMD="20260301", **keys) == []
    assert neis_sim.fetch_all("classInfo", AY="2026", **keys)
    foreign = world.schools(kind="외국인학교")[0]
    assert world.timetable(foreign.code, "20260301", "20261120", as_of=NOW) == []
