"""Routing and request parameters of the simulated hub (docs/neis-api.md section 9, items 1-5)."""

import requests

from neis_simulator import SERVICES

pytest_plugins = ["tests.fixtures_neis"]


def _school(world, level="his"):
    return next(s for s in world.schools(level=level) if s.profile != "never")


def _required(service, school):
    params = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
    return {k: v for k, v in params.items() if k in SERVICES[service].required}


def test_it_routes_all_sixteen_services(neis_sim):
    school = _school(neis_sim.world)
    assert len(SERVICES) == 16
    for name in SERVICES:
        answer = neis_sim.get(name, **_required(name, school))
        assert answer.status_code == 200
        body = answer.json()
        code = body["RESULT"]["CODE"] if "RESULT" in body else "INFO-000"
        assert code in ("INFO-000", "INFO-200"), (name, body)


def test_it_answers_error_310_for_unknown_or_miscased_paths(neis_sim):
    for path in (
        "/hub/schoolinfo",
        "/hub/Schoolschedule",
        "/hub/hisTimetable/",
        "/hub/",
        "/nothing",
        "/hub/tiClrmInfo",
    ):
        answer = requests.get(neis_sim.url + path, params={"KEY": neis_sim.key, "Type": "json"})
        assert answer.status_code == 200
        assert answer.json()["RESULT"]["CODE"] == "ERROR-310", path


def test_it_matches_key_and_type_names_case_insensitively(neis_sim):
    for key_name, type_name, value in (
        ("KEY", "Type", "json"),
        ("Key", "type", "JSON"),
        ("key", "TYPE", "Json"),
    ):
        answer = requests.get(
            neis_sim.hub("schoolInfo"),
            params={key_name: neis_sim.key, type_name: value, "pSize": 1},
        )
        assert "schoolInfo" in answer.json()
    bad = requests.get(neis_sim.hub("schoolInfo"), params={"kEy": "0" * 32, "Type": "json"})
    assert bad.json()["RESULT"]["CODE"] == "ERROR-290"


def test_it_defaults_to_xml_for_missing_empty_or_unknown_type(neis_sim):
    for type_value in (None, "", "yaml"):
        params = {"KEY": neis_sim.key, "pSize": 1}
        if type_value is not None:
            params["Type"] = type_value
        answer = requests.get(neis_sim.hub("schoolInfo"), params=params)
        assert answer.text.startswith('<?xml version="1.0" encoding="UTF-8"?><schoolInfo>')


def test_it_ignores_unknown_parameters(neis_sim):
    plain = neis_sim.get("schoolInfo", pSize=5, SCHUL_NM="고등학교")
    noisy = neis_sim.get("schoolInfo", pSize=5, SCHUL_NM="고등학교", FOO="bar", sd_schul_code="1")
    assert plain.content == noisy.content


def test_it_rejects_non_integer_paging_with_error_333(neis_sim):
    for params in (
        {"pIndex": "a"},
        {"pSize": "1.5"},
        {"pIndex": "-1"},
        {"pSize": "0"},
        {"pIndex": "１"},
    ):
        body = neis_sim.get("schoolInfo", **params).json()
        assert body["RESULT"]["CODE"] == "ERROR-333", params


def test_it_caps_page_size_at_1000(neis_sim):
    assert neis_sim.get("schoolInfo", pSize=1001).json()["RESULT"]["CODE"] == "ERROR-336"
    page = neis_sim.get("schoolInfo", pSize=1000).json()["schoolInfo"][1]["row"]
    assert len(page) == 1000


def test_it_pages_100_rows_from_page_1_by_default(neis_sim):
    body = neis_sim.get("schoolInfo").json()["schoolInfo"]
    assert len(body[1]["row"]) == 100
    assert body[1]["row"][0] == neis_sim.world.school_info_rows()[0]


def test_it_requires_parameters_without_naming_them(neis_sim):
    school = _school(neis_sim.world)
    for name, service in SERVICES.items():
        for missing in service.required:
            params = _required(name, school)
            params[missing] = ""
            body = neis_sim.get(name, **params).json()
            assert body["RESULT"]["CODE"] == "ERROR-300", (name, missing)
            assert missing not in body["RESULT"]["MESSAGE"]


def test_it_serves_every_school_without_filters(neis_sim):
    body = neis_sim.get("schoolInfo", pSize=1).json()
    assert body["schoolInfo"][0]["head"][0]["list_total_count"] == len(neis_sim.world.schools())


def test_it_filters_school_info_by_code_name_and_kind(neis_sim):
    world = neis_sim.world
    highs = neis_sim.fetch_all("schoolInfo", ATPT_OFCDC_SC_CODE="T10", SCHUL_NM="고등학교")
    assert highs and all(r["ATPT_OFCDC_SC_CODE"] == "T10" for r in highs)
    assert all("고등학교" in r["SCHUL_NM"] for r in highs)
    expected = [s.row() for s in world.schools(office="T10") if "고등학교" in s.name]
    assert highs == expected
    special = neis_sim.fetch_all("schoolInfo", SCHUL_KND_SC_NM="특수학교")
    assert len(special) == len(world.schools(kind="특수학교"))
    one = world.schools(office="B10")[7]
    assert neis_sim.fetch_all("schoolInfo", SD_SCHUL_CODE=one.code) == [one.row()]
    assert neis_sim.fetch_all("schoolInfo", SCHUL_KND_SC_NM="초등") == []


def test_it_filters_timetables_exactly(neis_sim):
    school = _school(neis_sim.world, "mis")
    keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
    week = neis_sim.fetch_all("misTimetable", TI_FROM_YMD="20261116", TI_TO_YMD="20261120", **keys)
    assert week
    day = neis_sim.fetch_all("misTimetable", ALL_TI_YMD="20261118", **keys)
    assert day == [r for r in week if r["ALL_TI_YMD"] == "20261118"]
    grade = neis_sim.fetch_all(
        "misTimetable",
        TI_FROM_YMD="20261116",
        TI_TO_YMD="20261120",
        GRADE="2",
        CLASS_NM="1",
        PERIO="3",
        **keys,
    )
    assert grade == [r for r in week if (r["GRADE"], r["CLASS_NM"], r["PERIO"]) == ("2", "1", "3")]
    now = neis_sim.control.now()
    from_only = neis_sim.fetch_all("misTimetable", TI_FROM_YMD="20261119", AY="2026", **keys)
    assert from_only and min(r["ALL_TI_YMD"] for r in from_only) >= "20261119"
    assert from_only == neis_sim.world.rows(
        "misTimetable", {"TI_FROM_YMD": "20261119", "AY": "2026", **keys}, as_of=now
    )
    to_only = neis_sim.fetch_all("misTimetable", TI_TO_YMD="20260320", **keys)
    assert to_only and max(r["ALL_TI_YMD"] for r in to_only) <= "20260320"
    assert min(r["ALL_TI_YMD"] for r in to_only) >= "20250301"  # archive years stay out


def test_it_ignores_perio_on_his_and_ay_on_school_schedule(neis_sim):
    school = _school(neis_sim.world, "his")
    keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
    day = {"ALL_TI_YMD": "20261118", **keys}
    assert neis_sim.fetch_all("hisTimetable", PERIO="1", **day) == neis_sim.fetch_all(
        "hisTimetable", **day
    )
    assert neis_sim.fetch_all("SchoolSchedule", AY="1999", **keys) == neis_sim.fetch_all(
        "SchoolSchedule", **keys
    )
