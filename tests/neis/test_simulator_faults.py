"""Fault injection: RESULT errors, HTTP errors, maintenance, latency, hangs, drops, bad bodies."""

import json
import time

import pytest
import requests

pytest_plugins = ["tests.fixtures_neis"]


def test_it_answers_injected_result_errors_with_http_200(neis_sim):
    for kind, code in (
        ("error500", "ERROR-500"),
        ("error600", "ERROR-600"),
        ("error601", "ERROR-601"),
    ):
        neis_sim.control.inject(kind)
        answer = neis_sim.get("schoolInfo", pSize=1)
        assert answer.status_code == 200
        assert answer.json()["RESULT"]["CODE"] == code
    assert "schoolInfo" in neis_sim.get("schoolInfo", pSize=1).json()


def test_it_sends_http_errors_with_html_bodies(neis_sim):
    for kind, status in (("http500", 500), ("http502", 502), ("http503", 503)):
        neis_sim.control.inject(kind)
        answer = neis_sim.get("schoolInfo", pSize=1)
        assert answer.status_code == status
        assert answer.headers["Content-Type"].startswith("text/html")
        assert answer.text.startswith("<html>")


def test_it_serves_a_maintenance_page_with_http_200(neis_sim):
    neis_sim.control.inject("maintenance")
    answer = neis_sim.get("schoolInfo", pSize=1)
    assert answer.status_code == 200
    assert "시스템 점검" in answer.text
    with pytest.raises(ValueError):
        json.loads(answer.text)


def test_it_keeps_maintenance_windows_in_simulated_time(neis_sim):
    neis_sim.control.add_maintenance("2026-11-22T02:00:00+09:00", "2026-11-22T04:00:00+09:00")
    assert "schoolInfo" in neis_sim.get("schoolInfo", pSize=1).json()
    neis_sim.control.set_clock("2026-11-22T03:00:00+09:00")
    assert "시스템 점검" in neis_sim.get("schoolInfo", pSize=1).text
    assert neis_sim.control.stats()["requests"] == 2  # control calls are not /hub traffic
    neis_sim.control.advance(hours=1)
    assert "schoolInfo" in neis_sim.get("schoolInfo", pSize=1).json()


def test_it_drops_connections_without_an_answer(neis_sim):
    neis_sim.control.inject("drop")
    with pytest.raises(requests.ConnectionError):
        neis_sim.get("schoolInfo", pSize=1)
    assert "schoolInfo" in neis_sim.get("schoolInfo", pSize=1).json()


def test_it_hangs_longer_than_a_client_timeout(neis_sim):
    neis_sim.control.set_faults(hang_seconds=3)
    neis_sim.control.inject("hang")
    started = time.perf_counter()
    with pytest.raises(requests.exceptions.ReadTimeout):
        neis_sim.get("schoolInfo", pSize=1, timeout=0.3)
    assert time.perf_counter() - started < 2
    assert neis_sim.control.stats()["by_outcome"]["HANG"] == 1


def test_it_truncates_corrupts_and_cuts_bodies(neis_sim):
    for kind in ("truncated", "invalid_json"):
        neis_sim.control.inject(kind)
        answer = neis_sim.get("schoolInfo", pSize=50)
        assert answer.status_code == 200
        with pytest.raises(ValueError):
            json.loads(answer.content)
        with pytest.raises(ValueError):
            json.loads(answer.content, strict=False)
    neis_sim.control.inject("partial")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        neis_sim.get("schoolInfo", pSize=50)


def test_it_adds_latency_to_hub_answers_only(neis_sim):
    neis_sim.control.set_faults(latency_ms=250)
    started = time.perf_counter()
    neis_sim.get("schoolInfo", pSize=1)
    assert time.perf_counter() - started >= 0.25
    started = time.perf_counter()
    neis_sim.control.stats()
    requests.get(f"{neis_sim.url}/_sim/stats", timeout=5)
    assert time.perf_counter() - started < 0.25
    neis_sim.control.clear_faults()
    neis_sim.control.inject("latency")
    started = time.perf_counter()
    neis_sim.get("schoolInfo", pSize=1)
    assert 0.2 <= time.perf_counter() - started < 1


