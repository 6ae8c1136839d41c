#!/usr/bin/env python
"""Client CPU per lesson of a first load: timetable pages (the bytes NEIS serves) to lessons
stored in PostgreSQL, in the worker's process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/neis python bench/bench_first_load.py
    python bench/bench_first_load.py --compare /path/to/other/checkout

Pages are rendered by the simulator's own encoder as bench_parse.py renders them (office
J10's schools, every n-th to ``--schools``, a 3-week window, 1,000 rows a page). Each school
is one answer, converted as ``FetchResult`` converts it (``parse.read_lessons``, then
``FetchResult.rows``), then stored as the pipeline stores it (``store_lessons`` with the
history and a digest) into a window holding nothing, in a transaction rolled back so that
every round is a first load. The subjects and the month partitions are stored once
beforehand, as after the first schools of a run. Figures are CPU microseconds of this
process (``time.process_time``, the server's own work not counted) per lesson served, for
converting and for storing.

``--compare PATH`` runs the same rounds alternately in this checkout and in the one at PATH
(each round a process of its own, importing the project from each checkout: before and
after a change in one run), and prints each one's medians. The scratch database
(``--database``) is created, migrated and dropped by every process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# The checkout measured: this one, or the one --compare runs this script for (its project
# code; the bench modules and the simulator stay this checkout's, so both render alike).
TREE = Path(os.environ.get("BENCH_TREE", ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(TREE))

from measure import libpq, median, print_table, with_database  # noqa: E402

DATABASE = "neis_bench_first_load"


def prepare(args):
    """The rendered answers and their schools, in a fresh scratch database."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    with psycopg.connect(libpq(with_database(url, "postgres")), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.database}")
        admin.execute(f"CREATE DATABASE {args.database}")
    os.environ["DATABASE_URL"] = with_database(url, args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    # As bench_pipeline.py runs its workers: DEBUG off (no SQL kept and timed a statement).
    os.environ.update(DEBUG="0", SECRET_KEY="bench-first-load", SECURE_SSL_REDIRECT="0")
    os.environ.update(LOG_LEVEL="WARNING")
    import django
    from django.core.management import call_command

    django.setup()  # imports the project from TREE: bench_parse's own path comes after
    call_command("migrate", verbosity=0, skip_checks=True)

    import bench_parse
    from django.db import transaction
    from django.utils import timezone

    from collector.models import School
    from collector.neis.records import SchoolRecord
    from collector.registry import upsert_schools
    from collector.storage import _subject_ids, ensure_partitions

    answers = bench_parse.render(args.schools)
    schools = [
        SchoolRecord(bench_parse.OFFICE, "", code, f"벤치{code}", "초등학교", "", "", "", "", None)
        for _, code, _ in answers
    ]
    upsert_schools(schools, seen_at=timezone.now())
    by_code = School.objects.in_bulk(field_name="code")
    with transaction.atomic():
        ensure_partitions(*bench_parse.WINDOW)  # as a schedule creates them ahead
        for answer in answers:
            records = fetched(*answer).rows
            _subject_ids({record.subject_raw: record.subject for record in records})
    return answers, by_code


def fetched(service: str, code: str, pages: list[bytes]):
    """The answer's FetchResult, its pages converted when its rows are first read."""
    import bench_parse

    from collector.neis import parse
    from collector.neis.client import FetchResult, _LessonsOf

    result = FetchResult()
    convert = _LessonsOf(parse.LessonRows(), bench_parse.OFFICE, code, *bench_parse.WINDOW)
    rows = [parse.read_lessons(body, [service]).rows for body in pages]
    result._unconverted.append((convert, rows, lambda reasons: None))
    return result


class RolledBack(Exception):
    pass


def one_round(answers, by_code) -> dict:
    import bench_parse
    from django.db import transaction

    from collector.storage import Observer, store_lessons

    converting = storing = 0.0
    lessons = 0
    for service, code, pages in answers:
        started = time.process_time()
        records = fetched(service, code, pages).rows
        converted = time.process_time()
        try:
            with transaction.atomic():
                result = store_lessons(
                    by_code[code],
                    *bench_parse.WINDOW,
                    records,
                    history=Observer(run_id=1),
                    digest="0" * 40,
                    unknown=True,
                )
                stored = time.process_time()
                raise RolledBack
        except RolledBack:
            pass
        assert result.inserted == result.stored and not result.skipped
        converting += converted - started
        storing += stored - converted
        lessons += len(records)
    return {"convert": converting / lessons * 1e6, "store": storing / lessons * 1e6}


def rounds_here(args) -> list[dict]:
    answers, by_code = prepare(args)
    import collector.storage

    assert Path(collector.storage.__file__).is_relative_to(TREE), "measuring another checkout"
    one_round(answers, by_code)  # warm: caches and the planner
    gc.collect()
    gc.freeze()  # what a worker holds between tasks is old; the rounds' garbage is not
    try:
        return [one_round(answers, by_code) for _ in range(args.rounds)]
    finally:
        import psycopg
        from django.db import connections

        connections.close_all()
        url = libpq(with_database(os.environ["DATABASE_URL"], "postgres"))
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {args.database}")


def compare(args) -> None:
    """Rounds alternately in this checkout and in ``args.compare``, a process a round."""
    trees = {"this": ROOT, "other": Path(args.compare).resolve()}
    results: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            command = [sys.executable, str(Path(__file__).resolve()), "--json", "--rounds", "1"]
            command += ["--schools", str(args.schools), "--database", args.database]
            # In the tree: Celery's Django fix-up puts the working directory first on the path.
            env = {**os.environ, "BENCH_TREE": str(tree)}
            done = subprocess.run(
                command, cwd=tree, env=env, capture_output=True, text=True, check=True
            )
            results[name] += json.loads(done.stdout.splitlines()[-1])
    report(results, f"this checkout ({ROOT}) and the other ({trees['other']}), alternately")


def report(results: dict[str, list[dict]], what: str) -> None:
    rounds = len(next(iter(results.values())))
    print(f"client CPU us a lesson of a first load, medians of {rounds} rounds; {what}")
    rows = []
    for name, measured in results.items():
        convert = median(r["convert"] for r in measured)
        store = median(r["store"] for r in measured)
        total = median(r["convert"] + r["store"] for r in measured)
        rows.append((name, convert, store, total))
    print_table(
        ["checkout", "convert", "store", "total"],
        rows,
        formats=dict.fromkeys(["convert", "store", "total"], ".2f"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schools", type=int, default=80, help="J10 schools (every n-th)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (of each checkout)")
    parser.add_argument("--database", default=DATABASE, help="scratch database, dropped")
    parser.add_argument("--compare", metavar="PATH", help="another checkout, run alternately")
    parser.add_argument("--json", action="store_true", help="print the rounds as JSON")
    args = parser.parse_args()
    if urlsplit(os.environ.get("DATABASE_URL", "")).scheme not in ("postgres", "postgresql"):
        print("DATABASE_URL must point at PostgreSQL (postgres://user@host:5432/name)")
        return 2
    if args.compare:
        compare(args)
    elif args.json:
        print(json.dumps(rounds_here(args)))
    else:
        report({"this": rounds_here(args)}, str(TREE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
