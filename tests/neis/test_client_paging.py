"""Paging over real HTTP against the simulator: every way a query can end, and keyless mode."""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import time

import pytest

from collector.neis.client import NeisClient
from collector.neis.errors import NeisTransientError
from collector.neis.records import Level, SchoolRecord

pytest_plugins = ["tests.fixtures_neis"]

OFFICE = "I10"  # Sejong: one schoolInfo page of about 150 rows
SATURDAY = datetime.date(2026, 11, 21)  # the simulator's frozen today


def client_for(sim, **options) -> NeisClient:
    return NeisClient(sim.url, sim.key, clock=sim.control.now, **options)


def recorded(sim, requests: int) -> dict:
    """The simulator's counters once it has logged ``requests`` requests.

    It logs a request just after answering it, so the client can be a moment ahead.
    """
    deadline = time.monotonic() + 5
    while (stats := sim.control.stats())["requests"] < requests and time.monotonic() < deadline:
        time.sleep(0.01)
    return stats


def office_total(sim) -> int:
    return len(sim.world.school_info_rows(ATPT_OFCDC_SC_CODE=OFFICE))


def test_it_reads_every_page_of_a_query(neis_sim):
    total = office_total(neis_sim)
    result = client_for(neis_sim, page_size=40).schools(office_code=OFFICE)
    assert result.pages == result.requests == -(-total // 40)
    assert result.list_total_count == result.received == len(result.rows) == total
    assert result.missing == 0
    assert result.services == ["schoolInfo"]
    assert all(isinstance(row, SchoolRecord) for row in result.rows)
    assert len({row.code for row in result.rows}) == total
    assert recorded(neis_sim, result.requests)["requests"] == result.requests


def test_it_reads_the_proxy_environment_once_per_host(neis_sim, monkeypatch):
    import requests

    session, asked = requests.Session(), []
    merge = session.merge_environment_settings
    monkeypatch.setattr(
        session, "merge_environment_settings", lambda *a: asked.append(a) or merge(*a)
    )
    for _ in range(2):
        result = client_for(neis_sim, page_size=40, session=session).schools(office_code=OFFICE)
    assert result.requests > 1
    assert [url for url, *_ in asked] == [neis_sim.url.split("/hub")[0] + "/"]


def test_it_sends_the_documented_parameters(neis_sim):
    client_for(neis_sim, page_size=40).schools(office_code=OFFICE, kind="중학교")
    recorded(neis_sim, 1)
    entry = neis_sim.control.log(1)[0]
    assert entry["service"] == "schoolInfo"
    params = entry["params"]
    assert params["Type"] == "json"
    assert params["pSize"] == "40"
    assert params["pIndex"] == "1"
    assert params["ATPT_OFCDC_SC_CODE"] == OFFICE
    assert params["SCHUL_KND_SC_NM"] == "중학교"
    assert params["KEY"].startswith(neis_sim.key[:4])


def test_it_does_not_ask_past_the_claimed_total(neis_sim):
    total = office_total(neis_sim)
    result = client_for(neis_sim, page_size=total).schools(office_code=OFFICE)
    assert (result.pages, result.received, result.missing) == (1, total, 0)


def test_it_stops_on_info_200_past_the_end(neis_sim, caplog):
    # An overstated total keeps the client asking after a full last page; INFO-200 ends it.
    neis_sim.control.configure(page_mode="info200", overstate=3)
    total = office_total(neis_sim)
    result = client_for(neis_sim, page_size=total).schools(office_code=OFFICE)
    assert result.pages == result.requests == 2
    assert recorded(neis_sim, 2)["by_outcome"] == {"INFO-000": 1, "INFO-200": 1}
    assert (result.list_total_count, result.received, result.missing) == (total + 3, total, 3)
    assert len(result.rows) == total
    assert f"NEIS claimed {total + 3} rows but served {total}" in caplog.text


def test_it_stops_when_page_1_comes_again(neis_sim, caplog):
    caplog.set_level(logging.INFO, logger="collector.neis.client")
    neis_sim.control.configure(page_mode="repeat", overstate=3)
    total = office_total(neis_sim)
    result = client_for(neis_sim, page_size=total).schools(office_code=OFFICE)
    assert result.pages == 2
    assert len(result.rows) == result.received == total  # the repeat is not kept
    assert len({row.code for row in result.rows}) == total
    assert result.missing == 3
    assert "page 2 repeats page 1" in caplog.text


def test_it_stops_on_a_short_page_when_the_total_is_overstated(neis_sim):
    neis_sim.control.configure(page_mode="repeat", overstate=50)
    total = office_total(neis_sim)
    result = client_for(neis_sim, page_size=100).schools(office_code=OFFICE)
    assert result.pages == 2
    assert result.received == total
    assert result.missing == 50


def test_it_gives_up_at_the_page_cap_and_says_so(neis_sim, caplog):
    client = client_for(neis_sim, page_size=10)
    client.max_pages = 3
    result = client.schools(office_code=OFFICE)
    assert result.pages == 3
    assert result.received == 30
    assert result.missing == office_total(neis_sim) - 30
    assert "hit the 3-page cap" in caplog.text


def test_it_returns_an_empty_result_for_info_200_on_page_1(neis_sim):
    school = neis_sim.world.schools(office=OFFICE, level="mis")[0]
    result = client_for(neis_sim).timetable(Level.MIDDLE, OFFICE, school.code, SATURDAY, SATURDAY)
    assert result.rows == []
    assert (result.pages, result.requests, result.list_total_count, result.missing) == (1, 1, 0, 0)
    assert recorded(neis_sim, 1)["by_outcome"] == {"INFO-200": 1}


def test_it_reports_what_keyless_mode_leaves_out(neis_sim, caplog):
    total = office_total(neis_sim)
    client = NeisClient(neis_sim.url, "", clock=neis_sim.control.now)
    result = client.schools(office_code=OFFICE)
    assert len(result.rows) == result.received == 5
    assert result.list_total_count == total
    assert result.missing == total - 5
    assert result.pages == 1
    recorded(neis_sim, 1)
    assert "KEY" not in neis_sim.control.log(1)[0]["params"]
    assert "keyless mode serves 5" in caplog.text


def test_it_detects_keyless_repeats_with_a_small_page_size(neis_sim):
    # With pSize 5 the first page looks full; keyless NEIS then serves the same 5 rows again.
    client = NeisClient(neis_sim.url, "", page_size=5, clock=neis_sim.control.now)
    result = client.schools(office_code=OFFICE)
    assert (result.pages, result.received) == (2, 5)


def test_it_parses_json_whatever_the_content_type(neis_sim):
    for content_type in ("application/json", "text/plain", "application/octet-stream"):
        neis_sim.control.configure(json_content_type=content_type)
        result = client_for(neis_sim).schools(office_code=OFFICE)
        assert result.received == office_total(neis_sim)


class CountingLimiter:
    """A stand-in for the pipeline's limiter: counts slots and the most held at once."""

    def __init__(self):
        self.entered = self.held = self.most_held = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self):
        with self._lock:
            self.entered += 1
            self.held += 1
            self.most_held = max(self.most_held, self.held)
        try:
            yield
        finally:
            with self._lock:
                self.held -= 1


