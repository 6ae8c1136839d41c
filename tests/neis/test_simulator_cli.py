"""Command-line options of ``python -m neis_simulator`` / ``manage.py neis_simulator``."""

import argparse

import pytest

from neis_simulator import cli

pytest_plugins = ["tests.fixtures_neis"]


def _options(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return vars(parser.parse_args(list(argv)))


def test_it_builds_a_config_from_options():
    config = cli.config_from_options(
        _options(
            "--seed",
            "5",
            "--clock",
            "2026-11-21T10:00",
            "--freeze",
            "--quota",
            "50",
            "--keys",
            "aaaa1111:blocked",
            "bbbb2222",
            "--fault-rate",
            "0.1",
            "--fault-kinds",
            "http503,drop",
            "--page-mode",
            "repeat",
            "--overstate",
            "2",
            "--maintenance",
            "2026-11-22T02:00/2026-11-22T04:00",
            "--archive-before",
            "2023",
            "--no-dirt",
            "--short-messages",
            "--latency-ms",
            "200",
        )
    )
    assert (config.seed, config.daily_quota, config.page_mode, config.overstate) == (
        5,
        50,
        "repeat",
        2,
    )
    assert config.keys == (("aaaa1111", "blocked"), ("bbbb2222", "valid"))
    assert config.fault_kinds == ("http503", "drop") and config.fault_rate == 0.1
    assert config.maintenance == (("2026-11-22T02:00", "2026-11-22T04:00"),)
    assert config.archive_before_ay == 2023 and config.unsorted_school_rate == 0.0
    assert not config.long_messages and config.freeze_clock and config.latency_ms == 200


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--fault-kinds", "meteor"), "unknown fault kind 'meteor'; known: "),
        (("--fault-rate", "1.5"), "--fault-rate must be between 0 and 1"),
        (
            ("--keys", "abc:maybe"),
            "bad --keys item 'abc:maybe': use KEY or KEY:valid|invalid|blocked",
        ),
        (
            ("--maintenance", "2026-11-22T04:00/2026-11-22T02:00"),
            "bad --maintenance '2026-11-22T04:00/2026-11-22T02:00': use START/END, ISO times",
        ),
        (("--maintenance", "tomorrow"), "bad --maintenance 'tomorrow': use START/END, ISO times"),
        (("--clock", "yesterday"), "bad --clock 'yesterday': use ISO 8601"),
        (("--quota", "-1"), "--quota must not be negative"),
        (("--quota-reset", "25:00"), "bad --quota-reset '25:00': use HH:MM"),
    ],
)
def test_it_rejects_bad_options_with_a_clear_message(argv, message):
    with pytest.raises(ValueError) as caught:
        cli.config_from_options(_options(*argv))
    # The list of known fault kinds after "known:" grows with the simulator.
    assert str(caught.value).startswith(message)


def test_it_prints_its_url_and_a_valid_key(neis_sim_process_factory):
    sim = neis_sim_process_factory("--quota", "5", "--no-dirt")
    assert sim.url.startswith("http://127.0.0.1:") and len(sim.key) == 32
    assert (
        sim.get("schoolInfo", pSize=1).json()["schoolInfo"][0]["head"][1]["RESULT"]["CODE"]
        == "INFO-000"
    )
    assert sim.control.settings()["daily_quota"] == 5
    school = next(s for s in sim.world.schools(level="mis") if s.profile != "never")
    keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
    assert sim.fetch_all("misTimetable", ALL_TI_YMD="20261118", **keys) == sim.world.timetable(
        school.code, "20261118", "20261118", as_of=sim.control.now()
    )
