"""The operations console at a year of history: every admin page and custom view, timed.

Seeds a scratch PostgreSQL database with a year of weekly national collection: 12,500 schools,
52 weeks x 4 levels of scheduled runs (the newest four still running) with one ledger unit per
school (about 650,000 units), 20 million lessons (the newest runs' three school weeks, about
107 a school day, generated in SQL in key order: 8-9 minutes on a loaded 2-core machine), and
change history across the year. Then renders every page with Django's test client, in this
process, logged in as a superuser, and prints each page's server time (median of ``--repeat``
after one warm-up), the CPU it cost (this process and its PostgreSQL backend: a loaded machine
inflates wall time far more) and its query count.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/neis python bench/bench_console.py \
        [--database neis_bench_console] [--lessons 20000000] [--changes 500000] [--repeat 3] \
        [--keep] [--reuse]

With ``DATABASE_URL=sqlite:///...`` the same world is seeded into a scratch SQLite file
(``--database`` names it, in the temporary directory) by ``seed_portable``: rows made in
Python and inserted through Django's connection, the year of ledger rows and change history as
on PostgreSQL but 2 million lessons unless ``--lessons`` says otherwise (the printout says
so). The target is every page under 300 ms on PostgreSQL and under 2 s on SQLite; pages over
it are flagged.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import with_database

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "neis_bench_console"
# The collector's clock during the bench: a Saturday, as in the tests.
CLOCK = "2026-11-21T10:00:00+09:00"
THIS_MONDAY = "2026-11-16"
WEEKS = 52
SCHOOLS = 12_500
TARGET_MS = {"postgresql": 300, "sqlite": 2000}
# Lessons seeded unless --lessons says otherwise: SQLite's are inserted one by one from Python.
DEFAULT_LESSONS = {"postgresql": 20_000_000, "sqlite": 2_000_000}


def _url(database: str) -> str:
    return with_database(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/neis"), database
    )


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)


SEED_REGISTRY = f"""
INSERT INTO collector_subject (id, raw, name)
SELECT n, '과목' || n, '과목' || n FROM generate_series(1, 40) AS n;
-- Levels by share of the registry: half elementary, a quarter middle, a fifth high, a few
-- special schools, and 3% of kinds that are not collected (no level).
INSERT INTO collector_school (id, code, office_id, name, kind, level, location, founding_type,
    day_night, address, first_seen, last_seen, active)
SELECT s, (7000000 + s)::text, o.code, '학교 ' || s,
       CASE WHEN s % 100 < 50 THEN '초등학교' WHEN s % 100 < 76 THEN '중학교'
            WHEN s % 100 < 95 THEN '고등학교' WHEN s % 100 < 97 THEN '특수학교'
            ELSE '공동실습소' END,
       CASE WHEN s % 100 < 50 THEN 'elementary' WHEN s % 100 < 76 THEN 'middle'
            WHEN s % 100 < 95 THEN 'high' WHEN s % 100 < 97 THEN 'special' ELSE '' END,
       '', '', '', '', now(), now(), s % 250 <> 0
FROM generate_series(1, {SCHOOLS}) AS s
JOIN (SELECT code, row_number() OVER (ORDER BY code) - 1 AS i FROM collector_office) o
  ON o.i = s % 18;
"""

# Week w (0 = this week) has one scheduled run per level, created on its Saturday, covering
# the previous, the current and the next school week. This week's four are still running.
SEED_RUNS = f"""
INSERT INTO collector_collectionrun (id, level, offices, school_codes, date_from, date_to,
    trigger, trigger_key, requested_by, note, status, units_total, units_done, units_no_data,
    units_deferred, units_failed, requests, rows_fetched, rows_inserted, rows_updated,
    rows_unchanged, rows_removed, created_at, started_at, finished_at)
