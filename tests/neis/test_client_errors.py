"""RESULT codes, keys and the daily quota over real HTTP: each ends as the right named error."""

from __future__ import annotations

import datetime

import pytest

from collector.clock import SEOUL
from collector.neis import client as neis
from collector.neis.client import NeisClient
from collector.neis.errors import NeisPermanentError, NeisQuotaError, NeisTransientError
from collector.neis.records import Level

pytest_plugins = ["tests.fixtures_neis"]

OFFICE = "I10"
MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)


def client_for(sim, key: str | None = None, **options) -> NeisClient:
    return NeisClient(sim.url, sim.key if key is None else key, clock=sim.control.now, **options)


def test_it_raises_permanent_for_an_invalid_key(neis_sim):
    with pytest.raises(NeisPermanentError) as caught:
        client_for(neis_sim, "0" * 32).schools(office_code=OFFICE)
    assert caught.value.code == "ERROR-290"
    assert "인증키가 유효하지 않습니다" in caught.value.message


def test_it_raises_permanent_for_a_blocked_key(neis_sim):
    neis_sim.control.set_key_state(neis_sim.key, "blocked")
    with pytest.raises(NeisPermanentError) as caught:
        client_for(neis_sim).schools(office_code=OFFICE)
    assert caught.value.code == "INFO-300"


def test_it_works_again_once_a_key_is_unblocked(neis_sim):
    neis_sim.control.set_key_state(neis_sim.key, "blocked")
    client = client_for(neis_sim)
    with pytest.raises(NeisPermanentError):
        client.schools(office_code=OFFICE)
    neis_sim.control.set_key_state(neis_sim.key, "valid")
    assert client.schools(office_code=OFFICE).rows


def test_it_raises_permanent_for_a_missing_required_parameter(neis_sim):
    with pytest.raises(NeisPermanentError) as caught:
        client_for(neis_sim).timetable(Level.HIGH, "", "", MONDAY, FRIDAY)
    assert caught.value.code == "ERROR-300"


def test_it_raises_permanent_for_an_unknown_service(neis_sim, monkeypatch):
    monkeypatch.setattr(neis, "SCHOOL_SERVICE", "SchoolInfo")  # wrong case: another path
    with pytest.raises(NeisPermanentError) as caught:
        client_for(neis_sim).schools(office_code=OFFICE)
    assert caught.value.code == "ERROR-310"


@pytest.mark.parametrize(("page_size", "code"), [("ten", "ERROR-333"), (1001, "ERROR-336")])
def test_it_raises_permanent_for_a_page_size_neis_refuses(neis_sim, page_size, code):
    client = client_for(neis_sim)
    client.page_size = page_size  # the constructor refuses both; this is what NEIS would say
    with pytest.raises(NeisPermanentError) as caught:
        client.schools(office_code=OFFICE)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("fault", "code"),
    [("error500", "ERROR-500"), ("error600", "ERROR-600"), ("error601", "ERROR-601")],
)
def test_it_raises_transient_for_server_result_codes(neis_sim, fault, code):
    neis_sim.control.inject(fault)
    with pytest.raises(NeisTransientError) as caught:
        client_for(neis_sim).schools(office_code=OFFICE)
    assert caught.value.code == code
    assert "schoolInfo page 1" in str(caught.value)


def test_it_raises_for_an_error_on_a_later_page_without_returning_part(neis_sim):
    neis_sim.control.inject("error500", after=1)
    with pytest.raises(NeisTransientError, match="schoolInfo page 2"):
        client_for(neis_sim, page_size=50).schools(office_code=OFFICE)


def test_it_raises_quota_with_the_next_midnight_in_seoul(neis_sim):
    neis_sim.control.set_quota(1)
    client = client_for(neis_sim)
    client.schools(office_code=OFFICE)
    with pytest.raises(NeisQuotaError) as caught:
        client.schools(office_code=OFFICE)
    error = caught.value
    assert error.code == "ERROR-337"
    assert error.resets_at == datetime.datetime(2026, 11, 22, 0, 0, tzinfo=SEOUL)
    assert error.resets_at == datetime.datetime.fromisoformat(neis_sim.control.quota_resets_at())
    assert "2026-11-22T00:00:00+09:00" in str(error)


def test_it_raises_quota_in_the_middle_of_paging(neis_sim):
    neis_sim.control.set_quota(2)
    with pytest.raises(NeisQuotaError, match="schoolInfo page 3"):
        client_for(neis_sim, page_size=50).schools(office_code=OFFICE)


def test_it_uses_the_configured_reset_hour(neis_sim_factory):
    sim = neis_sim_factory(quota_reset="06:00", daily_quota=0)
    sim.control.set_clock("2026-11-21T05:00:00+09:00")
    with pytest.raises(NeisQuotaError) as caught:
        client_for(sim, quota_reset_hour=6).schools(office_code=OFFICE)
    assert caught.value.resets_at == datetime.datetime(2026, 11, 21, 6, 0, tzinfo=SEOUL)
    assert caught.value.resets_at == datetime.datetime.fromisoformat(sim.control.quota_resets_at())


def test_it_works_again_after_the_quota_resets(neis_sim):
    neis_sim.control.set_quota(1)
    client = client_for(neis_sim)
    client.schools(office_code=OFFICE)
    with pytest.raises(NeisQuotaError) as caught:
        client.schools(office_code=OFFICE)
    neis_sim.control.set_clock(caught.value.resets_at.isoformat())
    assert client.schools(office_code=OFFICE).rows
    with pytest.raises(NeisQuotaError) as again:
        client.schools(office_code=OFFICE)
    assert again.value.resets_at == caught.value.resets_at + datetime.timedelta(days=1)


def test_it_works_again_when_an_operator_resets_the_quota(neis_sim):
    neis_sim.control.set_quota(1)
    client = client_for(neis_sim)
    client.schools(office_code=OFFICE)
    with pytest.raises(NeisQuotaError):
        client.schools(office_code=OFFICE)
    neis_sim.control.reset_quota()
    assert client.schools(office_code=OFFICE).rows


def test_it_raises_quota_when_the_keyless_cap_is_spent(neis_sim):
    neis_sim.control.set_keyless_cap(1)
    client = client_for(neis_sim, "")
    client.schools(office_code=OFFICE)
    with pytest.raises(NeisQuotaError):
        client.schools(office_code=OFFICE)
