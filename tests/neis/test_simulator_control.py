"""Control and observability, in-process and over HTTP in a subprocess (item 18)."""

import json
import re
import threading

import requests

from neis_simulator import Simulator, SimulatorConfig, World, key_tag

pytest_plugins = ["tests.fixtures_neis"]


def test_it_counts_requests_by_service_key_and_outcome(neis_sim):
    neis_sim.get("schoolInfo", pSize=1)
    neis_sim.get("schoolInfo", pSize=1, key=None)
    neis_sim.get("nothing")
    neis_sim.get("schoolInfo", key="abcd" * 8)
    stats = neis_sim.control.stats()
    assert stats["requests"] == 4
    assert stats["by_service"] == {"schoolInfo": 3, "nothing": 1}
    assert stats["by_key"] == {key_tag(neis_sim.key): 2, "(keyless)": 1, key_tag("abcd" * 8): 1}
    assert stats["by_outcome"] == {"INFO-000": 2, "ERROR-310": 1, "ERROR-290": 1}
    assert stats["rows_served"] == 6


def test_it_never_keeps_or_shows_a_full_key_in_its_stats_or_log(neis_sim):
    sent = [neis_sim.key, "f" * 32, "0123456789abcdef0123456789abcdef"]
    neis_sim.control.set_quota(1)  # so that after_337 counts keys too
    for key in sent * 2:
        neis_sim.get("schoolInfo", pSize=1, key=key)
    for shown in (neis_sim.control.stats(), neis_sim.control.log()):
        text = json.dumps(shown)
        assert not any(key in text for key in sent)
    over_http = requests.get(f"{neis_sim.url}/_sim/stats").text
    assert not any(key in over_http for key in sent)
    state = neis_sim.simulator.state.stats
    kept = repr((state.by_key, state.after_337, list(state.log)))
    assert not any(key in kept for key in sent)
    tags = neis_sim.control.stats()["by_key"]
    assert sorted(tags) == sorted(key_tag(key) for key in sent)
    # A tag tells keys apart without giving them away: four characters, then a hash.
    assert all(re.fullmatch(r"[0-9a-f]{4}~[0-9a-f]{8}", tag) for tag in tags)
    assert key_tag("abcd" * 8) != key_tag("abcd" * 7 + "abce")


def test_it_records_the_peak_of_concurrent_hub_requests(neis_sim):
    neis_sim.control.set_faults(latency_ms=500)  # long enough for all four to overlap
    start = threading.Barrier(4)

    def call():
        start.wait()
        requests.get(
            neis_sim.hub("schoolInfo"),
            params={"KEY": neis_sim.key, "Type": "json", "pSize": 1},
            timeout=10,
        )

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    neis_sim.control.clear_faults()
    for _ in range(3):
        neis_sim.get("schoolInfo", pSize=1)
    stats = neis_sim.control.stats()
    assert stats["max_in_flight"] == 4
    assert stats["in_flight"] == 0
    neis_sim.control.reset_stats()
    neis_sim.get("schoolInfo", pSize=1)
    assert neis_sim.control.stats()["max_in_flight"] == 1


def test_it_keeps_a_bounded_log_with_keys_redacted(neis_sim_factory):
    sim = neis_sim_factory(log_size=5)
    for index in range(1, 9):
        sim.get("schoolInfo", pIndex=index, pSize=1)
    log = sim.control.log()
    assert [entry["params"]["pIndex"] for entry in log] == ["4", "5", "6", "7", "8"]
    assert all(entry["key"] == key_tag(sim.key) for entry in log)
    assert all(entry["params"]["KEY"] == key_tag(sim.key) for entry in log)
    assert sim.key not in repr(log)
    assert log[-1]["outcome"] == "INFO-000" and log[-1]["rows"] == 1
    assert log[-1]["at"] == "2026-11-21T10:00:00+09:00"
    assert len(sim.control.log(limit=2)) == 2


