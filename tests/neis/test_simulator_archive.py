"""The current/archive split of timetables (docs/neis-api.md section 9, item 13)."""

pytest_plugins = ["tests.fixtures_neis"]


def _keys(school, **more):
    return {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code, **more}


def _school(world, level):
    return next(
        s
        for s in world.schools(level=level)
        if s.profile != "never" and not s.late_sem2 and s.size >= 2
    )


def test_it_serves_old_years_from_the_archive_under_the_current_envelope_key(neis_sim):
    school = _school(neis_sim.world, "his")
    old = _keys(school, TI_FROM_YMD="20240902", TI_TO_YMD="20240906")
    answer = neis_sim.get("hisTimetablebgs", **old).json()
    assert list(answer) == ["hisTimetable"]
    assert {r["AY"] for r in answer["hisTimetable"][1]["row"]} == {"2024"}
    assert neis_sim.get("hisTimetable", **old).json()["RESULT"]["CODE"] == "INFO-200"


def test_it_never_serves_a_year_from_both_services(neis_sim):
    school = _school(neis_sim.world, "mis")
    span = _keys(school, TI_FROM_YMD="20241202", TI_TO_YMD="20250314")
    current = neis_sim.fetch_all("misTimetable", **span)
    archive = neis_sim.fetch_all("misTimetablebgs", **span)
    assert current and archive
    assert {r["AY"] for r in current} == {"2025"}
    assert {r["AY"] for r in archive} == {"2024"}
    assert min(r["ALL_TI_YMD"] for r in current) >= "20250301"


def test_it_zero_pads_archive_class_names(neis_sim):
    school = _school(neis_sim.world, "els")
    rows = neis_sim.fetch_all("elsTimetablebgs", **_keys(school, ALL_TI_YMD="20240905"))
    assert rows and all(
        len(r["CLASS_NM"]) == 2 and r["CLASS_NM"][0] == "0" for r in rows if int(r["CLASS_NM"]) < 10
    )
    only = neis_sim.fetch_all(
        "elsTimetablebgs", **_keys(school, ALL_TI_YMD="20240905", CLASS_NM="01")
    )
    assert only == [r for r in rows if r["CLASS_NM"] == "01"]
    assert (
        neis_sim.fetch_all("elsTimetable", **_keys(school, ALL_TI_YMD="20261118", CLASS_NM="01"))
        == []
    )


def test_it_can_leave_archive_class_names_alone(neis_sim_factory):
    sim = neis_sim_factory(archive_pad_class=False)
    school = _school(sim.world, "els")
    rows = sim.fetch_all("elsTimetablebgs", **_keys(school, ALL_TI_YMD="20240905"))
    assert rows and not any(r["CLASS_NM"].startswith("0") for r in rows)


def test_it_moves_the_cutoff_to_2023_when_configured(neis_sim_factory):
    sim = neis_sim_factory(archive_before_ay=2023)
    school = _school(sim.world, "sps")
    day_2022 = _keys(school, TI_FROM_YMD="20221004", TI_TO_YMD="20221007")
    day_2024 = _keys(school, TI_FROM_YMD="20240902", TI_TO_YMD="20240906")
    assert sim.fetch_all("spsTimetablebgs", **day_2022)
    assert sim.fetch_all("spsTimetable", **day_2022) == []
    assert sim.fetch_all("spsTimetable", **day_2024)
    assert sim.fetch_all("spsTimetablebgs", **day_2024) == []


def test_it_moves_the_default_cutoff_with_the_clock(neis_sim):
    school = _school(neis_sim.world, "els")
    week_2025 = _keys(school, TI_FROM_YMD="20250915", TI_TO_YMD="20250919")
    assert neis_sim.fetch_all("elsTimetable", **week_2025)
    neis_sim.control.set_clock("2027-03-05T10:00:00+09:00")
    assert neis_sim.fetch_all("elsTimetable", **week_2025) == []
    assert neis_sim.fetch_all("elsTimetablebgs", **week_2025)