SELECT w * 4 + l + 1, lv, '[]', '[]', m - 7, m + 13, 'schedule',
       'schedule:' || lv || ':all:' || (m - 7) || ':' || (m + 13), '', '',
       CASE WHEN w = 0 THEN 'running' ELSE 'done' END, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
       c, c, CASE WHEN w = 0 THEN NULL ELSE c + interval '2 hours' END
FROM generate_series(0, {WEEKS - 1}) AS w, generate_series(0, 3) AS l,
     LATERAL (SELECT (ARRAY['elementary', 'middle', 'high', 'special'])[l + 1] AS lv,
                     DATE '{THIS_MONDAY}' - 7 * w AS m) AS d,
     LATERAL (SELECT (m + 5)::timestamp AT TIME ZONE 'Asia/Seoul'
                     + make_interval(hours => 1 + 3 * l) AS c) AS t;
SELECT setval(pg_get_serial_sequence('collector_collectionrun', 'id'),
              (SELECT max(id) FROM collector_collectionrun));

INSERT INTO collector_schoolrun (run_id, school_id, status, attempts, retries, requests, pages,
    rows_fetched, rows_inserted, rows_updated, rows_unchanged, rows_removed, list_total_count,
    rows_missing, last_error_code, last_error, defer_until, task_id, claim_token,
    lease_expires_at, queued_at, started_at, finished_at, duration_ms)
SELECT r.id, s.id, st, 1, 0, 2, 2, f, f / 10, 0, f - f / 10, 0, f, 0,
       CASE st WHEN 'failed' THEN 'ERROR-' || (500 + 100 * (h % 2))
               WHEN 'deferred' THEN 'ERROR-337' ELSE '' END,
       CASE st WHEN 'failed' THEN 'server fault' WHEN 'deferred' THEN 'quota spent'
               ELSE '' END,
       CASE st WHEN 'deferred' THEN r.created_at + interval '14 hours' END,
       md5(r.id || ':' || s.id), '', NULL, r.created_at, r.created_at,
       CASE WHEN st IN ('done', 'no_data', 'failed') THEN r.created_at + interval '1 hour' END,
       CASE WHEN st IN ('done', 'no_data', 'failed') THEN 900 END
FROM collector_collectionrun r
JOIN collector_school s ON s.level = r.level AND s.active,
     LATERAL (SELECT (s.id * 7 + r.id * 13) % 100 AS h) AS hh,
     LATERAL (SELECT CASE
         WHEN r.status = 'running' AND h < 50 THEN 'done'
         WHEN r.status = 'running' AND h < 52 THEN 'failed'
         WHEN r.status = 'running' AND h < 55 THEN 'deferred'
         WHEN r.status = 'running' AND h < 57 THEN 'running'
         WHEN r.status = 'running' THEN 'pending'
         WHEN h = 0 THEN 'failed' WHEN h < 3 THEN 'no_data' ELSE 'done' END AS st) AS ss,
     LATERAL (SELECT CASE WHEN st = 'done' THEN 900 + (s.id % 1400) ELSE 0 END AS f) AS ff;

UPDATE collector_collectionrun r SET
    units_total = c.total, units_done = c.done, units_no_data = c.no_data,
    units_failed = c.failed, requests = c.requests, rows_fetched = c.fetched,
    rows_inserted = c.inserted, rows_unchanged = c.unchanged,
    status = CASE WHEN c.failed > 0 THEN 'partial' ELSE 'done' END
FROM (SELECT run_id, count(*) AS total, count(*) FILTER (WHERE status = 'done') AS done,
             count(*) FILTER (WHERE status = 'no_data') AS no_data,
             count(*) FILTER (WHERE status = 'failed') AS failed, sum(requests) AS requests,
             sum(rows_fetched) AS fetched, sum(rows_inserted) AS inserted,
             sum(rows_unchanged) AS unchanged
      FROM collector_schoolrun GROUP BY run_id) c
