"""Keys, the daily quota and keyless (sample) mode (docs/neis-api.md section 9, items 6-7)."""

import datetime

import pytest
import requests

from neis_simulator import KST, key_tag

pytest_plugins = ["tests.fixtures_neis"]


def _code(answer):
    body = answer.json()
    return body["RESULT"]["CODE"] if "RESULT" in body else "INFO-000"


def test_it_rejects_unknown_and_invalid_keys_with_error_290(neis_sim):
    assert _code(neis_sim.get("schoolInfo", key="0123456789abcdef0123456789abcdef")) == (
        "ERROR-290"
    )
    neis_sim.control.set_key_state("feedfacefeedfacefeedfacefeedface", "invalid")
    assert _code(neis_sim.get("schoolInfo", key="feedfacefeedfacefeedfacefeedface")) == (
        "ERROR-290"
    )


def test_it_answers_info_300_for_a_blocked_key_and_recovers_when_unblocked(neis_sim):
    neis_sim.control.set_key_state(neis_sim.key, "blocked")
    answer = neis_sim.get("schoolInfo", pSize=1)
    assert answer.status_code == 200 and _code(answer) == "INFO-300"
    neis_sim.control.set_key_state(neis_sim.key, "valid")
    assert _code(neis_sim.get("schoolInfo", pSize=1)) == "INFO-000"


def test_it_stops_a_key_at_its_daily_quota_until_midnight_kst(neis_sim_factory):
    sim = neis_sim_factory(daily_quota=3, clock="2026-11-21T23:59:00+09:00")
    codes = [_code(sim.get("schoolInfo", pSize=1)) for _ in range(5)]
    assert codes == ["INFO-000"] * 3 + ["ERROR-337"] * 2
    assert sim.control.quota_used(sim.key) == 3
    assert sim.control.quota_resets_at() == "2026-11-22T00:00:00+09:00"
    sim.control.advance(seconds=59)
    assert _code(sim.get("schoolInfo", pSize=1)) == "ERROR-337"
    sim.control.advance(seconds=1)
    assert _code(sim.get("schoolInfo", pSize=1)) == "INFO-000"


def test_it_resets_quota_at_a_configured_time(neis_sim_factory):
    sim = neis_sim_factory(daily_quota=1, quota_reset="06:00", clock="2026-11-22T05:00:00+09:00")
    assert _code(sim.get("schoolInfo", pSize=1)) == "INFO-000"
    assert _code(sim.get("schoolInfo", pSize=1)) == "ERROR-337"
    sim.control.set_clock(datetime.datetime(2026, 11, 22, 6, 0, tzinfo=KST))
    assert _code(sim.get("schoolInfo", pSize=1)) == "INFO-000"


def test_it_counts_calls_made_after_error_337(neis_sim_factory):
    sim = neis_sim_factory(daily_quota=2)
    for _ in range(6):
        sim.get("schoolInfo", pSize=1)
    stats = sim.control.stats()
    assert stats["by_outcome"]["ERROR-337"] == 4
    assert stats["after_337"] == {key_tag(sim.key): 3}


def test_it_resets_and_sets_quota_on_request(neis_sim):
    neis_sim.control.set_quota(1)
    neis_sim.get("schoolInfo", pSize=1)
    assert _code(neis_sim.get("schoolInfo", pSize=1)) == "ERROR-337"
    neis_sim.control.reset_quota(neis_sim.key)
    assert _code(neis_sim.get("schoolInfo", pSize=1)) == "INFO-000"
    neis_sim.control.set_quota(10)
    assert _code(neis_sim.get("schoolInfo", pSize=1)) == "INFO-000"


def test_it_serves_the_same_first_five_rows_without_a_key(neis_sim):
    first = neis_sim.get("schoolInfo", key=None).json()["schoolInfo"]
    later = neis_sim.get("schoolInfo", key=None, pIndex=3, pSize=100).json()["schoolInfo"]
    assert first == later
    assert len(first[1]["row"]) == 5
    assert first[0]["head"][0]["list_total_count"] == len(neis_sim.world.schools())
    assert first[1]["row"] == neis_sim.world.school_info_rows()[:5]
    empty_key = requests.get(neis_sim.hub("schoolInfo"), params={"KEY": "", "Type": "json"})
    assert len(empty_key.json()["schoolInfo"][1]["row"]) == 5


def test_it_caps_keyless_calls_per_day(neis_sim_factory):
    sim = neis_sim_factory(keyless_daily_cap=2)
    codes = [_code(sim.get("schoolInfo", key=None)) for _ in range(3)]
    assert codes == ["INFO-000", "INFO-000", "ERROR-337"]
    assert _code(sim.get("schoolInfo", pSize=1)) == "INFO-000"  # keyed calls unaffected


def test_each_key_may_have_a_daily_quota_of_its_own(neis_sim_factory):
    other = "feedfacefeedfacefeedfacefeedface"
    sim = neis_sim_factory(daily_quota=5, keys=((other, "valid"),), key_quotas=((other, 2),))
    assert [_code(sim.get("schoolInfo", key=other, pSize=1)) for _ in range(3)] == (
        ["INFO-000"] * 2 + ["ERROR-337"]
    )
    assert [_code(sim.get("schoolInfo", pSize=1)) for _ in range(6)] == (
        ["INFO-000"] * 5 + ["ERROR-337"]
    )
    sim.control.set_key_quota(sim.key, 1)
    sim.control.set_key_quota(other, None)  # back to the common quota: 3 calls left today
    sim.control.reset_quota()
    assert _code(sim.get("schoolInfo", pSize=1)) == "INFO-000"
    assert _code(sim.get("schoolInfo", pSize=1)) == "ERROR-337"
    assert [_code(sim.get("schoolInfo", key=other, pSize=1)) for _ in range(6)] == (
        ["INFO-000"] * 5 + ["ERROR-337"]
    )


def test_the_command_line_gives_keys_their_own_quota():
    import argparse

    from neis_simulator.cli import add_arguments, config_from_options

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = vars(parser.parse_args(["--keys", "k1", "--key-quota", "k1:7", "--quota", "9"]))
    config = config_from_options(options)
    assert (config.daily_quota, config.key_quotas) == (9, (("k1", 7),))
    bad = vars(parser.parse_args(["--key-quota", "k1:lots"]))
    with pytest.raises(ValueError, match="bad --key-quota item 'k1:lots'"):
        config_from_options(bad)