def test_it_fails_by_rate_reproducibly_from_the_seed(neis_sim_factory):
    def outcomes(seed):
        sim = neis_sim_factory(
            seed=seed, fault_rate=0.4, fault_kinds=("error500", "http503", "truncated")
        )
        for _ in range(40):
            sim.get("schoolInfo", pSize=1)
        return [entry["outcome"] for entry in sim.control.log()]

    first = outcomes(1)
    assert first == outcomes(1)
    assert 6 <= sum(o != "INFO-000" for o in first) <= 28
    assert set(first) == {"INFO-000", "ERROR-500", "HTTP503", "TRUNCATED"}
    assert first != outcomes(2)


def test_it_targets_injections_at_one_service_after_some_requests(neis_sim):
    neis_sim.control.inject("error600", count=2, service="classInfo", after=1)
    school = neis_sim.world.schools(level="els")[0]
    keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}

    def code(service, **params):
        body = neis_sim.get(service, **params).json()
        return body["RESULT"]["CODE"] if "RESULT" in body else "INFO-000"

    assert code("schoolInfo", pSize=1) == "INFO-000"
    assert [code("classInfo", **keys) for _ in range(4)] == [
        "INFO-000",
        "ERROR-600",
        "ERROR-600",
        "INFO-000",
    ]


def test_it_never_applies_faults_to_control_endpoints(neis_sim):
    neis_sim.control.set_faults(rate=1.0, kinds=["http503", "drop", "hang"])
    for _ in range(5):
        answer = requests.get(f"{neis_sim.url}/_sim/stats", timeout=5)
        assert answer.status_code == 200 and answer.json()["ok"]
    neis_sim.control.clear_faults()
    assert neis_sim.control.faults()["rate"] == 0.0


def test_it_charges_quota_for_result_faults_but_not_transport_faults(neis_sim):
    neis_sim.control.inject("http503")
    neis_sim.control.inject("maintenance")
    neis_sim.get("schoolInfo", pSize=1)
    neis_sim.get("schoolInfo", pSize=1)
    assert neis_sim.control.quota_used(neis_sim.key) == 0
    neis_sim.control.inject("error500")
    neis_sim.get("schoolInfo", pSize=1)
    assert neis_sim.control.quota_used(neis_sim.key) == 1


def test_it_can_put_an_error_or_a_notice_in_the_head(neis_sim):
    neis_sim.control.inject("head_error")
    body = neis_sim.get("schoolInfo", pSize=3).json()
    assert body["schoolInfo"][0]["head"][1]["RESULT"]["CODE"] == "ERROR-500"
    assert body["schoolInfo"][1]["row"] == []
    neis_sim.control.inject("info100")
    body = neis_sim.get("schoolInfo", pSize=3).json()
    assert body["schoolInfo"][0]["head"][1]["RESULT"] == {
        "CODE": "INFO-100",
        "MESSAGE": "해당 자료는 단순 참고용으로만 활용하시기 바랍니다.",
    }
    assert body["schoolInfo"][1]["row"] == neis_sim.world.school_info_rows()[:3]


def test_it_can_send_raw_control_characters_only_on_request(neis_sim):
    neis_sim.control.inject("control_chars")
    answer = neis_sim.get("schoolInfo", pSize=2)
    with pytest.raises(ValueError):
        json.loads(answer.content)
    row = json.loads(answer.content, strict=False)["schoolInfo"][1]["row"][0]
    assert (
        row["ATPT_OFCDC_SC_CODE"]
        == "\t" + neis_sim.world.school_info_rows()[0]["ATPT_OFCDC_SC_CODE"]
    )
    assert "control_chars" not in neis_sim.control.faults()["kinds"]
