"""The change feed at national scale: `manage.py timetable_changes` over millions of changes.

Fills a scratch database's change history with N rows (a national week's worth by default:
5% of 7 million lessons changed, as removal + addition pairs and reloads), then streams it as
JSON lines to /dev/null in a child process and prints the time and the child's peak resident
memory, next to the same feed over a tenth of the rows: flat memory means the two peaks match.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/neis python bench/bench_changes.py [--rows N]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from measure import with_database

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "neis_bench_changes"


def _url(database: str) -> str:
    return with_database(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/neis"), database
    )


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)


def fill(url: str, rows: int) -> None:
    """``rows`` history rows over 12,000 schools and one week of November 2026."""
    _psql(
        url,
        f"""
        INSERT INTO collector_subject (raw, name) VALUES ('-수학', '수학'), ('영어', '영어')
        ON CONFLICT DO NOTHING;
        INSERT INTO collector_school (id, code, office_id, name, kind, level, location,
            founding_type, day_night, address, first_seen, last_seen, active)
        SELECT s, (7000000 + s)::text, 'B10', 'school ' || s, '중학교', 'middle', '', '', '',
               '', now(), now(), true
        FROM generate_series(1, 12000) AS s;
        INSERT INTO collector_lessonchange (
            observed_at, run_id, unit_id, school_id, kind, lessons, date, grade, class_name,
            period, day_night, track, department, course, classroom, subject_before_id,
            subject_after_id, academic_year_before, academic_year_after, semester_before,
            semester_after, load_dtm_before, load_dtm_after)
        SELECT now(), 1, g / 600, 1 + (g / 600) % 12000,
               (ARRAY['added', 'removed', 'reloaded'])[1 + g % 3], 1,
               DATE '2026-11-16' + (g % 5), 1 + g % 6, (1 + g % 9)::text, 1 + g % 7,
               '', '', '', '', '', 1, 2, 2026, 2026, 2, 2, now(), now()
        FROM generate_series(1, {rows}) AS g;
        ANALYZE collector_lessonchange;
        """,
    )


def stream(url: str, limit: int) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of the feed of ``limit`` changes, in a child process."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    command = [sys.executable, "manage.py", "timetable_changes", "--format", "jsonl"]
    command += ["--limit", str(limit)]
    with open(os.devnull, "wb") as sink:
        subprocess.run(command, cwd=ROOT, env=env, stdout=sink, check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=700_000, help="history rows to stream")
    args = parser.parse_args()
    # A local run: with DATABASE_URL set, DEBUG would default to off and want a SECRET_KEY.
    os.environ.setdefault("DEBUG", "1")
    admin = _url("postgres")
    url = _url(BENCH_DB)
    _psql(admin, f"DROP DATABASE IF EXISTS {BENCH_DB}")
    _psql(admin, f"CREATE DATABASE {BENCH_DB}")
    try:
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        subprocess.run(
            [sys.executable, "-c", "import django; django.setup(); "
             "from collector.storage import ensure_partitions; import datetime; "
             "ensure_partitions(datetime.date(2026, 11, 1), datetime.date(2026, 11, 30))"],
            cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "proj.settings"}, check=True,
        )  # fmt: skip
        fill(url, args.rows)
        small = stream(url, args.rows // 10)
        whole = stream(url, args.rows)
    finally:
        _psql(admin, f"DROP DATABASE IF EXISTS {BENCH_DB}")
    print(f"{'changes streamed':>18} {'seconds':>8} {'changes/s':>10} {'peak RSS MiB':>13}")
    for count, (seconds, peak) in ((args.rows // 10, small), (args.rows, whole)):
        print(f"{count:>18,} {seconds:>8.1f} {count / seconds:>10,.0f} {peak:>13.0f}")
    print(f"peak memory ratio, whole / tenth: {whole[1] / small[1]:.2f} (1.0 is flat)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