WHERE c.run_id = r.id AND r.status <> 'running';
"""


# Lessons cover the window of the newest runs (the previous, this and the next school week),
# as a weekly national run leaves them: about 107 a school day (6 grades x 3 classes x 6
# periods) makes 20 million for 12,500 schools over 15 days.
LESSON_DAYS = 15
PERIODS = 6


def seed_lessons(lessons: int) -> str:
    """``lessons`` lessons over the newest window, in natural-key order (school, date, grade,
    class, period): the unique index then grows at its right edge instead of taking 20 million
    random inserts. One statement of generated rows; no row leaves the server."""
    per_day = -(-lessons // (SCHOOLS * LESSON_DAYS))
    classes = -(-per_day // (6 * PERIODS))
    return f"""
INSERT INTO collector_lesson (first_stored_at, changed_at, load_dtm, school_id, date,
    subject_id, academic_year, semester, grade, period, class_name, day_night, track,
    department, course, classroom)
SELECT now(), now(), now(), 1 + g / ({LESSON_DAYS * per_day}),
       DATE '{THIS_MONDAY}' - 7 + 7 * (d / 5) + d % 5,
       1 + (g * 7) % 40, 2026, 2, 1 + k / ({classes * PERIODS}), 1 + k % {PERIODS},
       (1 + (k / {PERIODS}) % {classes})::text, '', '', '', '', ''
FROM generate_series(0, {lessons - 1}) AS g,
     LATERAL (SELECT (g / {per_day}) % {LESSON_DAYS} AS d, g % {per_day} AS k) AS dk;
"""


def seed_changes(changes: int) -> str:
    """``changes`` history rows over the year, a tenth of them in this week (by lesson date),
    each tied to the run of its week."""
    return f"""
INSERT INTO collector_lessonchange (observed_at, run_id, unit_id, school_id, kind, lessons,
    date, grade, class_name, period, day_night, track, department, course, classroom,
    subject_before_id, subject_after_id, academic_year_before, academic_year_after,
    semester_before, semester_after, load_dtm_before, load_dtm_after)
SELECT now(), 1 + 4 * w + (g % 4), NULL, 1 + (g * 37) % {SCHOOLS},
       (ARRAY['added', 'removed', 'updated', 'reloaded'])[1 + g % 4], 1,
       DATE '{THIS_MONDAY}' - 7 * w + g % 5, 1 + g % 6, (1 + g % 9)::text, 1 + g % 7,
       '', '', '', '', '', 1 + g % 40, 1 + (g + 1) % 40, 2026, 2026, 2, 2, now(), now()
FROM generate_series(1, {changes}) AS g,
     LATERAL (SELECT CASE WHEN g % 10 = 0 THEN 0 ELSE g % {WEEKS} END AS w) AS ww;
