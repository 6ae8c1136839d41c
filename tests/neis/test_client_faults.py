"""Transport and body faults over real HTTP: all transient, each with its own code."""

from __future__ import annotations

import socket
import time

import pytest

from collector.neis.client import NeisClient
from collector.neis.errors import NeisTransientError

pytest_plugins = ["tests.fixtures_neis"]

OFFICE = "I10"


def client_for(sim, **options) -> NeisClient:
    return NeisClient(sim.url, sim.key, clock=sim.control.now, **options)


@pytest.mark.parametrize(
    ("fault", "code", "says"),
    [
        ("http500", "HTTP-500", "500 Internal Server Error"),
        ("http502", "HTTP-502", "502 Bad Gateway"),
        ("http503", "HTTP-503", "503 Service Unavailable"),
        ("maintenance", "BAD-BODY", "HTTP 200, markup instead of JSON"),
        ("drop", "CONNECTION", "schoolInfo page 1"),
        ("partial", "CONNECTION", "IncompleteRead"),
        ("truncated", "BAD-BODY", "invalid JSON"),
        ("invalid_json", "BAD-BODY", "invalid JSON"),
    ],
)
def test_it_raises_transient_for_each_fault(neis_sim, fault, code, says):
    neis_sim.control.inject(fault)
    with pytest.raises(NeisTransientError) as caught:
        client_for(neis_sim).schools(office_code=OFFICE)
    assert caught.value.code == code
    assert says in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("fault", ["drop", "partial", "http503", "truncated"])
def test_it_recovers_on_the_next_call_after_a_fault(neis_sim, fault):
    client = client_for(neis_sim)
    client.schools(office_code=OFFICE)  # leaves a kept-alive connection in the pool
    neis_sim.control.inject(fault)
    with pytest.raises(NeisTransientError):
        client.schools(office_code=OFFICE)
    assert client.schools(office_code=OFFICE).missing == 0


def test_it_times_out_on_a_hung_request(neis_sim_factory):
    sim = neis_sim_factory(hang_seconds=2.0)
    sim.control.inject("hang")
    started = time.monotonic()
    with pytest.raises(NeisTransientError) as caught:
        client_for(sim, read_timeout=0.3).schools(office_code=OFFICE)
    assert caught.value.code == "TIMEOUT"
    assert time.monotonic() - started < 1.5


def test_it_waits_out_latency_within_its_read_timeout(neis_sim):
    neis_sim.control.set_faults(fault_latency_ms=300)
    neis_sim.control.inject("latency")
    result = client_for(neis_sim, read_timeout=2.0).schools(office_code=OFFICE)
    assert result.missing == 0


def test_it_times_out_when_latency_exceeds_its_read_timeout(neis_sim):
    neis_sim.control.set_faults(latency_ms=500)
    with pytest.raises(NeisTransientError) as caught:
        client_for(neis_sim, read_timeout=0.2).schools(office_code=OFFICE)
    assert caught.value.code == "TIMEOUT"


def test_it_raises_transient_during_a_maintenance_window(neis_sim):
    neis_sim.control.add_maintenance("2026-11-21T09:00:00+09:00", "2026-11-21T11:00:00+09:00")
    client = client_for(neis_sim)
    with pytest.raises(NeisTransientError) as caught:
        client.schools(office_code=OFFICE)
    assert caught.value.code == "BAD-BODY"
    assert "시스템 점검" in str(caught.value)
    neis_sim.control.advance(hours=1)
    assert client.schools(office_code=OFFICE).rows


def test_it_uses_the_status_of_a_maintenance_page_served_as_503(neis_sim):
    neis_sim.control.configure(maintenance_status=503)
    neis_sim.control.inject("maintenance")
    with pytest.raises(NeisTransientError) as caught:
        client_for(neis_sim).schools(office_code=OFFICE)
    assert caught.value.code == "HTTP-503"


def test_it_raises_transient_for_a_closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NeisTransientError) as caught:
        NeisClient(f"http://127.0.0.1:{port}", "key").schools()
    assert caught.value.code == "CONNECTION"


def test_it_survives_random_faults_with_only_named_errors(neis_sim):
    neis_sim.control.set_faults(
        rate=0.2,
        kinds=["http502", "drop", "partial", "truncated", "error500", "maintenance"],
    )
    client = client_for(neis_sim, page_size=100)
    outcomes = set()
    for _ in range(30):
        try:
            outcomes.add(client.schools(office_code=OFFICE).missing)
        except NeisTransientError as exc:
            outcomes.add(exc.code)
    assert 0 in outcomes  # some calls got through every page
    assert outcomes - {0} <= {"HTTP-502", "CONNECTION", "BAD-BODY", "ERROR-500"}
    assert len(outcomes) > 2
