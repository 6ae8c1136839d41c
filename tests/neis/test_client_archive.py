"""Archive routing over real HTTP: *Timetablebgs below the cut-off, split windows, padding.

The simulator's clock is 2026-11-21 (AY 2026), so by default AY 2024 and earlier are archived
and the boundary is 2025-03-01.
"""

from __future__ import annotations

import datetime

import pytest

from collector.neis import parse
from collector.neis.client import NeisClient
from collector.neis.records import Level

pytest_plugins = ["tests.fixtures_neis"]

FEB_FROM, FEB_TO = datetime.date(2025, 2, 10), datetime.date(2025, 2, 28)
BOUNDARY, MAR_TO = datetime.date(2025, 3, 1), datetime.date(2025, 3, 7)


def client_for(sim, **options) -> NeisClient:
    return NeisClient(sim.url, sim.key, clock=sim.control.now, **options)


def truth(sim, code, start, end, *, archive=False):
    rows = sim.world.timetable(code, start, end, as_of=sim.control.now(), archive=archive)
    return [parse.lesson_from_row(row) for row in rows]


def school_on_both_sides(sim):
    """A high school with lessons both in February 2025 (archived) and March 2025 (current)."""
    for school in sim.world.schools(level="his"):
        if truth(sim, school.code, FEB_FROM, FEB_TO, archive=True) and truth(
            sim, school.code, BOUNDARY, MAR_TO
        ):
            return school
    pytest.fail("no high school has lessons on both sides of the cut-off")


def test_it_agrees_with_the_simulator_on_the_default_cutoff(neis_sim):
    now = neis_sim.control.now()
    assert client_for(neis_sim).archive_cutoff() == neis_sim.world.archive_cutoff(now) == 2025


def test_it_asks_the_archive_for_years_before_the_cutoff(neis_sim):
    school = school_on_both_sides(neis_sim)
    result = client_for(neis_sim).timetable(
        Level.HIGH, school.office.code, school.code, FEB_FROM, FEB_TO
    )
    assert result.services == ["hisTimetablebgs"]
    assert result.rows == truth(neis_sim, school.code, FEB_FROM, FEB_TO, archive=True)
    assert {r.academic_year for r in result.rows} == {2024}
    # Archive answers come under "hisTimetable", with zero-padded class names kept as served.
    assert {len(r.class_name) for r in result.rows} == {2}
    assert all(r.class_name.startswith("0") for r in result.rows if int(r.class_name) < 10)


def test_it_splits_a_window_that_crosses_the_cutoff(neis_sim):
    school = school_on_both_sides(neis_sim)
    result = client_for(neis_sim).timetable(
        Level.HIGH, school.office.code, school.code, FEB_FROM, MAR_TO
    )
    archived = truth(neis_sim, school.code, FEB_FROM, FEB_TO, archive=True)
    current = truth(neis_sim, school.code, BOUNDARY, MAR_TO)
    assert result.services == ["hisTimetablebgs", "hisTimetable"]
    assert result.rows == archived + current
    assert result.list_total_count == result.received == len(archived) + len(current)
    assert result.pages == result.requests == 2
    assert {r.academic_year for r in result.rows} == {2024, 2025}


def test_it_would_find_nothing_in_the_current_service_for_archived_years(neis_sim):
    # Why the cut-off matters: the portal keeps no overlap between the two services.
    school = school_on_both_sides(neis_sim)
    client = client_for(neis_sim, archive_before_ay=2020)
    result = client.timetable(Level.HIGH, school.office.code, school.code, FEB_FROM, FEB_TO)
    assert result.services == ["hisTimetable"]
    assert result.rows == []


def test_it_follows_a_configured_cutoff(neis_sim_factory):
    sim = neis_sim_factory(archive_before_ay=2023)
    school = sim.world.schools(level="mis")[0]
    week = datetime.date(2024, 11, 18), datetime.date(2024, 11, 22)
    expected = truth(sim, school.code, *week)
    assert expected
    client = client_for(sim, archive_before_ay=2023)
    result = client.timetable(Level.MIDDLE, school.office.code, school.code, *week)
    assert result.services == ["misTimetable"]
    assert result.rows == expected
