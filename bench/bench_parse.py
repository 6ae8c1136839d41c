#!/usr/bin/env python
"""CPU per row of turning timetable pages (the bytes NEIS serves) into LessonRecords.

    python bench/bench_parse.py [--schools 80] [--rounds 3]

Pages are rendered in this process by the simulator's own encoder (``neis_simulator.encode``,
the bytes its hub serves): office J10's schools, every n-th to ``--schools``, the window
2026-11-09..2026-11-29 as of 2026-11-21 10:00 KST, 1,000 rows a page, as bench_pipeline.py
asks. Each school's pages are then converted as the client converts one answer, by two paths:

- row by row: ``parse.read_envelope`` (orjson, a dict a row), then each row through one
  ``parse.LessonRows`` an answer and the school and window check (``client._LessonsOf``):
  the path every page took before, and the one a page the typed path refuses still takes;
- typed: ``parse.read_lessons`` (msgspec, straight into typed rows), then the page through
  ``_LessonsOf.page`` (each column converted through the same memory, the checks by column,
  the records by column, ``records.LessonRecords``); ``typed, records made`` also makes the
  LessonRecord objects, which a first load never does (storage reads the columns).

Both make the same records (checked on every page). The paths run alternately, ``--rounds``
times each; the figures are CPU microseconds (``time.process_time``) per row, medians with
their range. The page peek (``parse.peek_envelope``) that paging does first, the same for
both, is printed apart.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import alternate, print_medians  # noqa: E402

from collector.neis import parse  # noqa: E402 (the project is importable only from here on)
from collector.neis.client import _LessonsOf  # noqa: E402

OFFICE = "J10"
WINDOW = (datetime.date(2026, 11, 9), datetime.date(2026, 11, 29))
CLOCK = "2026-11-21T10:00:00+09:00"
PAGE_SIZE = 1000


def render(schools: int) -> list[tuple[str, str, list[bytes]]]:
    """(service, school code, pages) of every n-th J10 school with a timetable."""
    from neis_simulator import SimulatorConfig, World, encode
    from neis_simulator.services import SERVICES

    world = World(SimulatorConfig())
    found = [school for school in world.schools(office=OFFICE) if school.level]
    step = max(1, len(found) // schools)
    answers = []
    for school in found[::step][:schools]:
        service = SERVICES[f"{school.level}Timetable"]
        params = {"ATPT_OFCDC_SC_CODE": OFFICE, "SD_SCHUL_CODE": school.code}
        params.update(TI_FROM_YMD=WINDOW[0].strftime("%Y%m%d"))
        params.update(TI_TO_YMD=WINDOW[1].strftime("%Y%m%d"))
        result = world.query(service.name, params, CLOCK)
        total = len(result.rows)
        pages = []
        for start in range(0, total, PAGE_SIZE):
            rows = encode.page_rows(result, start, min(start + PAGE_SIZE, total), "json")
            pages.append(encode.json_page(service.envelope, total, "정상 처리되었습니다.", rows))
        answers.append((service.name, school.code, pages))
    return answers


def row_by_row(convert: _LessonsOf, service: str, body: bytes) -> list:
    records, reasons = [], Counter()  # as FetchResult._convert counts the rows it drops
    for row in parse.read_envelope(body, [service]).rows:
        try:
            records.append(convert(row))
        except parse.InvalidRow as exc:
            reasons[exc.reason] += 1
    return records


def typed(convert: _LessonsOf, service: str, body: bytes) -> list:
    envelope = parse.read_lessons(body, [service])
    records = convert.page(envelope.rows) if envelope is not None else None
    return row_by_row(convert, service, body) if records is None else records


def typed_made(convert: _LessonsOf, service: str, body: bytes) -> list:
    return list(typed(convert, service, body))


def peek(convert: _LessonsOf, service: str, body: bytes) -> list:
    return parse.peek_envelope(body, [service]).rows


def converting(answers, path):
    """A round: every answer through ``path`` with a fresh memory each, as the client does;
    returns the CPU microseconds per row."""

    def run() -> dict:
        rows, spent = 0, 0.0
        for service, code, pages in answers:
            started = time.process_time()
            convert = _LessonsOf(parse.LessonRows(), OFFICE, code, *WINDOW)
            for body in pages:
                rows += len(path(convert, service, body))
            spent += time.process_time() - started
        return {"us": spent / rows * 1e6, "rows": rows}

    return run


def check(answers) -> None:
    for service, code, pages in answers:
        old = _LessonsOf(parse.LessonRows(), OFFICE, code, *WINDOW)
        new = _LessonsOf(parse.LessonRows(), OFFICE, code, *WINDOW)
        for body in pages:
            assert parse.read_lessons(body, [service]) is not None, "the typed path refused"
            assert typed(new, service, body) == row_by_row(old, service, body), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schools", type=int, default=80, help="J10 schools (every n-th)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each path")
    args = parser.parse_args()
    answers = render(args.schools)
    pages = sum(len(pages) for _, _, pages in answers)
    check(answers)
    paths = {"row by row": row_by_row, "typed": typed, "typed, records made": typed_made}
    paths["peek (both)"] = peek
    results = alternate(
        {name: converting(answers, path) for name, path in paths.items()}, args.rounds
    )
    rows = results["typed"][0]["rows"]
    print(
        f"{len(answers)} schools of {OFFICE}, {pages} pages, {rows:,} rows; CPU us a row, "
        f"medians of {args.rounds} rounds"
    )
    medians = print_medians(results, "us", "path", "us/row")
    ratio = medians["row by row"]["us"] / medians["typed"]["us"]
    print(f"typed is {ratio:.1f}x cheaper than row by row")


if __name__ == "__main__":
    main()