"""


def seed(url: str, env: dict, lessons: int, changes: int) -> None:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); "
         "from collector.storage import ensure_partitions; import datetime; "
         "ensure_partitions(datetime.date(2025, 11, 1), datetime.date(2026, 12, 31))"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    _psql(url, SEED_REGISTRY)
    _psql(url, SEED_RUNS)
    step = time.perf_counter()
    _psql(url, seed_lessons(lessons))
    print(f"{lessons:,} lessons in {time.perf_counter() - step:.0f} s", file=sys.stderr)
    _psql(url, seed_changes(changes))
    _psql(url, "VACUUM ANALYZE")
    print(f"seeded in {time.perf_counter() - started:.0f} s", file=sys.stderr)


# --- The same world on any database (SQLite): rows made in Python, as the SQL above makes them

LEVELS = ("elementary", "middle", "high", "special")
BATCH = 20_000


def _school_level(s: int) -> tuple[str, str]:
    """(kind, level) of seeded school ``s``, as SEED_REGISTRY gives them."""
    share = s % 100
    if share < 50:
        return "초등학교", "elementary"
    if share < 76:
        return "중학교", "middle"
    if share < 95:
        return "고등학교", "high"
    if share < 97:
        return "특수학교", "special"
    return "공동실습소", ""


def _unit_status(run_open: bool, h: int) -> str:
    if run_open:
        for bound, status in ((50, "done"), (52, "failed"), (55, "deferred"), (57, "running")):
            if h < bound:
                return status
        return "pending"
    return "failed" if h == 0 else "no_data" if h < 3 else "done"


def _insert(cursor, table: str, columns: str, rows) -> None:
    """``rows`` into ``table`` in batches of one executemany each."""
    marks = ", ".join(["%s"] * len(columns.split(",")))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            cursor.executemany(sql, batch)
            batch = []
    if batch:
        cursor.executemany(sql, batch)


def seed_portable(lessons: int, changes: int) -> None:
    """SEED_REGISTRY, SEED_RUNS, ``seed_lessons`` and ``seed_changes`` through Django's
    connection, for a database without psql (SQLite): the same schools, runs, ledger units,
    lessons and changes, value for value (timestamps aside)."""
    from django.db import connection, transaction

    # Values in the database's own spelling (SQLite keeps text): made once, not per row.
    stamp, date = connection.ops.adapt_datetimefield_value, connection.ops.adapt_datefield_value
    now = stamp(datetime.datetime.now(datetime.UTC))
    this_monday = datetime.date.fromisoformat(THIS_MONDAY)
    day = datetime.timedelta(days=1)
    seoul = datetime.timezone(datetime.timedelta(hours=9))
    offices = [code for (code,) in _rows("SELECT code FROM collector_office ORDER BY code")]
    schools = {s: _school_level(s) for s in range(1, SCHOOLS + 1)}
    with transaction.atomic(), connection.cursor() as cursor:
        _insert(cursor, "collector_subject", "id, raw, name",
                ((n, f"과목{n}", f"과목{n}") for n in range(1, 41)))  # fmt: skip
        _insert(
            cursor,
            "collector_school",
            "id, code, office_id, name, kind, level, location, founding_type, day_night, "
            "address, first_seen, last_seen, active",
            (
                (s, str(7_000_000 + s), offices[s % 18], f"학교 {s}", kind, level,
                 "", "", "", "", now, now, s % 250 != 0)
                for s, (kind, level) in schools.items()
            ),
        )  # fmt: skip
        runs = []
        for w in range(WEEKS):
            monday = this_monday - 7 * w * day
            for n, level in enumerate(LEVELS):
                created = datetime.datetime.combine(monday + 5 * day, datetime.time(), seoul)
                created += datetime.timedelta(hours=1 + 3 * n)
                runs.append((w * 4 + n + 1, level, monday, created, w == 0))
        counts = {}
        units = []
        for run_id, level, _, created, running in runs:
            tally = counts.setdefault(run_id, dict.fromkeys(
                ("total", "done", "no_data", "failed", "requests", "fetched", "inserted",
                 "unchanged"), 0))  # fmt: skip
            for s, (_, school_level) in schools.items():
                if school_level != level or s % 250 == 0:
                    continue
                h = (s * 7 + run_id * 13) % 100
                status = _unit_status(running, h)
                fetched = 900 + s % 1400 if status == "done" else 0
                ended = status in ("done", "no_data", "failed")
                code = {"failed": f"ERROR-{500 + 100 * (h % 2)}", "deferred": "ERROR-337"}
                error = {"failed": "server fault", "deferred": "quota spent"}
                units.append((
                    run_id, s, status, 1, 0, 2, 2, fetched, fetched // 10, 0,
                    fetched - fetched // 10, 0, fetched, 0, code.get(status, ""),
                    error.get(status, ""),
                    stamp(created + datetime.timedelta(hours=14))
                    if status == "deferred" else None,
                    hashlib.md5(f"{run_id}:{s}".encode()).hexdigest(), "", None, stamp(created),
                    stamp(created), stamp(created + datetime.timedelta(hours=1)) if ended else None,
                    900 if ended else None,
                ))  # fmt: skip
                tally["total"] += 1
                if status in tally:
                    tally[status] += 1
                tally["requests"] += 2
                tally["fetched"] += fetched
                tally["inserted"] += fetched // 10
                tally["unchanged"] += fetched - fetched // 10
        _insert(
            cursor,
            "collector_collectionrun",
            "id, level, offices, school_codes, date_from, date_to, trigger, trigger_key, "
            "requested_by, status, units_total, units_done, units_no_data, units_deferred, "
            "units_failed, requests, rows_fetched, rows_inserted, rows_updated, rows_unchanged, "
            "rows_removed, created_at, started_at, finished_at",
            (
                (run_id, level, "[]", "[]", date(monday - 7 * day), date(monday + 13 * day),
                 "schedule",
                 f"schedule:{level}:all:{monday - 7 * day}:{monday + 13 * day}", "",
                 "running" if running else "partial" if c["failed"] else "done",
                 *((0,) * 11 if running else (c["total"], c["done"], c["no_data"], 0,
                   c["failed"], c["requests"], c["fetched"], c["inserted"], 0, c["unchanged"],
                   0)),
                 stamp(created), stamp(created),
                 None if running else stamp(created + datetime.timedelta(hours=2)))
                for (run_id, level, monday, created, running), c in zip(
                    runs, counts.values(), strict=True)
            ),
        )  # fmt: skip
        _insert(
            cursor,
            "collector_schoolrun",
            "run_id, school_id, status, attempts, retries, requests, pages, rows_fetched, "
            "rows_inserted, rows_updated, rows_unchanged, rows_removed, list_total_count, "
            "rows_missing, last_error_code, last_error, defer_until, task_id, claim_token, "
            "lease_expires_at, queued_at, started_at, finished_at, duration_ms",
            units,
        )
        del units
        per_day = -(-lessons // (SCHOOLS * LESSON_DAYS))
        classes = -(-per_day // (6 * PERIODS))
        days = [date(this_monday - 7 * day + (7 * (d // 5) + d % 5) * day) for d in range(15)]
        _insert(
            cursor,
            "collector_lesson",
            "first_stored_at, changed_at, load_dtm, school_id, date, subject_id, academic_year, "
            "semester, grade, period, class_name, day_night, track, department, course, "
            "classroom",
            (
                (now, now, now, 1 + g // (LESSON_DAYS * per_day),
                 days[(g // per_day) % LESSON_DAYS], 1 + (g * 7) % 40, 2026, 2,
                 1 + (g % per_day) // (classes * PERIODS), 1 + (g % per_day) % PERIODS,
                 str(1 + ((g % per_day) // PERIODS) % classes), "", "", "", "", "")
                for g in range(lessons)
            ),
        )  # fmt: skip
        kinds = ("added", "removed", "updated", "reloaded")
        _insert(
            cursor,
            "collector_lessonchange",
            "observed_at, run_id, unit_id, school_id, kind, lessons, date, grade, class_name, "
            "period, day_night, track, department, course, classroom, subject_before_id, "
            "subject_after_id, academic_year_before, academic_year_after, semester_before, "
            "semester_after, load_dtm_before, load_dtm_after",
            (
                (now, 1 + 4 * w + g % 4, None, 1 + (g * 37) % SCHOOLS, kinds[g % 4], 1,
                 date(this_monday - 7 * w * day + (g % 5) * day), 1 + g % 6, str(1 + g % 9),
                 1 + g % 7, "", "", "", "", "", 1 + g % 40, 1 + (g + 1) % 40, 2026, 2026, 2, 2,
                 now, now)
                for g in range(1, changes + 1)
                for w in [0 if g % 10 == 0 else g % WEEKS]
            ),
        )  # fmt: skip
        cursor.execute("ANALYZE")


def _rows(sql: str) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def pages() -> list[tuple[str, str]]:
    """(name, url) of every page an operator opens, with the ids of the seeded world."""
    from collector.ledger import CollectionRun, SchoolRun, UnitStatus

    open_run = CollectionRun.objects.filter(status="running").order_by("pk").first()
    closed_run = CollectionRun.objects.filter(status="partial").order_by("-pk").first()
    unit = SchoolRun.objects.filter(run=closed_run, status=UnitStatus.FAILED).first()
    school = unit.school
    week = THIS_MONDAY
    return [
        ("admin index", "/admin/"),
        ("run list", "/admin/collector/collectionrun/"),
        ("run list, running", "/admin/collector/collectionrun/?status__exact=running"),
        ("run page, open", f"/admin/collector/collectionrun/{open_run.pk}/change/"),
        ("run page, closed", f"/admin/collector/collectionrun/{closed_run.pk}/change/"),
        ("ledger", "/admin/collector/schoolrun/"),
        ("ledger, one run", f"/admin/collector/schoolrun/?run={open_run.pk}"),
        (
            "ledger, a run's failed",
            f"/admin/collector/schoolrun/?run={closed_run.pk}&status__exact=failed",
        ),
        ("ledger, error code", "/admin/collector/schoolrun/?error_code=ERROR-500"),
        (
            "ledger, office + level",
            "/admin/collector/schoolrun/?school__office__code__exact=B10"
            "&school__level__exact=middle",
        ),
        ("ledger, latest of a week", f"/admin/collector/schoolrun/?latest_for_week={week}"),
        ("ledger, search code", f"/admin/collector/schoolrun/?q={school.code}"),
        ("ledger unit page", f"/admin/collector/schoolrun/{unit.pk}/change/"),
        ("schools", "/admin/collector/school/"),
        ("school page", f"/admin/collector/school/{school.pk}/change/"),
        (
            "schools missing in week",
            f"/admin/collector/school/?missing_in_week={week}&level__exact=middle",
        ),
        ("lessons", "/admin/collector/lesson/"),
        ("lessons, one school", f"/admin/collector/lesson/?q={school.code}"),
        ("completeness, one week", f"/admin/collector/completeness/?week={week}"),
        ("coverage, national all", "/admin/collector/coverage/"),
        ("coverage, national elementary", "/admin/collector/coverage/?level=elementary"),
        ("coverage, office", "/admin/collector/coverage/?level=elementary&office=J10"),
        ("changes, most changed", f"/admin/collector/changes/?week={week}"),
        ("changes, school week", f"/admin/collector/changes/?school={school.code}&week={week}"),
        ("changes, one run", f"/admin/collector/changes/?run={closed_run.pk}"),
        ("metrics", "/metrics"),
        ("schedules", "/admin/django_celery_beat/periodictask/"),
        ("task results", "/admin/django_celery_results/taskresult/"),
        ("worker heartbeats", "/admin/collector/workerheartbeat/"),
    ]


def _backend_cpu() -> float:
    """CPU seconds spent so far by this connection's PostgreSQL backend (/proc, same machine;
    0 elsewhere): with this process's own, what a page costs whatever else the machine runs.
    Parallel query workers are other processes and are not counted."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0.0
    global _backend_pid
    if _backend_pid is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            _backend_pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{_backend_pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_backend_pid = None


def measure(repeat: int) -> list[tuple[str, float, float, int, int]]:
    """(page, median ms, CPU ms per render, queries, status) of every page. CPU is this
    process's and its database backend's, so a loaded machine inflates it far less than the
    wall time."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from schedules.apply import apply_schedules

    setup_test_environment()
    apply_schedules()
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    found = []
    for name, url in pages():
        client.get(url)  # warm-up: templates, plans, caches
        times = []
        cpu = -time.process_time() - _backend_cpu()
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
        cpu += time.process_time() + _backend_cpu()
        found.append(
            (
                name,
                statistics.median(times),
                cpu * 1000 / repeat,
                len(queries),
                response.status_code,
            )
        )
    return found


def report(rows, counts: dict[str, int], vendor: str) -> None:
    target = TARGET_MS[vendor]
    print(
        f"Seeded: {counts['schools']:,} schools, {counts['runs']:,} runs, "
        f"{counts['units']:,} ledger units, {counts['lessons']:,} lessons, "
        f"{counts['changes']:,} change rows"
    )
    if vendor == "sqlite":
        print(
            f"SQLite: {counts['lessons']:,} lessons (PostgreSQL's bench seeds "
            f"{DEFAULT_LESSONS['postgresql']:,}), inserted from Python; the ledger and history "
            "are the same year. The latest unit per school-week is worked out on each read."
        )
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores")
    header = f"| {'page':<32} | {'ms (median)':>11} | {'CPU ms':>6} | {'queries':>7} |"
    print(f"{header} {'status':<8} |")
    print(f"|{'-' * 34}|{'-' * 12}:|{'-' * 7}:|{'-' * 8}:|{'-' * 10}|")
    for name, ms, cpu, queries, status in rows:
        flag = f"{status} over" if min(ms, cpu) > target else str(status)
        print(f"| {name:<32} | {ms:>11.0f} | {cpu:>6.0f} | {queries:>7} | {flag:<8} |")
    slow = [name for name, ms, cpu, _, _ in rows if min(ms, cpu) > target]
    print(
        f"{len(rows) - len(slow)} of {len(rows)} pages under {target} ms (wall time, or CPU "
        "time on a loaded machine)" + (f"; over: {', '.join(slow)}" if slow else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--lessons",
        type=int,
        help="lessons to seed (default 20,000,000 on PostgreSQL, 2,000,000 on SQLite)",
    )
    parser.add_argument(
        "--database",
        default=BENCH_DB,
        help=f"scratch database to create (default {BENCH_DB}; on SQLite a file of that name "
        "in the temporary directory)",
    )
    parser.add_argument("--changes", type=int, default=500_000, help="history rows to seed")
    parser.add_argument("--repeat", type=int, default=3, help="timed renders per page")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the database")
    parser.add_argument("--reuse", action="store_true", help="time an already seeded database")
    args = parser.parse_args()
    given = os.environ.get("DATABASE_URL", "postgres://")
    if not given.startswith(("postgres", "postgresql", "sqlite")):
        print("error: DATABASE_URL must be postgres://... or sqlite:///...", file=sys.stderr)
        return 2
    vendor = "sqlite" if given.startswith("sqlite") else "postgresql"
    lessons = DEFAULT_LESSONS[vendor] if args.lessons is None else args.lessons
    if vendor == "sqlite":
        path = Path(tempfile.gettempdir()) / f"{args.database}.sqlite3"
        url = f"sqlite:///{path}"
    else:
        admin = _url("postgres")
        url = _url(args.database)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "proj.settings",
        "NEIS_CLOCK": CLOCK,
        "NEIS_LIMITER_URL": "",
        "CELERY_BROKER_URL": "",
        "VAR_DIR": tempfile.mkdtemp(prefix="bench-console-"),
        "LOG_LEVEL": "ERROR",
    }

    def drop() -> None:
        if vendor == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            _psql(admin, f"DROP DATABASE IF EXISTS {args.database}")

    if not args.reuse:
        drop()
        if vendor == "postgresql":
            _psql(admin, f"CREATE DATABASE {args.database}")
    try:
        if not args.reuse and vendor == "postgresql":
            seed(url, env, lessons, args.changes)
        elif not args.reuse:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
            )
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.db import connection

        if not args.reuse and vendor == "sqlite":
            started = time.perf_counter()
            seed_portable(lessons, args.changes)
            print(f"seeded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        with connection.cursor() as cursor:
            counts = {}
            for key, table in (
                ("schools", "collector_school"),
                ("runs", "collector_collectionrun"),
                ("units", "collector_schoolrun"),
                ("lessons", "collector_lesson"),
                ("changes", "collector_lessonchange"),
            ):
                cursor.execute(f"SELECT count(*) FROM {table}")
                counts[key] = cursor.fetchone()[0]
        rows = measure(args.repeat)
        connection.close()
    finally:
        if not args.keep:
            drop()
    report(rows, counts, vendor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
