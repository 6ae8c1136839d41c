"""Answer shapes: JSON and XML envelopes, value types, messages, headers (docs/neis-api.md
section 9, items 8-11)."""

import json
import xml.etree.ElementTree as ET

import requests

from neis_simulator import SERVICES
from neis_simulator.config import MESSAGES

pytest_plugins = ["tests.fixtures_neis"]


def _keys(school):
    return {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}


def _publishing(world, level):
    return next(s for s in world.schools(level=level) if s.profile != "never")


def test_it_shapes_json_success_exactly(neis_sim):
    answer = neis_sim.get("schoolInfo", pSize=2)
    body = answer.json()
    assert list(body) == ["schoolInfo"]
    head, rows = body["schoolInfo"]
    assert list(head) == ["head"] and list(rows) == ["row"]
    count, result = head["head"]
    assert count == {"list_total_count": len(neis_sim.world.schools())}
    assert result == {"RESULT": {"CODE": "INFO-000", "MESSAGE": "정상 처리되었습니다."}}
    assert answer.text.startswith('{"schoolInfo":[{"head":[{"list_total_count":')
    assert answer.content.decode("utf-8")  # UTF-8, Korean kept as is
    assert "\\u" not in answer.text


def test_it_serves_rows_in_documented_order_with_strings_or_nulls(neis_sim):
    world = neis_sim.world
    school = _publishing(world, "his")
    params = {
        "schoolInfo": {"SD_SCHUL_CODE": school.code},
        "hisTimetable": {**_keys(school), "ALL_TI_YMD": "20261118"},
        "classInfo": {**_keys(school), "AY": "2026"},
        "tiClrminfo": {**_keys(school), "AY": "2026"},
        "SchoolSchedule": {**_keys(school), "AA_FROM_YMD": "20261101"},
        "schoolMajorinfo": {"ATPT_OFCDC_SC_CODE": school.office.code},
        "schulAflcoinfo": {"ATPT_OFCDC_SC_CODE": school.office.code},
        "mealServiceDietInfo": {**_keys(school), "MLSV_FROM_YMD": "20261101"},
        "acaInsTiInfo": {"ATPT_OFCDC_SC_CODE": school.office.code},
    }
    for service, query in params.items():
        rows = neis_sim.get(service, **query).json()[SERVICES[service].envelope][1]["row"]
        assert rows, service
        for row in rows:
            assert tuple(row) == SERVICES[service].fields, service
            assert all(v is None or isinstance(v, str) for v in row.values()), service
    elementary = next(s for s in world.schools(level="els"))
    info = neis_sim.get("schoolInfo", SD_SCHUL_CODE=elementary.code).json()
    assert info["schoolInfo"][1]["row"][0]["HS_SC_NM"] is None


def test_it_answers_no_data_and_errors_with_a_bare_result(neis_sim):
    answer = neis_sim.get("schoolInfo", SD_SCHUL_CODE="0000000")
    assert answer.status_code == 200
    assert answer.json() == {"RESULT": {"CODE": "INFO-200", "MESSAGE": MESSAGES["INFO-200"]}}
    error = neis_sim.get("schoolInfo", pSize=2000).json()
    assert error == {"RESULT": {"CODE": "ERROR-336", "MESSAGE": MESSAGES["ERROR-336"]}}


def test_it_labels_json_as_text_html_by_default_and_configurably(neis_sim_factory):
    plain = neis_sim_factory()
    assert plain.get("schoolInfo", pSize=1).headers["Content-Type"] == "text/html;charset=UTF-8"
    assert plain.get("schoolInfo", pSize=0).headers["Content-Type"] == "text/html;charset=UTF-8"
    other = neis_sim_factory(json_content_type="application/json;charset=UTF-8")
    answer = other.get("schoolInfo", pSize=1)
    assert answer.headers["Content-Type"] == "application/json;charset=UTF-8"
    other.control.configure(json_content_type="text/plain")
    assert other.get("schoolInfo", pSize=1).headers["Content-Type"] == "text/plain"


def test_it_wraps_xml_values_in_cdata_under_the_service_root(neis_sim):
    school = _publishing(neis_sim.world, "els")
    answer = requests.get(
        neis_sim.hub("elsTimetable"),
        params={"KEY": neis_sim.key, "ALL_TI_YMD": "20261118", **_keys(school)},
    )
    assert answer.headers["Content-Type"] == "text/xml;charset=UTF-8"
    text = answer.content.decode("utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><elsTimetable><head>')
    assert "<ITRT_CNTNT><![CDATA[" in text
    root = ET.fromstring(answer.content)
    assert root.tag == "elsTimetable"
    json_rows = neis_sim.get("elsTimetable", ALL_TI_YMD="20261118", **_keys(school)).json()
    json_rows = json_rows["elsTimetable"][1]["row"]
    assert int(root.find("head/list_total_count").text) == len(json_rows)
    assert root.find("head/RESULT/CODE").text == "INFO-000"
    xml_rows = [{el.tag: el.text for el in row} for row in root.findall("row")]
    assert xml_rows == json_rows  # <F></F> reads back as None, like JSON null


def test_it_answers_xml_errors_with_a_bare_result(neis_sim):
    answer = requests.get(
        neis_sim.hub("schoolInfo"), params={"KEY": neis_sim.key, "SD_SCHUL_CODE": "0000000"}
    )
    assert answer.status_code == 200
    assert answer.text == (
        '<?xml version="1.0" encoding="UTF-8"?><RESULT><CODE>INFO-200</CODE>'
        "<MESSAGE>해당하는 데이터가 없습니다.</MESSAGE></RESULT>"
    )


def test_it_can_split_the_xml_head(neis_sim_factory):
    sim = neis_sim_factory(xml_split_head=True)
    text = requests.get(sim.hub("schoolInfo"), params={"KEY": sim.key, "pSize": 1}).text
    assert "</list_total_count></head><head><RESULT>" in text


def test_it_uses_short_messages_when_configured(neis_sim_factory):
    sim = neis_sim_factory(long_messages=False)
    body = sim.get("schoolInfo", key="f" * 32).json()
    assert body["RESULT"]["MESSAGE"] == "인증키가 유효하지 않습니다."
    long = neis_sim_factory()
    assert (
        long.get("schoolInfo", key="f" * 32).json()["RESULT"]["MESSAGE"] == (MESSAGES["ERROR-290"])
    )


def test_it_answers_every_result_code_with_http_200(neis_sim):
    for params in ({"pIndex": "x"}, {"pSize": "5000"}, {"SD_SCHUL_CODE": "0"}):
        answer = neis_sim.get("schoolInfo", **params)
        assert answer.status_code == 200
        json.loads(answer.content)
