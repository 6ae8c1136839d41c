"""What the client fetches equals the simulator's ground truth, dirt and all.

The truth is ``World.timetable`` / ``World.school_info_rows`` (the rows the hub serves)
converted through the parser, so any row the client loses, adds, reorders or mangles on the
way shows up as a difference.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable

import pytest

from collector.neis import parse
from collector.neis.client import NeisClient
from collector.neis.records import Level

pytest_plugins = ["tests.fixtures_neis"]

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)
LEVELS = {"els": Level.ELEMENTARY, "mis": Level.MIDDLE, "his": Level.HIGH, "sps": Level.SPECIAL}


def client_for(sim, **options) -> NeisClient:
    return NeisClient(sim.url, sim.key, clock=sim.control.now, **options)


def served(sim, code: str) -> list[dict]:
    return sim.world.timetable(code, MONDAY, FRIDAY, as_of=sim.control.now())


def find_schools(sim, level: str, wanted: Callable[[list[dict]], bool], count: int = 1):
    """The first ``count`` schools of a level whose served week satisfies ``wanted``."""
    found = []
    for school in sim.world.schools(level=level)[:600]:
        if wanted(served(sim, school.code)):
            found.append(school)
            if len(found) == count:
                return found
    pytest.fail(f"no {level} school in the simulated world has what this test needs")


def fetch(sim, school, **options):
    level = LEVELS[school.level]
    return client_for(sim, **options).timetable(
        level, school.office.code, school.code, MONDAY, FRIDAY
    )


@pytest.mark.parametrize("level", ["els", "mis", "his", "sps"])
def test_it_fetches_exactly_the_served_week_at_every_level(neis_sim, level):
    for school in find_schools(neis_sim, level, bool, count=3):
        rows = served(neis_sim, school.code)
        result = fetch(neis_sim, school, page_size=300)
        assert result.rows == [parse.lesson_from_row(row) for row in rows]
        assert result.list_total_count == result.received == len(rows)
        assert (result.invalid, result.missing) == (0, 0)
        assert result.pages == -(-len(rows) // 300)
        assert result.services == [LEVELS[level].service]


def test_it_fetches_the_national_school_list(neis_sim):
    result = client_for(neis_sim).schools()
    rows = neis_sim.world.school_info_rows()
    assert result.rows == [parse.school_from_row(row) for row in rows]
    assert result.pages == -(-len(rows) // 1000)
    assert len(rows) > 12_000
    assert {school.kind for school in result.rows} >= {"각종학교(중)", "평생학교(고)-3년6학기"}


def test_it_filters_schools_by_kind_and_code(neis_sim):
    result = client_for(neis_sim).schools(office_code="B10", kind="특수학교")
    assert result.rows
    assert {(s.office_code, s.kind) for s in result.rows} == {("B10", "특수학교")}
    one = result.rows[0]
    assert client_for(neis_sim).schools(school_code=one.code).rows == [one]


def test_it_keeps_every_elective_sharing_a_period(neis_sim):
    def shared(slots):
        return {slot for slot, n in Counter(slots).items() if n > 1}

    def served_slots(rows):
        return shared((r["ALL_TI_YMD"], r["GRADE"], r["CLASS_NM"], r["PERIO"]) for r in rows)

    [school] = find_schools(neis_sim, "his", lambda rows: len(served_slots(rows)) > 3)
    records = fetch(neis_sim, school).rows
    kept = shared(
        (r.date.strftime("%Y%m%d"), str(r.grade), r.class_name, str(r.period)) for r in records
    )
    assert kept == served_slots(served(neis_sim, school.code))
    assert len(records) == len(served(neis_sim, school.code))


def test_it_keeps_byte_identical_duplicate_rows(neis_sim):
    def duplicated(rows):
        return [row for row, n in Counter(map(repr, rows)).items() if n > 1]

    [school] = find_schools(neis_sim, "mis", lambda rows: bool(duplicated(rows)))
    records = fetch(neis_sim, school).rows
    assert any(n > 1 for n in Counter(records).values())


def test_it_turns_a_null_subject_into_empty_text(neis_sim):
    [school] = find_schools(
        neis_sim, "els", lambda rows: any(r["ITRT_CNTNT"] is None for r in rows)
    )
    blanks = [r for r in fetch(neis_sim, school).rows if r.subject_raw == ""]
    assert blanks
    assert {r.subject for r in blanks} == {""}


def test_it_reads_14_digit_load_dtm(neis_sim):
    [school] = find_schools(
        neis_sim, "his", lambda rows: any(len(r["LOAD_DTM"] or "") == 14 for r in rows)
    )
    stamps = {r.load_dtm for r in fetch(neis_sim, school).rows}
    assert None not in stamps
    assert any(s.time() != datetime.time(0, 0) for s in stamps)
    assert {s.utcoffset() for s in stamps} == {datetime.timedelta(hours=9)}


def test_it_keeps_unsorted_rows_in_served_order(neis_sim):
    def unsorted(rows):
        keys = [(r["ALL_TI_YMD"], r["GRADE"], r["CLASS_NM"], int(r["PERIO"])) for r in rows]
        return keys != sorted(keys)

    [school] = find_schools(neis_sim, "mis", unsorted)
    records = fetch(neis_sim, school).rows
    assert records == [parse.lesson_from_row(r) for r in served(neis_sim, school.code)]


def test_it_strips_marks_but_keeps_the_served_subject(neis_sim):
    [school] = find_schools(
        neis_sim, "his", lambda rows: any((r["ITRT_CNTNT"] or "").startswith("-") for r in rows)
    )
    dashed = [r for r in fetch(neis_sim, school).rows if r.subject_raw.startswith("-")]
    assert dashed
    assert all(r.subject == parse.normalise_subject(r.subject_raw) for r in dashed)
    assert not any(r.subject.startswith("-") for r in dashed)


def test_it_keeps_roman_numerals_and_brackets(neis_sim):
    def marked(rows):
        return any(any(c in (r["ITRT_CNTNT"] or "") for c in ["Ⅰ", "Ⅱ", "(", "["]) for r in rows)

    [school] = find_schools(neis_sim, "his", marked)
    subjects = {r.subject for r in fetch(neis_sim, school).rows}
    assert any(any(c in s for c in ["Ⅰ", "Ⅱ", "(", "["]) for s in subjects)
