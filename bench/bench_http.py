#!/usr/bin/env python
"""CPU a page of the NEIS client's HTTP exchange: sending one GET and reading its body.

    python bench/bench_http.py [--schools 40] [--rounds 9] [--against REV]

A simulator serves over loopback from a child process (its CPU is not counted here). Each
round fetches the same timetable pages through ``NeisClient._exchange`` (limits, inflater and
connection reuse included, no JSON decoding): office J10's schools, every n-th to
``--schools``, the window and clock bench_parse.py uses, 1,000 rows a page. The figures are
CPU microseconds (``time.process_time``) a page, medians with their range.

With ``--against REV`` the client committed at git revision REV (its
collector/neis/client.py, loaded beside this tree's) runs too, alternating with this tree's
round by round, so that a change to the client is measured in one run on a busy machine.
REV's client must have the same ``_exchange(url, query, where)``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_parse import CLOCK, OFFICE, PAGE_SIZE, WINDOW  # noqa: E402
from measure import alternate, median_of, module_from_file, print_medians  # noqa: E402

from collector.neis import client as this_tree  # noqa: E402 (importable only from here on)


def client_at(revision: str, folder: Path) -> ModuleType:
    """collector/neis/client.py as committed at ``revision``, as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:collector/neis/client.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = folder / "client_at_revision.py"
    path.write_text(source)
    return module_from_file(path, "collector.neis._client_at_revision")


def pages(schools: int, key: str) -> list[tuple[str, dict]]:
    """(service, query) of every page of every n-th J10 school's timetable window."""
    from neis_simulator import SimulatorConfig, World
    from neis_simulator.services import SERVICES

    world = World(SimulatorConfig())
    found = [school for school in world.schools(office=OFFICE) if school.level]
    step = max(1, len(found) // schools)
    asked = []
    for school in found[::step][:schools]:
        service = SERVICES[f"{school.level}Timetable"].name
        params = {
            "ATPT_OFCDC_SC_CODE": OFFICE,
            "SD_SCHUL_CODE": school.code,
            "TI_FROM_YMD": WINDOW[0].strftime("%Y%m%d"),
            "TI_TO_YMD": WINDOW[1].strftime("%Y%m%d"),
        }
        total = len(world.query(service, params, CLOCK).rows)
        for index in range(1, max(1, -(-total // PAGE_SIZE)) + 1):
            query = {"Type": "json", "pSize": PAGE_SIZE, **params, "pIndex": index, "KEY": key}
            asked.append((service, query))
    return asked


def exchanging(module: ModuleType, url: str, key: str, asked: list[tuple[str, dict]]):
    """A round: every page through ``module``'s client, with a session of its own (its pools
    warmed first); returns the CPU microseconds a page."""
    client = module.NeisClient(url, key, session=requests.Session())
    client._exchange(f"{client.base_url}/{asked[0][0]}", asked[0][1], "warm-up")

    def run() -> dict:
        spent, size = 0.0, 0
        for service, query in asked:
            started = time.process_time()
            status, body = client._exchange(f"{client.base_url}/{service}", query, service)
            spent += time.process_time() - started
            assert status == 200, status
            size += len(body)
        return {"us": spent / len(asked) * 1e6, "pages": len(asked), "bytes": size}

    return run


def main() -> None:
    from neis_simulator import launch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schools", type=int, default=40, help="J10 schools (every n-th)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of each client")
    parser.add_argument("--against", metavar="REV", help="also run the client of git REV")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clients = {"this tree": this_tree}
        if args.against:
            clients = {args.against: client_at(args.against, Path(folder)), **clients}
        launched = launch.start("--clock", CLOCK, "--freeze")
        try:
            asked = pages(args.schools, launched.key)
            cases = {
                name: exchanging(module, launched.url, launched.key, asked)
                for name, module in clients.items()
            }
            results = alternate(cases, args.rounds)
        finally:
            launch.stop(launched.process)
    some = median_of(next(iter(results.values())), "us")
    print(
        f"{some['pages']} pages of {some['bytes'] / some['pages'] / 1000:,.0f} KB; "
        f"CPU us a page, medians of {args.rounds} rounds"
    )
    print_medians(results, "us", "client", "us/page")


if __name__ == "__main__":
    main()
