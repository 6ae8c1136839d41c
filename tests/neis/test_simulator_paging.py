"""Paging: stable slices, a short last page, and what comes past the end (docs/neis-api.md
section 9, item 12)."""

from neis_simulator.config import MESSAGES

pytest_plugins = ["tests.fixtures_neis"]


def _rows(answer):
    body = answer.json()
    return [] if "RESULT" in body else body[next(iter(body))][1]["row"]


def _total(answer):
    body = answer.json()
    return body[next(iter(body))][0]["head"][0]["list_total_count"]


def test_it_slices_one_stable_order_with_a_short_last_page(neis_sim):
    total = len(neis_sim.world.schools())
    pages = [_rows(neis_sim.get("schoolInfo", pIndex=i, pSize=1000)) for i in range(1, 14)]
    assert [len(p) for p in pages[:-1]] == [1000] * 12
    assert len(pages[-1]) == total - 12000
    again = _rows(neis_sim.get("schoolInfo", pIndex=7, pSize=1000))
    assert again == pages[6]
    flat = [row for page in pages for row in page]
    assert flat == neis_sim.world.school_info_rows()
    assert len({r["SD_SCHUL_CODE"] for r in flat}) == total


def test_it_keeps_an_unsorted_school_in_the_same_order_on_every_request(neis_sim):
    world = neis_sim.world
    school = next(
        s
        for s in world.schools(level="els")
        if "unsorted" in s.flags and s.profile != "never" and s.size >= 3
    )
    keys = {
        "ATPT_OFCDC_SC_CODE": school.office.code,
        "SD_SCHUL_CODE": school.code,
        "TI_FROM_YMD": "20261109",
        "TI_TO_YMD": "20261120",
    }
    first = neis_sim.fetch_all("elsTimetable", **keys)
    small = [
        row
        for i in range(1, 100)
        for row in _rows(neis_sim.get("elsTimetable", pIndex=i, pSize=37, **keys))
    ]
    assert first == small
    assert first != sorted(
        first, key=lambda r: (r["ALL_TI_YMD"], int(r["GRADE"]), int(r["CLASS_NM"]), int(r["PERIO"]))
    )


def test_it_answers_info_200_past_the_last_page(neis_sim):
    answer = neis_sim.get("schoolInfo", pIndex=14, pSize=1000)
    assert answer.json() == {"RESULT": {"CODE": "INFO-200", "MESSAGE": MESSAGES["INFO-200"]}}


def test_it_repeats_page_one_past_the_end_in_repeat_mode(neis_sim_factory):
    sim = neis_sim_factory(page_mode="repeat")
    first = _rows(sim.get("schoolInfo", pIndex=1, pSize=1000))
    assert _rows(sim.get("schoolInfo", pIndex=14, pSize=1000)) == first
    assert _rows(sim.get("schoolInfo", pIndex=99, pSize=1000)) == first
    assert sim.get("schoolInfo", SD_SCHUL_CODE="0").json()["RESULT"]["CODE"] == "INFO-200"


def test_it_overstates_the_total_when_configured(neis_sim_factory):
    sim = neis_sim_factory(overstate=3)
    true_total = len(sim.world.schools())
    assert _total(sim.get("schoolInfo", pSize=1000)) == true_total + 3
    assert len(_rows(sim.get("schoolInfo", pIndex=13, pSize=1000))) == true_total - 12000
    sim.control.configure(overstate=0, page_mode="repeat")
    assert _total(sim.get("schoolInfo", pSize=1000)) == true_total
