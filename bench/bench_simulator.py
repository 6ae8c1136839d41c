"""How many timetable rows per second ONE simulator process serves as JSON pages.

The server runs as a subprocess pinned to CPU 0; this load client pins itself to CPU 1 and
pages with pSize=1000 over one keep-alive ``requests.Session``, counting each page's rows
(and fully parsing one page in 25, which proves the count without benchmarking the
client's JSON parser instead of the server).
Scenarios:

- paging: distinct schools, each asked for a whole semester so far and paged to the end
  (the first page pays for generation; later pages come from the query cache);
- weekly: distinct schools, one school week each, as a weekly national crawl asks;
- warm: 25 schools' semesters again and again (all cached: transport only).

The headline figure is "paging"; the target is 100,000 rows/s.

Before those, in this process: how long the world itself takes to build (the national school
list, target under 2 s) and to generate the biggest elementary school's three weeks (target
under 0.15 s), each printed beside its target. ``--generation-only`` stops there.

    python bench/bench_simulator.py [--seconds 8] [--generation-only]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import threading
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = 100_000
CLOCK = "2026-11-21T10:00:00+09:00"


# Budgets of generation (seconds): a simulator restart, and a cold query of a big school.
WORLD_BUILD_TARGET = 2.0
THREE_WEEKS_TARGET = 0.15


def generation() -> list[tuple[str, float, float]]:
    """(what, seconds, target) of building a world and of one school's first three weeks."""
    sys.path.insert(0, str(ROOT))
    from neis_simulator import SimulatorConfig, World

    started = time.perf_counter()
    world = World(SimulatorConfig())
    built = time.perf_counter() - started
    biggest = max(world.schools(level="els"), key=lambda s: s.size)
    started = time.perf_counter()
    rows = world.timetable(biggest.code, "20261102", "20261120", as_of=CLOCK)
    weeks = time.perf_counter() - started
    return [
        (f"world build ({len(world.schools()):,} schools)", built, WORLD_BUILD_TARGET),
        (f"three weeks of the biggest school ({len(rows):,} rows)", weeks, THREE_WEEKS_TARGET),
    ]


def print_generation(figures) -> None:
    for what, seconds, target in figures:
        verdict = "ok" if seconds < target else "OVER BUDGET"
        print(f"{what:48s} {seconds:7.3f} s   target < {target:.2f} s   {verdict}")


ROW_START = b'{"ATPT_OFCDC_SC_CODE":'
_checked = [0]


def count_rows(body: bytes) -> int:
    """Rows in a page. Every row starts with the office code; every 25th page is also
    parsed in full to prove the count (parsing them all would bench the client instead)."""
    if body.startswith(b'{"RESULT"'):
        return 0
    rows = body.count(ROW_START)
    _checked[0] += 1
    if _checked[0] % 25 == 1:
        parsed = json.loads(body)
        assert len(next(iter(parsed.values()))[1]["row"]) == rows
    return rows


def page_through(session, url, params) -> tuple[int, int]:
    """(rows, pages) of one query, paged to the end."""
    rows = pages = 0
    index = 1
    while True:
        answer = session.get(url, params={**params, "pIndex": index, "pSize": 1000}, timeout=30)
        got = count_rows(answer.content)
        if not got:
            return rows, pages
        rows, pages = rows + got, pages + 1
        if got < 1000:
            return rows, pages
        index += 1


def run(base, key, schools, seconds, params_of, clients) -> tuple[int, int, float, list]:
    """Page through ``schools`` from ``clients`` threads (one keep-alive session each) for
    at most ``seconds``; several clients keep the one server core busy while the client
    core reads the previous answer."""
    totals = {"rows": 0, "pages": 0}
    done: list = []
    todo = iter(schools)
    lock = threading.Lock()
    started = time.perf_counter()

    def client() -> None:
        session = requests.Session()
        while time.perf_counter() - started < seconds:
            with lock:
                school = next(todo, None)
            if school is None:
                return
            service = {
                "els": "elsTimetable",
                "mis": "misTimetable",
                "his": "hisTimetable",
                "sps": "spsTimetable",
            }[school["level"]]
            params = {
                "KEY": key,
                "Type": "json",
                "ATPT_OFCDC_SC_CODE": school["office"],
                "SD_SCHUL_CODE": school["code"],
                **params_of(school),
            }
            rows, pages = page_through(session, f"{base}/hub/{service}", params)
            with lock:
                totals["rows"] += rows
                totals["pages"] += pages
                done.append(school)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals["rows"], totals["pages"], time.perf_counter() - started, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="Length of each scenario.")
    parser.add_argument(
        "--clients", type=int, default=3, help="Concurrent keep-alive sessions (default 3)."
    )
    parser.add_argument(
        "--generation-only",
        action="store_true",
        help="Measure world build and three weeks' generation only, no HTTP scenarios.",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from neis_simulator import launch

    os.sched_setaffinity(0, {1})
    print("generation, in this process on CPU 1")
    print_generation(generation())
    if args.generation_only:
        return 0
    sim = launch.start("--clock", CLOCK, "--freeze", "--quota", "100000000", cpu=0)
    base, key = sim.url, sim.key
    try:
        session = requests.Session()
        # The school list itself, also the warm-up of the connection.
        school_rows, _ = page_through(
            session, f"{base}/hub/schoolInfo", {"KEY": key, "Type": "json"}
        )
        schools = []
        for index in range(1, school_rows // 1000 + 2):
            body = session.get(
                f"{base}/hub/schoolInfo",
                params={"KEY": key, "Type": "json", "pIndex": index, "pSize": 1000},
            ).json()
            for row in body.get("schoolInfo", [{}, {"row": []}])[1]["row"]:
                level = {
                    "초등학교": "els",
                    "중학교": "mis",
                    "고등학교": "his",
                    "특수학교": "sps",
                }.get(row["SCHUL_KND_SC_NM"])
                if level:
                    schools.append(
                        {
                            "office": row["ATPT_OFCDC_SC_CODE"],
                            "code": row["SD_SCHUL_CODE"],
                            "level": level,
                        }
                    )
        # Interleave offices so every scenario sees a national mix of school sizes.
        schools = schools[::7] + schools[3::7] + schools[5::7]
        half = len(schools) // 2

        def semester(_):
            return {"TI_FROM_YMD": "20260901", "TI_TO_YMD": "20261120"}

        def week(_):
            return {"TI_FROM_YMD": "20261116", "TI_TO_YMD": "20261120"}

        n = args.clients
        results = {}
        results["paging"] = run(base, key, schools[:half], args.seconds, semester, n)
        results["weekly"] = run(base, key, schools[half:], args.seconds, week, n)
        # Few enough schools to stay in the server's query cache.
        warm = results["paging"][3][-25:]
        results["warm"] = run(base, key, warm * 1000, args.seconds, semester, n)
    finally:
        launch.stop(sim.process)
    print(
        f"simulator pinned to CPU 0, client to CPU 1; pSize=1000, {args.clients} "
        "keep-alive sessions"
    )
    for name, (rows, pages, elapsed, done) in results.items():
        rate = rows / elapsed
        print(
            f"{name:7s} {rows:>9,} rows {pages:>6,} pages {len(done):>5,} schools "
            f"{elapsed:5.1f}s  {rate:>9,.0f} rows/s  {pages / elapsed:6.1f} pages/s  "
            f"{rate / TARGET:4.2f}x target"
        )
    headline = results["paging"][0] / results["paging"][2]
    print(
        f"headline (paging): {headline:,.0f} rows/s = {headline / TARGET:.2f} x the "
        f"{TARGET:,} rows/s target"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