def test_it_resets_stats(neis_sim):
    neis_sim.get("schoolInfo", pSize=1)
    neis_sim.control.reset_stats()
    stats = neis_sim.control.stats()
    assert stats["requests"] == 0 and stats["by_key"] == {} and neis_sim.control.log() == []


def test_it_moves_and_freezes_the_clock(neis_sim):
    control = neis_sim.control
    assert control.clock() == "2026-11-21T10:00:00+09:00"
    assert control.advance(days=1, hours=2) == "2026-11-22T12:00:00+09:00"
    assert control.set_clock("2026-12-01T08:30") == "2026-12-01T08:30:00+09:00"
    assert control.now().isoformat() == "2026-12-01T08:30:00+09:00"


def test_it_answers_control_calls_over_http(neis_sim):
    base = f"{neis_sim.url}/_sim"
    assert requests.get(f"{base}/health").json()["result"]["key"] == neis_sim.key
    answer = requests.post(f"{base}/set_quota", json={"quota": 1}).json()
    assert answer == {"ok": True, "result": None}
    assert requests.get(f"{base}/log", params={"limit": 1}).json()["ok"]
    assert requests.post(f"{base}/nope", json={}).status_code == 404
    bad = requests.post(f"{base}/set_key_state", json={"key": "x", "state": "maybe"})
    assert bad.status_code == 400 and "valid" in bad.json()["error"]
    assert requests.post(f"{base}/configure", json={"seed": 3}).status_code == 400


def test_it_runs_as_a_subprocess_steered_over_http(neis_sim_process):
    sim = neis_sim_process
    assert sim.control.clock() == "2026-11-21T10:00:00+09:00"
    school = next(s for s in sim.world.schools(level="his") if s.profile != "never")
    keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
    served = sim.fetch_all("hisTimetable", TI_FROM_YMD="20261109", TI_TO_YMD="20261120", **keys)
    assert served and served == sim.world.timetable(
        school.code, "20261109", "20261120", as_of=sim.control.now()
    )
    sim.control.inject("http503")
    assert sim.get("schoolInfo", pSize=1).status_code == 503
    sim.control.set_quota(3)
    codes = [sim.get("schoolInfo", pSize=1).json().get("RESULT", {}).get("CODE") for _ in range(3)]
    assert codes[-1] == "ERROR-337"
    sim.control.set_key_state(sim.key, "blocked")
    sim.control.reset_quota()
    assert sim.get("schoolInfo", pSize=1).json()["RESULT"]["CODE"] == "INFO-300"
    stats = sim.control.stats()
    assert stats["by_outcome"]["HTTP503"] == 1 and stats["by_outcome"]["ERROR-337"] >= 1


def test_it_serves_identical_bytes_for_the_same_seed_and_clock(neis_sim):
    twin = Simulator(
        SimulatorConfig(clock="2026-11-21T10:00:00+09:00", freeze_clock=True),
        world=World(SimulatorConfig()),
    ).start()
    try:
        school = next(s for s in neis_sim.world.schools(level="sps") if s.profile != "never")
        keys = {
            "KEY": neis_sim.key,
            "ATPT_OFCDC_SC_CODE": school.office.code,
            "SD_SCHUL_CODE": school.code,
        }
        for path, params in (
            ("schoolInfo", {"KEY": neis_sim.key, "pIndex": 9, "pSize": 700}),
            ("spsTimetable", {**keys, "TI_FROM_YMD": "20261001"}),
            ("SchoolSchedule", keys),
            ("classInfo", keys),
        ):
            for kind in ("json", "xml"):
                one = requests.get(neis_sim.hub(path), params={**params, "Type": kind})
                two = requests.get(f"{twin.url}/hub/{path}", params={**params, "Type": kind})
                assert one.content == two.content, (path, kind)
    finally:
        twin.stop()


def test_it_builds_a_different_world_from_another_seed(neis_world):
    other = World(SimulatorConfig(seed=2))
    assert [s.code for s in other.schools()] != [s.code for s in neis_world.schools()]