def test_it_takes_a_limiter_slot_around_every_request(neis_sim):
    limiter = CountingLimiter()
    result = client_for(neis_sim, page_size=40, limiter=limiter).schools(office_code=OFFICE)
    assert limiter.entered == result.requests == recorded(neis_sim, result.requests)["requests"]
    assert limiter.held == 0


def test_it_takes_a_slot_for_requests_that_fail(neis_sim):
    limiter = CountingLimiter()
    neis_sim.control.inject("http503")
    client = client_for(neis_sim, limiter=limiter)
    with pytest.raises(NeisTransientError):
        client.schools(office_code=OFFICE)
    assert (limiter.entered, limiter.held) == (1, 0)


@pytest.mark.parametrize("mode", ["normal", "repeat", "info200"])
def test_a_timetable_decoded_as_it_comes_is_the_one_peeked_at(neis_sim, monkeypatch, mode, caplog):
    """``timetable(peek=False)`` (a window about to be converted whatever it holds) decodes
    each page as it comes and never peeks, and gives the same records, counts and digest,
    whichever way the paging ends: a short page, page 1 again, INFO-200."""
    from collector.neis import parse

    caplog.set_level(logging.INFO, logger="collector.neis.client")
    school = neis_sim.world.schools(office=OFFICE, level="mis")[0]
    week = (datetime.date(2026, 11, 16),) * 2  # a Monday: fewer lessons than a page holds
    lessons = len(neis_sim.world.timetable(school.code, *week, as_of=neis_sim.control.now()))
    page_size = 40
    if mode != "normal":  # a full last page, and a total that asks for one more
        neis_sim.control.configure(page_mode=mode, overstate=3)
        page_size = lessons
    peeks = []
    peek = parse.peek_envelope
    monkeypatch.setattr(parse, "peek_envelope", lambda *a, **k: peeks.append(1) or peek(*a, **k))

    def fetch(**options):
        client = client_for(neis_sim, page_size=page_size)
        return client.timetable(Level.MIDDLE, OFFICE, school.code, *week, **options)

    peeked = fetch()
    assert peeks and peeked.pages >= 2
    peeks.clear()
    decoded = fetch(peek=False)
    assert not peeks
    assert decoded.rows == peeked.rows and len(decoded.rows) == lessons
    counted = ("pages", "requests", "list_total_count", "received", "missing", "digest")
    assert [getattr(decoded, name) for name in counted] == [
        getattr(peeked, name) for name in counted
    ]
    assert caplog.text.count("page 2 repeats page 1") == (2 if mode == "repeat" else 0)
