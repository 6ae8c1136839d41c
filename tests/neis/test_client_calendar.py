"""classInfo and SchoolSchedule through the client: the simulator's truth, and hostile rows.

The truth is what the hub serves (``World.rows``) through the parser; the hostile answers come
from tests/neis/hostile.py, and they meet the same bounds as timetables: rows over pSize, an
oversized body, texts over a column, rows of another school or window.
"""

from __future__ import annotations

import datetime

import pytest

from collector.neis import parse
from collector.neis.client import NeisClient
from collector.neis.errors import NeisPermanentError
from tests.neis.hostile import KEY, fixed, page, serve

pytest_plugins = ["tests.fixtures_neis"]

AY = 2026
OCTOBER = (datetime.date(2026, 10, 1), datetime.date(2026, 10, 31))


def client_for(sim, **options) -> NeisClient:
    return NeisClient(sim.url, sim.key, clock=sim.control.now, **options)


@pytest.mark.parametrize("level", ["els", "mis", "his", "sps"])
def test_it_fetches_every_class_of_a_school_year(neis_sim, level):
    school = neis_sim.world.schools(level=level, office="I10")[0]
    keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
    rows = neis_sim.world.rows("classInfo", {**keys, "AY": str(AY)}, as_of=neis_sim.control.now())
    result = client_for(neis_sim, page_size=50).classes(school.office.code, school.code, AY)
    assert rows and result.rows == [parse.class_from_row(row) for row in rows]
    assert len(result.rows) == len(neis_sim.world.classes(school.code, AY))
    assert (result.invalid, result.missing) == (0, 0)
    assert result.services == ["classInfo"]


def test_it_fetches_a_months_school_schedule(neis_sim):
    school = neis_sim.world.schools(level="his", office="I10")[0]
    result = client_for(neis_sim).schedule(school.office.code, school.code, *OCTOBER)
    assert {r.date for r in result.rows if r.day_kind == "공휴일"} >= {
        datetime.date(2026, 10, 3),
        datetime.date(2026, 10, 9),
    }
    assert all(OCTOBER[0] <= r.date <= OCTOBER[1] for r in result.rows)
    days_off = {r.date for r in result.rows if r.day_kind in ("휴업일", "공휴일")}
    monday = datetime.date(2026, 10, 12)
    school_days = set(neis_sim.world.school_days(school.code, monday))
    weekdays = {monday + datetime.timedelta(days=n) for n in range(5)}
    assert school_days == weekdays - days_off
    assert (result.invalid, result.missing, result.pages) == (0, 0, 1)


CLASS_ROW = {
    "ATPT_OFCDC_SC_CODE": "B10",
    "SD_SCHUL_CODE": "7010057",
    "AY": "2026",
    "GRADE": "1",
    "DGHT_CRSE_SC_NM": "주간",
    "SCHUL_CRSE_SC_NM": "고등학교",
    "ORD_SC_NM": "일반계",
    "DDDEP_NM": "일반과",
    "CLASS_NM": "1",
    "LOAD_DTM": "20260220",
}
SCHEDULE_ROW = {
    "ATPT_OFCDC_SC_CODE": "B10",
    "SD_SCHUL_CODE": "7010057",
    "AY": "2026",
    "SBTR_DD_SC_NM": "휴업일",
    "AA_YMD": "20261012",
    "EVENT_NM": "재량휴업일",
}


def test_it_drops_hostile_class_rows_and_counts_them():
    rows = [
        CLASS_ROW,
        {**CLASS_ROW, "CLASS_NM": "2"},
        {**CLASS_ROW, "SD_SCHUL_CODE": "7010058"},  # another school
        {**CLASS_ROW, "AY": "2025"},  # another year
        {**CLASS_ROW, "GRADE": "99"},
        {**CLASS_ROW, "CLASS_NM": "x" * 51},
        {**CLASS_ROW, "CLASS_NM": None},
        "not a row",
    ]
    with serve(fixed(page(rows, "classInfo"))) as hub:
        result = NeisClient(hub.url, KEY).classes("B10", "7010057", 2026)
    assert [r.class_name for r in result.rows] == ["1", "2"]
    assert result.invalid_reasons == {
        "other-school": 1,
        "other-year": 1,
        "GRADE": 1,
        "CLASS_NM": 2,
        "row": 1,
    }


def test_it_drops_hostile_schedule_rows_and_counts_them():
    rows = [
        SCHEDULE_ROW,
        {**SCHEDULE_ROW, "AA_YMD": "20261101"},  # outside the window asked for
        {**SCHEDULE_ROW, "AA_YMD": "20261341"},
        {**SCHEDULE_ROW, "EVENT_NM": "축" * 201},
        {**SCHEDULE_ROW, "EVENT_NM": "a\x00b"},  # cleaned, kept
        {**SCHEDULE_ROW, "ATPT_OFCDC_SC_CODE": "C10"},
    ]
    with serve(fixed(page(rows, "SchoolSchedule"))) as hub:
        result = NeisClient(hub.url, KEY).schedule("B10", "7010057", *OCTOBER)
    assert [r.name for r in result.rows] == ["재량휴업일", "a\ufffdb"]
    assert result.invalid_reasons == {
        "outside-window": 1,
        "AA_YMD": 1,
        "EVENT_NM": 1,
        "other-school": 1,
    }


def test_it_bounds_calendar_pages_like_timetable_pages():
    answer = fixed(page([CLASS_ROW] * 51, "classInfo"))
    with serve(answer) as hub, pytest.raises(NeisPermanentError) as e:
        NeisClient(hub.url, KEY, page_size=50).classes("B10", "7010057", 2026)
    assert e.value.code == "TOO-MANY-ROWS"
    body = page([SCHEDULE_ROW] * 200, "SchoolSchedule")
    with serve(fixed(body)) as hub, pytest.raises(NeisPermanentError) as e:
        NeisClient(hub.url, KEY, max_body_bytes=len(body) - 1).schedule("B10", "7010057", *OCTOBER)
    assert e.value.code == "TOO-LARGE"


def test_it_refuses_a_window_that_ends_before_it_starts():
    with pytest.raises(ValueError):
        NeisClient("http://127.0.0.1:9", KEY).schedule("B10", "7010057", *reversed(OCTOBER))
