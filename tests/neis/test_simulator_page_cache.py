"""The page cache and the JSON encoder change no byte of any answer (hub.py, encode.py)."""

import datetime
import json
import sys

from neis_simulator import encode
from neis_simulator.services import SERVICES
from neis_simulator.world import Result

pytest_plugins = ["tests.fixtures_neis"]

MONDAY = datetime.date(2026, 11, 16)  # the school week of the default test clock
WEEK = datetime.timedelta(days=7)
SECOND = datetime.timedelta(seconds=1)


def test_it_encodes_every_code_point_as_json_does():
    service = SERVICES["elsTimetable"]
    points = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    values = ["".join(points[i : i + 500]) for i in range(0, len(points), 500)]
    values += ["", None, '"', "\\", "\x7f", "\u2028", "한글 \t\n"]
    width = len(service.fields)
    values += [None] * (-len(values) % width)
    rows = [tuple(values[i : i + width]) for i in range(0, len(values), width)]
    as_json = [dict(zip(service.fields, row, strict=True)) for row in rows]
    expected = b",".join(
        json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() for row in as_json
    )
    assert encode.page_rows(Result(service, rows), 0, len(rows), "json") == expected


def _keys(school, monday, days=4):
    return {
        "ATPT_OFCDC_SC_CODE": school.office.code,
        "SD_SCHUL_CODE": school.code,
        "TI_FROM_YMD": monday.strftime("%Y%m%d"),
        "TI_TO_YMD": (monday + datetime.timedelta(days=days)).strftime("%Y%m%d"),
    }


def _revised(world):
    """(school, monday, when) of a his school-week revised at ``when``."""
    return next(
        (s, m, world.publications(s.code, m)[1])
        for s in world.schools(level="his")
        if s.profile == "early"
        for m in (MONDAY - WEEK * k for k in range(2, 30))
        if len(world.publications(s.code, m)) > 1
        and world.timetable(s.code, m, m + 4 * datetime.timedelta(days=1), as_of=MONDAY)
    )


def _late(world):
    """(school, monday, when) of an els school-week whose late classes come at ``when``."""
    for school in world.schools(level="els"):
        for monday in (MONDAY, MONDAY - WEEK):
            found = world.late_classes(school.code, monday)
            if found is not None and found[0] > world.publications(school.code, monday)[0]:
                return school, monday, found[0]
    raise AssertionError("no school-week with late classes")


def test_it_serves_cached_pages_byte_for_byte_as_it_renders_them_uncached(neis_sim_factory):
    """Every request goes to a simulator with the page cache (twice: cold, then warm) and to
    one without it, through clock changes, a revision, late classes, every runtime setting
    that shapes a page and an injected INFO-100; all three answers must be identical."""
    cached, plain = neis_sim_factory(), neis_sim_factory(page_cache_bytes=0)
    world = cached.world
    revised_school, revised_monday, revised_at = _revised(world)
    late_school, late_monday, late_at = _late(world)
    revised = ("hisTimetable", _keys(revised_school, revised_monday))
    late = ("elsTimetable", _keys(late_school, late_monday))
    requests = [
        (*revised, {"pIndex": 1, "pSize": 1000}),
        (*revised, {"pIndex": 1, "pSize": 100}),
        (*revised, {"pIndex": 2, "pSize": 100}),
        (*revised, {"pIndex": 2, "pSize": 100, "Type": "xml"}),
        (*revised, {"pIndex": 900, "pSize": 100}),
        (*revised, {"key": None}),
        (*late, {"pIndex": 1, "pSize": 1000}),
        (*late, {"pIndex": 1, "pSize": 1000, "Type": "xml"}),
        ("schoolInfo", {"ATPT_OFCDC_SC_CODE": "J10"}, {"pIndex": 2, "pSize": 50}),
        ("classInfo", {**_keys(late_school, late_monday), "AY": "2026"}, {"pSize": 10}),
    ]
    steps = [
        ("start", lambda c: None),
        ("before the revision", lambda c: c.set_clock(revised_at - SECOND)),
        ("the revision", lambda c: c.set_clock(revised_at)),
        ("back before it", lambda c: c.set_clock(revised_at - SECOND)),
        ("before the late classes", lambda c: c.set_clock(late_at - SECOND)),
        ("the late classes", lambda c: c.set_clock(late_at)),
        ("overstate", lambda c: c.configure(overstate=3)),
        ("repeat mode", lambda c: c.configure(page_mode="repeat")),
        ("short messages", lambda c: c.configure(long_messages=False)),
        ("json type", lambda c: c.configure(json_content_type="application/json")),
        ("xml type", lambda c: c.configure(xml_content_type="application/xml")),
        ("split head", lambda c: c.configure(xml_split_head=True)),
    ]
    bodies: dict[tuple, bytes] = {}
    for label, step in steps:
        for sim in (cached, plain):
            step(sim.control)
        for number, (service, keys, extra) in enumerate(requests):
            extra = dict(extra)
            key = extra.pop("key", "")
            answers = []
            for sim, notice in ((cached, False), (cached, True), (plain, False), (plain, True)):
                if notice:  # the same page again, with INFO-100 in its head
                    sim.control.inject("info100")
                got = sim.get(service, key=key, **keys, **extra)
                answers.append((got.status_code, got.headers["Content-Type"], got.content))
            cold, notice, plain_page, plain_notice = answers
            again = cached.get(service, key=key, **keys, **extra)
            warm = (again.status_code, again.headers["Content-Type"], again.content)
            assert cold == warm == plain_page, (label, number)
            assert notice == plain_notice, (label, number)
            bodies[label, number] = cold[2]
    # The clock steps did change the bytes, and the cache did serve some of them.
    assert bodies["before the revision", 0] != bodies["the revision", 0]
    assert bodies["before the late classes", 6] != bodies["the late classes", 6]
    assert cached.simulator.hub.pages.hits > len(requests) * len(steps)
    assert plain.simulator.hub.pages.hits == 0 and len(plain.simulator.hub.pages) == 0


def test_it_keeps_pages_within_their_bound_and_drops_them_when_turned_off(neis_sim_factory):
    sim = neis_sim_factory(page_cache_bytes=200_000)
    pages = sim.simulator.hub.pages
    sizes = [len(sim.get("schoolInfo", pIndex=i, pSize=100).content) for i in range(1, 9)]
    assert sum(sizes) > 200_000 >= pages.weight > 0
    assert 1 < len(pages) < len(sizes)
    sim.control.configure(page_cache_bytes=50_000)
    sim.get("schoolInfo", pIndex=1, pSize=10)
    assert pages.weight <= 50_000
    sim.control.configure(page_cache_bytes=0)
    assert sim.get("schoolInfo", pIndex=1, pSize=10).status_code == 200
    assert len(pages) == pages.weight == 0
