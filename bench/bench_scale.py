#!/usr/bin/env python
"""Scale bench: the lesson table grown to 1M, 10M and 100M stored lessons, measured at each step.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/neis python bench/bench_scale.py --scale 100M

Creates its own database (``neis_scale`` on the same server; ``--database`` names another),
migrates it, and drops it at the end unless ``--keep``. It first checks the free disk of the
server's data directory against what the scale needs, and refuses when it does not fit.

The world: about 12,500 schools (``--schools``) in the eighteen offices, at their real shares
of levels and offices; each school has a fixed day template of grades, classes and periods
(classes per grade lognormal as in ``bench_storage.py``, high-school electives two to a
period, special-school courses), and each school day every slot holds a lesson, 3% of them
free periods, its subject drawn from the level's subjects in the Subject dimension. Lessons
are written in SQL (``INSERT ... SELECT`` from the template, one school day at a time) into
the monthly partitions, from the first school day of March 2026 on, as a weekly collection
would leave them. A month's partition is filled without indexes and indexed before it is
attached (as a restore would); the month a measurement falls in is attached first and then
written through its index. The ledger grows with it: four scheduled runs a school week, one
unit per school of the level.

At each step up to ``--scale`` it prints:

- merge throughput of ``collector.storage.store_lessons`` for a realistic school-week mix (a
  random sample of schools, one school week each, one transaction per school, with history):
  a first load of the week after the stored ones, an unchanged re-run (no digest, so through
  the merge) and a re-run with 5% of the lessons changed and 2% removed; lessons/s of wall
  time and per CPU-second (this process plus its PostgreSQL backend: the machine is shared);
- read queries, warm, p50 and p95: one school's week, one class's week (client time with the
  rows fetched), one office's day (client and server time), and the national "lessons per
  school this week" aggregate, straight and from a summary table of lessons per school and day;
- the admin lesson and ledger list pages through Django's test client (estimated counts);
- size: heap and indexes per million lessons, the natural-key index per school month, and
  how many months of indexes fit in 24 GiB and in 64 GiB of memory;
- autovacuum's work: the dead tuples a week of 5% changes leaves in the largest partition, and
  how long VACUUM of that partition takes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_storage import ELECTIVES, ROOMS, SUBJECTS, perturb  # noqa: E402
from measure import libpq, machine_busy, proc_stat, with_database  # noqa: E402

FIRST_MONDAY = datetime.date(2026, 3, 2)  # the first school day of the 2026 school year
STEPS = (1_000_000, 10_000_000, 100_000_000, 300_000_000)
# Disk one stored lesson needs with everything it brings (heap, indexes, history, WAL slack).
BYTES_PER_LESSON_NEEDED = 230
GIB = 2**30
# Schools per office (roughly the registry's shares, ~12,300 in all).
OFFICES = {
    "B10": 1350, "C10": 640, "D10": 460, "E10": 540, "F10": 320, "G10": 310, "H10": 250,
    "I10": 150, "J10": 2550, "K10": 680, "M10": 490, "N10": 730, "P10": 770, "Q10": 840,
    "R10": 960, "S10": 1000, "T10": 190, "V10": 30,
}  # fmt: skip
# Levels by share of the registry; 3.7% are kinds the collector does not collect.
LEVELS = (("elementary", 0.495), ("middle", 0.262), ("high", 0.19), ("special", 0.016))
KIND = {"elementary": "초등학교", "middle": "중학교", "high": "고등학교", "special": "특수학교"}
DEPARTMENTS = ["일반과", "건축과", "전기과", "기계과", "정보통신과"]
FREE_PERIOD = 31  # of 1024: about 3% of slots are free periods on a given day

TARGETS = {
    "school_week_p95_ms": 5.0,
    "office_day_ms": 50.0,
    "admin_ms": 300.0,
    "merge_ratio": 0.80,
}

LESSON_COLUMNS = (
    "id, first_stored_at, changed_at, load_dtm, school_id, date, subject_id, academic_year, "
    "semester, grade, period, class_name, day_night, track, department, course, classroom"
)
NATURAL_KEY = (
    "school_id, date, grade, class_name, period, day_night, track, department, course, "
    "classroom, subject_id"
)
# One school day of lessons from the slot template: the subject and the free periods are drawn
# by a hash of the slot and the day, so the same day always yields the same lessons.
DAY_SELECT = f"""
SELECT s.school_id, %(day)s::date AS date,
       p.ids[1 + (hashint8(s.id * 100000 + %(n)s) & 2147483647) %% cardinality(p.ids)]
           AS subject_id,
       2026 AS academic_year, CASE WHEN %(day)s::date < DATE '2026-08-01' THEN 1 ELSE 2 END
           AS semester,
       s.grade, s.period, s.class_name, s.day_night, s.track, s.department, s.course,
       s.classroom,
       (%(monday)s::date + 2 + s.school_id %% 8)::timestamp AT TIME ZONE 'Asia/Seoul'
           AS load_dtm
FROM bench_slot s JOIN bench_pool p ON p.pool = s.pool
WHERE s.school_id BETWEEN %(lo)s AND %(hi)s
  AND (hashint8(s.id * 100000 + %(n)s + 7) & 1023) >= {FREE_PERIOD}
  AND NOT s.school_id = ANY(%(skip)s)
"""


def parse_scale(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a scale; use e.g. 200k, 1M, 100M")
    number = float(match[1]) * {"": 1, "k": 1e3, "m": 1e6}[match[2].lower()]
    if not 10_000 <= number <= 1e9:
        raise argparse.ArgumentTypeError(f"scale {text} is outside 10k-1000M")
    return int(number)


def human(n: float) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k"


def out(label: str, value: str) -> None:
    """One figure of the current step, as ``label: value`` (the CI test reads these)."""
    print(f"  {label}: {value}", flush=True)


# --- Database helpers (small and local, to be folded into a shared module later) -----------


def sql(query, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def backend_cpu() -> float:
    """CPU seconds (user + system) of this connection's PostgreSQL backend so far, when its
    /proc entry is readable (same machine); else 0."""
    stat = proc_stat(sql("SELECT pg_backend_pid()")[0][0])
    return stat[3] if stat else 0.0


class Stopwatch:
    """Wall time, and CPU time of this process and its database backend, of a block."""

    def __enter__(self):
        self.wall, self.cpu, self.db = time.perf_counter(), time.process_time(), backend_cpu()
        self.busy = machine_busy()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.db = backend_cpu() - self.db
        self.busy = machine_busy() - self.busy


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def free_disk(path: str) -> tuple[str, int]:
    """Free bytes of the filesystem holding ``path`` (or its nearest readable parent)."""
    target = Path(path)
    while True:
        try:
            return str(target), shutil.disk_usage(target).free
        except OSError:
            if target.parent == target:
                raise
            target = target.parent


# --- The world -----------------------------------------------------------------------------


def seed_world(rng: random.Random, schools: int) -> dict:
    """Schools, the Subject dimension, subject pools and every school's day template of slots
    (``bench_slot``); returns slots per school (a school day's lessons before free periods)."""
    from django.db import connection
    from django.utils import timezone

    from collector.models import School, Subject

    names = sorted(
        {name for pool in SUBJECTS.values() for name in pool}
        | {name for group in ELECTIVES for name in group}
    )
    Subject.objects.bulk_create([Subject(raw=name, name=name) for name in names])
    ids = dict(Subject.objects.values_list("raw", "pk"))
    pools = {index: [ids[n] for n in SUBJECTS[level]] for index, (level, _) in enumerate(LEVELS)}
    pools |= {10 + index: [ids[n] for n in group] for index, group in enumerate(ELECTIVES)}
    sql(
        "CREATE UNLOGGED TABLE bench_pool (pool smallint PRIMARY KEY, ids integer[] NOT NULL);"
        "CREATE UNLOGGED TABLE bench_slot (id bigint PRIMARY KEY, school_id integer NOT NULL, "
        "pool smallint NOT NULL, grade smallint NOT NULL, period smallint NOT NULL, "
        'class_name text COLLATE "C" NOT NULL, day_night text COLLATE "C" NOT NULL, '
        'track text COLLATE "C" NOT NULL, department text COLLATE "C" NOT NULL, '
        'course text COLLATE "C" NOT NULL, classroom text COLLATE "C" NOT NULL)'
    )
    with connection.cursor() as cursor:
        cursor.executemany("INSERT INTO bench_pool VALUES (%s, %s)", list(pools.items()))

    offices = rng.choices(list(OFFICES), weights=list(OFFICES.values()), k=schools)
    now = timezone.now()
    rows, slots_per_school, slot_id = [], {}, 0
    school_objects = []
    for number in range(1, schools + 1):
        draw, level = rng.random(), ""
        for name, share in LEVELS:
            if draw < share:
                level = name
                break
            draw -= share
        school_objects.append(
            School(
                id=number, code=f"{7_000_000 + number}", office_id=offices[number - 1],
                name=f"규모{number}{KIND.get(level, '공동실습소')}",
                kind=KIND.get(level, "공동실습소"), level=level, first_seen=now, last_seen=now,
            )
        )  # fmt: skip
        if not level:
            continue
        start = slot_id
        for slot in school_template(rng, level):
            slot_id += 1
            rows.append((slot_id, number, *slot))
        slots_per_school[number] = slot_id - start
    School.objects.bulk_create(school_objects, batch_size=2000)
    sql("SELECT setval(pg_get_serial_sequence('collector_school', 'id'), %s)", [schools])
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY bench_slot (id, school_id, pool, grade, period, class_name, day_night, track, "
            "department, course, classroom) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(row)
    sql("ANALYZE bench_slot; ANALYZE bench_pool; ANALYZE collector_school")
    return slots_per_school


def school_template(rng: random.Random, level: str):
    """(pool, grade, period, class, day/night, track, department, course, classroom) of one
    school day: the shape ``bench_storage.lessons_for`` gives a school."""
    pool = [name for name, _ in LEVELS].index(level)
    grades = {"elementary": 6, "middle": 3, "high": 3, "special": rng.randint(2, 6)}[level]
    median = {"elementary": 3.0, "middle": 5.0, "high": 6.0, "special": 1.0}[level]
    most = {"elementary": 6, "middle": 9, "high": 8, "special": 3}[level]
    per_grade = max(1, min(most, round(rng.lognormvariate(0, 0.6) * median)))
    day_night = "주간" if level in ("middle", "high") else ""
    track = rng.choice(["일반계", "일반계", "일반계", "공업계"]) if level == "high" else ""
    department = rng.choice(DEPARTMENTS) if level == "high" else ""
    course = (
        rng.choice(["초등학교과정", "중학교과정", "고등학교과정"]) if level == "special" else ""
    )
    for grade in range(1, grades + 1):
        periods = {"elementary": 4 + (grade + 1) // 3, "special": 5}.get(level, 7)
        for number in range(1, per_grade + 1):
            name = str(number)
            room = name if level in ("high", "special") else ""
            for period in range(1, periods + 1):
                if level == "high" and grade > 1 and rng.random() < 0.3:
                    group = rng.randrange(len(ELECTIVES))
                    for room in rng.sample(ROOMS, 2):
                        yield (10 + group, grade, period, name, day_night, track, department,
                               course, room)  # fmt: skip
                else:
                    yield (pool, grade, period, name, day_night, track, department, course, room)


def school_days():
    day = FIRST_MONDAY
    while True:
        if day.weekday() < 5:
            yield day
        day += datetime.timedelta(days=1)


def monday(day: datetime.date) -> datetime.date:
    return day - datetime.timedelta(days=day.weekday())


def month_bounds(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    first = day.replace(day=1)
    return first, (first + datetime.timedelta(days=32)).replace(day=1)


class Grower:
    """Writes school days of lessons into monthly partitions until a number of lessons.

    A month not yet attached is filled without indexes, then indexed and attached
    (``attach``); an attached month is written through its indexes.
    """

    def __init__(self, slots_per_school: dict[int, int]):
        self.slots = slots_per_school
        self.school_ids = sorted(slots_per_school)
        self.days = school_days()
        self.day = next(self.days)
        self.next_school = self.school_ids[0]  # first school of self.day not yet written
        self.stored = 0
        self.next_id = 1
        self.filling: set[datetime.date] = set()  # months created and not yet attached
        self.skip: dict[datetime.date, list[int]] = {}  # monday -> schools merged by the bench
        self.ledger_weeks: set[datetime.date] = set()
        self.grow_seconds = 0.0

    def partition(self, day: datetime.date) -> str:
        return f"collector_lesson_{day:%Y_%m}"

    def grow_to(self, target: int) -> None:
        started = time.perf_counter()
        while self.stored < target:
            rest = [s for s in self.school_ids if s >= self.next_school]
            left = target - self.stored
            expected, hi = 0.0, rest[-1]
            for school in rest:
                expected += self.slots[school] * (1 - FREE_PERIOD / 1024)
                if expected >= left:
                    hi = school
                    break
            self.write(self.day, self.next_school, hi)
            if hi == rest[-1]:
                self.day = next(self.days)
                self.next_school = self.school_ids[0]
            else:
                self.next_school = hi + 1
        sql("SELECT setval(pg_get_serial_sequence('collector_lesson', 'id'), %s)", [self.next_id])
        self.grow_seconds += time.perf_counter() - started

    def write(self, day: datetime.date, lo: int, hi: int) -> None:
        first, end = month_bounds(day)
        table = self.partition(day)
        if first not in self.filling:
            self.attach_all()  # a new month: the previous one is complete
            if sql("SELECT to_regclass(%s) IS NOT NULL", [table])[0][0]:
                self.reopen(table)
            else:
                sql(
                    f"CREATE TABLE {table} (LIKE collector_lesson, "
                    f"CHECK (date >= '{first}' AND date < '{end}'))"
                )
            self.filling.add(first)
        params = {
            "day": day, "monday": monday(day), "n": (day - FIRST_MONDAY).days, "lo": lo,
            "hi": hi, "skip": self.skip.get(monday(day), []), "base": self.next_id,
        }  # fmt: skip
        written = sql(
            f"INSERT INTO {table} ({LESSON_COLUMNS}) "
            f"SELECT %(base)s + row_number() OVER (), now(), now(), load_dtm, school_id, date, "
            f"subject_id, academic_year, semester, grade, period, class_name, day_night, "
            f"track, department, course, classroom FROM ({DAY_SELECT}) d",
            params,
        )
        self.next_id += written
        self.stored += written
        print(f"{self.stored:,} lessons ({day})", file=sys.stderr, flush=True)

    def reopen(self, table: str) -> None:
        """Detach a month written before (a measurement, or a merge, attached it) and drop its
        indexes, so that the rest of the month is written without them and indexed once."""
        sql(f"ALTER TABLE collector_lesson DETACH PARTITION {table}")
        for (name,) in sql(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'u'",
            [table],
        ):
            sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for (name,) in sql("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table]):
            sql(f"DROP INDEX {name}")

    def attach_all(self) -> None:
        """Index and attach every month still being filled, with its history partition."""
        from collector.storage import ensure_partitions

        for first in sorted(self.filling):
            table = self.partition(first)
            started = time.perf_counter()
            _, end = month_bounds(first)
            sql("SET maintenance_work_mem = '1GB'")
            sql(f"CREATE UNIQUE INDEX {table}_nk ON {table} ({NATURAL_KEY})")
            sql(f"ALTER TABLE {table} ADD CONSTRAINT {table}_nk UNIQUE USING INDEX {table}_nk")
            sql(f"CREATE INDEX {table}_brin ON {table} USING brin (id) WITH (autosummarize = on)")
            sql(
                f"ALTER TABLE collector_lesson ATTACH PARTITION {table} "
                f"FOR VALUES FROM ('{first}') TO ('{end}')"
            )
            sql("RESET maintenance_work_mem")
            ensure_partitions(first, end - datetime.timedelta(days=1))  # the history's month
            sql(f"ANALYZE {table}")
            seconds = time.perf_counter() - started
            print(f"indexed and attached {table} in {seconds:.0f} s", file=sys.stderr, flush=True)
        self.filling.clear()

    def last_full_day(self) -> datetime.date | None:
        """The newest school day every school has lessons on (``self.day`` is not yet, or
        only partly, written)."""
        day = self.day - datetime.timedelta(days=1)
        while day.weekday() > 4:
            day -= datetime.timedelta(days=1)
        return day if day >= FIRST_MONDAY else None

    def last_full_week(self) -> datetime.date | None:
        """Monday of the newest school week every school has lessons in."""
        done = self.last_full_day()
        if done is None:
            return None
        friday = done - datetime.timedelta(days=(done.weekday() - 4) % 7)
        return monday(friday) if friday >= FIRST_MONDAY + datetime.timedelta(days=4) else None

    def seed_ledger(self) -> None:
        """Four scheduled runs (one a level) for each school week written so far, done, each
        with a unit per school of its level, as the weekly collections would have left."""
        week = FIRST_MONDAY
        while week <= self.day:
            if week not in self.ledger_weeks:
                self.ledger_weeks.add(week)
                sql(LEDGER_WEEK, {"monday": week})
            week += datetime.timedelta(days=7)
        sql("ANALYZE collector_collectionrun; ANALYZE collector_schoolrun")


LEDGER_WEEK = """
WITH runs AS (
    INSERT INTO collector_collectionrun (level, offices, school_codes, date_from, date_to,
        trigger, trigger_key, requested_by, note, status, units_total, units_done,
        units_no_data, units_deferred, units_failed, requests, rows_fetched, rows_inserted,
        rows_updated, rows_unchanged, rows_removed, created_at, started_at, finished_at)
    SELECT lv, '[]', '[]', %(monday)s::date - 7, %(monday)s::date + 13, 'schedule',
           'schedule:' || lv || ':' || %(monday)s::date, '', '', 'done', 0, 0, 0, 0, 0, 0, 0, 0,
           0, 0, 0, c, c, c + interval '2 hours'
    FROM unnest(ARRAY['elementary', 'middle', 'high', 'special']) WITH ORDINALITY AS l(lv, i),
         LATERAL (SELECT (%(monday)s::date - 2)::timestamp AT TIME ZONE 'Asia/Seoul'
                         + make_interval(hours => 3 * i::int) AS c) t
    RETURNING id, level, created_at
)
INSERT INTO collector_schoolrun (run_id, school_id, status, attempts, retries, requests, pages,
    rows_fetched, rows_inserted, rows_updated, rows_unchanged, rows_removed, list_total_count,
    rows_missing, last_error_code, last_error, task_id, claim_token, queued_at, started_at,
    finished_at, duration_ms)
SELECT r.id, s.id, CASE WHEN (s.id + r.id) %% 100 = 0 THEN 'failed' ELSE 'done' END, 1, 0, 2,
       2, 1500, 500, 20, 980, 5, 1500, 0,
       CASE WHEN (s.id + r.id) %% 100 = 0 THEN 'ERROR-500' ELSE '' END, '',
       md5(r.id || ':' || s.id), '', r.created_at, r.created_at,
       r.created_at + interval '1 hour', 900
FROM runs r JOIN collector_school s ON s.level = r.level
"""


# --- Measurements --------------------------------------------------------------------------


def sample_records(school_ids: list[int], week: datetime.date) -> dict[int, list]:
    """The lessons the world holds for these schools in the school week of ``week``, as
    NEIS records (what the collector would fetch)."""
    from collector.neis.records import LessonRecord

    records: dict[int, list] = {school: [] for school in school_ids}
    for offset in range(5):
        day = week + datetime.timedelta(days=offset)
        params = {
            "day": day, "monday": week, "n": (day - FIRST_MONDAY).days, "lo": 0,
            "hi": 2**31 - 1, "skip": [],
        }  # fmt: skip
        rows = sql(
            f"SELECT c.office_id, c.code, d.date, d.academic_year, d.semester, d.grade, "
            f"d.class_name, d.period, d.day_night, d.track, d.department, d.course, "
            f"d.classroom, j.raw, j.name, d.load_dtm, d.school_id "
            f"FROM ({DAY_SELECT}) d JOIN collector_school c ON c.id = d.school_id "
            f"JOIN collector_subject j ON j.id = d.subject_id WHERE d.school_id = ANY(%(ids)s)",
            params | {"ids": school_ids},
        )
        for row in rows:
            records[row[-1]].append(LessonRecord(*row[:-1]))
    return records


def measure_merge(grower: Grower, rng: random.Random, sample: int) -> dict[str, tuple]:
    """First load, unchanged re-run and 5%-changed re-run of ``sample`` schools' week after
    the stored ones; (lessons, wall s, CPU s of client + server) of each."""
    from django.db import transaction

    from collector.models import School
    from collector.storage import store_lessons

    week = monday(grower.day) + datetime.timedelta(days=7)
    chosen = sorted(rng.sample(grower.school_ids, min(sample, len(grower.school_ids))))
    grower.skip[week] = chosen
    records = sample_records(chosen, week)
    schools = School.objects.in_bulk(chosen)
    friday = week + datetime.timedelta(days=4)
    changed = {school: perturb(rng, rows, 0.05, 0.02) for school, rows in records.items()}
    results = {}
    for case, data in (
        ("first load", records),
        ("unchanged re-run", records),
        ("5% changed re-run", changed),
    ):
        order = list(data)
        rng.shuffle(order)  # workers take schools in no particular order
        with Stopwatch() as watch:
            for school in order:
                with transaction.atomic():
                    store_lessons(schools[school], week, friday, data[school])
        lessons = sum(len(rows) for rows in data.values())
        results[case] = (lessons, watch.wall, watch.cpu + watch.db, watch.busy)
    grower.stored += sum(len(rows) for rows in changed.values())
    # The merges took ids from the identity sequence; the generator goes on after them.
    grower.next_id = sql(
        "SELECT last_value + 1 FROM pg_sequences WHERE sequencename = %s",
        [
            sql("SELECT pg_get_serial_sequence(%s, %s)", ["collector_lesson", "id"])[0][0].split(
                "."
            )[-1]
        ],
    )[0][0]
    return results


def timed(query: str, params, repeat: int = 1) -> tuple[float, int]:
    """Client ms of running ``query`` and fetching every row, and the rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        started = time.perf_counter()
        for _ in range(repeat):
            cursor.execute(query, params)
            rows = cursor.fetchall()
        return (time.perf_counter() - started) * 1000 / repeat, len(rows)


def server_ms(query: str, params) -> float:
    (plan,) = sql("EXPLAIN (ANALYZE, FORMAT JSON) " + query, params)[0]
    return plan[0]["Execution Time"]


SCHOOL_WEEK = (
    "SELECT l.date, l.grade, l.class_name, l.period, l.classroom, s.name "
    "FROM collector_lesson l JOIN collector_subject s ON s.id = l.subject_id "
    "WHERE l.school_id = %s AND l.date BETWEEN %s AND %s"
)
CLASS_WEEK = SCHOOL_WEEK + " AND l.grade = %s AND l.class_name = %s"
OFFICE_DAY = (
    "SELECT l.school_id, l.grade, l.class_name, l.period, l.subject_id "
    "FROM collector_lesson l JOIN collector_school c ON c.id = l.school_id "
    "WHERE c.office_id = %s AND l.date = %s"
)
NATIONAL_WEEK = (
    "SELECT school_id, count(*) FROM collector_lesson "
    "WHERE date BETWEEN %s AND %s GROUP BY school_id"
)
# The same answer from a summary of lessons per school and day, built once per week (after a
# run) from the same rows: 12,500 x 5 rows instead of millions.
SUMMARY_BUILD = (
    "CREATE TABLE IF NOT EXISTS bench_day_count (school_id integer, date date, lessons integer, "
    "PRIMARY KEY (date, school_id)); DELETE FROM bench_day_count WHERE date BETWEEN %s AND %s; "
    "INSERT INTO bench_day_count SELECT school_id, date, count(*) FROM collector_lesson "
    "WHERE date BETWEEN %s AND %s GROUP BY school_id, date"
)
SUMMARY_WEEK = (
    "SELECT school_id, sum(lessons) FROM bench_day_count "
    "WHERE date BETWEEN %s AND %s GROUP BY school_id"
)


def measure_reads(grower: Grower, rng: random.Random, count: int) -> None:
    week = grower.last_full_week() or monday(grower.day)
    friday = week + datetime.timedelta(days=4)
    loaded = [s for s in grower.school_ids if grower.last_full_day() or s < grower.next_school]
    schools = rng.sample(loaded, min(count, len(loaded)))
    for label, query, params in (
        ("one school's week", SCHOOL_WEEK, [(s, week, friday) for s in schools]),
        ("one class's week", CLASS_WEEK, [(s, week, friday, 1, "1") for s in schools]),
    ):
        for p in params:
            timed(query, p)  # warm
        samples, rows = [], []
        for p in params:
            ms, n = timed(query, p)
            samples.append(ms)
            rows.append(n)
        p50, p95 = percentiles(samples)
        out(
            f"read {label} p50/p95 ms",
            f"{p50:.2f} / {p95:.2f} (mean {statistics.mean(rows):,.0f} rows, "
            f"{len(samples)} {'schools' if 'school' in label else 'classes'}, warm)",
        )
    day = grower.last_full_day() or grower.day
    # The largest, a large, two middling and the two smallest offices: an office's day is
    # 700 to 280,000 lessons, and at 100M each query may scan a month.
    offices = ["J10", "B10", "R10", "G10", "I10", "V10"]
    for office in offices:
        timed(OFFICE_DAY, (office, day))
    client, server, rows = [], [], []
    for office in offices:
        ms, n = timed(OFFICE_DAY, (office, day))
        client.append(ms)
        rows.append(n)
        server.append(server_ms(OFFICE_DAY, (office, day)))
    out(
        "read one office's day, every lesson, p50/p95 ms",
        f"client {percentiles(client)[0]:.1f} / {percentiles(client)[1]:.1f}, server "
        f"{percentiles(server)[0]:.1f} / {percentiles(server)[1]:.1f} ({len(offices)} offices, "
        f"{statistics.mean(rows):,.0f} rows mean, {max(rows):,} max, warm)",
    )
    timed(NATIONAL_WEEK, (week, friday))
    ms, n = timed(NATIONAL_WEEK, (week, friday))
    out("read national lessons per school this week ms", f"{ms:,.0f} ({n:,} schools, warm)")
    started = time.perf_counter()
    sql(SUMMARY_BUILD, (week, friday, week, friday))
    build = time.perf_counter() - started
    sql("ANALYZE bench_day_count")
    timed(SUMMARY_WEEK, (week, friday))
    ms, n = timed(SUMMARY_WEEK, (week, friday), repeat=5)
    out(
        "read national lessons per school this week, summary table ms",
        f"{ms:.1f} ({n:,} schools; the week's summary built in {build:.1f} s)",
    )


def measure_admin(grower: Grower) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    code = sql("SELECT code FROM collector_school WHERE level <> '' ORDER BY id LIMIT 1")[0][0]
    run = sql("SELECT max(id) FROM collector_collectionrun")[0][0]
    day = grower.last_full_day() or grower.day
    after = day + datetime.timedelta(days=1)
    for label, url in (
        ("admin lesson list ms", "/admin/collector/lesson/"),
        (
            "admin lesson list, one office's day ms",
            f"/admin/collector/lesson/?school__office__code__exact=B10&date__gte={day}"
            f"&date__lt={after}",
        ),
        ("admin lesson list, one school ms", f"/admin/collector/lesson/?q={code}"),
        ("admin ledger list ms", "/admin/collector/schoolrun/"),
        ("admin ledger list, one run ms", f"/admin/collector/schoolrun/?run={run}"),
    ):
        client.get(url)  # warm: templates, plans, caches
        times = []
        for _ in range(3):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
        out(label, f"{statistics.median(times):.0f} (median of 3, warm)")


def measure_size(grower: Grower, lessons_per_week: float) -> dict:
    rows = sql(
        "SELECT c.relname, greatest(c.reltuples, 0)::bigint, pg_relation_size(c.oid), "
        "pg_indexes_size(c.oid), coalesce((SELECT sum(pg_relation_size(i.indexrelid)) "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "WHERE i.indrelid = c.oid AND ic.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')"
        "), 0)::bigint FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "WHERE h.inhparent = 'collector_lesson'::regclass ORDER BY c.relname"
    )
    lessons = sum(r[1] for r in rows)
    heap, indexes, btree = (sum(r[i] for r in rows) for i in (2, 3, 4))
    history = sql(
        "SELECT coalesce(sum(pg_total_relation_size(h.inhrelid)), 0)::bigint FROM pg_inherits h "
        "WHERE h.inhparent = 'collector_lessonchange'::regclass"
    )[0][0]
    ledger = sql(
        "SELECT pg_total_relation_size('collector_schoolrun'), count(*) FROM collector_schoolrun"
    )[0]
    per_million = (heap + indexes) / lessons * 1e6 / 2**20
    out(
        "size per million lessons MiB",
        f"{per_million:.0f} (heap {heap / lessons:.0f} B + indexes {indexes / lessons:.0f} B a "
        f"lesson; {lessons:,} lessons in {len(rows)} partitions, planner's estimate)",
    )
    out(
        "sizes GiB",
        f"heap {heap / GIB:.2f}, indexes {indexes / GIB:.2f} (natural key "
        f"{btree / GIB:.2f}), change history {history / GIB:.2f}, ledger {ledger[0] / GIB:.3f} "
        f"({ledger[1]:,} units)",
    )
    month = lessons_per_week / 5 * 21  # a term month: 21 school days
    index_month = indexes / lessons * month
    out(
        "indexes per school month GiB",
        f"{index_month / GIB:.2f} ({month / 1e6:.1f}M lessons in a term month of 21 school days)",
    )
    fits = {gib: gib * GIB / 2 / index_month for gib in (24, 64)}
    out(
        "months of indexes in memory",
        f"{fits[24]:.1f} in 24 GiB, {fits[64]:.1f} in 64 GiB (half the memory for cached "
        "index pages, the rest to the heap, the OS and connections)",
    )
    return {"per_million": per_million, "index_per_lesson": indexes / lessons,
            "heap_per_lesson": heap / lessons, "lessons": lessons}  # fmt: skip


def measure_vacuum(grower: Grower) -> None:
    """A week of 5% changes (LOAD_DTM moved, as a NEIS reload does) in the largest
    partition, the dead tuples it leaves, and how long VACUUM takes on that partition."""
    name, rows = sql(
        "SELECT c.relname, greatest(c.reltuples, 0)::bigint "
        "FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "WHERE h.inhparent = 'collector_lesson'::regclass ORDER BY c.reltuples DESC LIMIT 1"
    )[0]
    first = datetime.date(int(name[-7:-3]), int(name[-2:]), 1)
    week = first + datetime.timedelta(days=(7 - first.weekday()) % 7)  # its first Monday
    sql("SELECT pg_stat_force_next_flush()")
    before = dead_tuples(name)
    started = time.perf_counter()
    changed = sql(
        f"UPDATE {name} SET load_dtm = load_dtm + interval '7 days', changed_at = now() "
        "WHERE date BETWEEN %s AND %s AND (hashint8(id) & 1023) < 51",
        [week, week + datetime.timedelta(days=4)],
    )
    update = time.perf_counter() - started
    time.sleep(1)  # statistics reach the shared view within a second
    dead = dead_tuples(name) - before
    out(
        "dead tuples after a week of 5% changes",
        f"{dead:,} in {name} ({rows:,} lessons; {changed:,} lessons changed in "
        f"{update:.1f} s; {dead / max(rows, 1):.2%} of the partition; autovacuum's default "
        f"threshold is 20% + 50 = {int(rows * 0.2 + 50):,})",
    )
    with Stopwatch() as watch:
        sql(f"VACUUM {name}")
    out(
        "VACUUM of that partition s",
        f"{watch.wall:.1f} wall, {watch.db:.1f} CPU ({rows / 1e6:.1f}M lessons, "
        f"{dead_tuples(name):,} dead tuples left)",
    )


def dead_tuples(table: str) -> int:
    sql("SELECT pg_stat_clear_snapshot()")
    return sql("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", [table])[0][0]


# --- The run -------------------------------------------------------------------------------


def run(args) -> int:
    rng = random.Random(args.seed)
    print(f"seeding {args.schools:,} schools ...", file=sys.stderr, flush=True)
    slots = seed_world(rng, args.schools)
    week_lessons = sum(slots.values()) * 5 * (1 - FREE_PERIOD / 1024)
    print(
        f"World: {args.schools:,} schools ({len(slots):,} with timetables); one school week = "
        f"{week_lessons:,.0f} lessons stored (a weekly run of three school weeks reads "
        f"{3 * week_lessons:,.0f}); one school day = {week_lessons / 5:,.0f}."
    )
    grower = Grower(slots)
    steps = [s for s in STEPS if s < args.scale] + [args.scale]
    summary = []
    for step in steps:
        print(f"\n== {human(step)} stored lessons ==", flush=True)
        grower.grow_to(step)
        grower.attach_all()
        grower.seed_ledger()
        sql("ANALYZE collector_lesson")
        rate = grower.stored / max(grower.grow_seconds, 1e-9)
        out(
            "grown",
            f"{grower.stored:,} lessons to {grower.day:%Y-%m-%d} in {grower.grow_seconds:,.0f} s "
            f"so far (SQL generation and index builds, {rate:,.0f} lessons/s); load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        )
        merges = measure_merge(grower, rng, args.sample)
        for case, (lessons, wall, cpu, busy) in merges.items():
            out(
                f"merge {case} lessons/s",
                f"{lessons / wall:,.0f} wall, {lessons / cpu:,.0f} per CPU-second "
                f"({lessons:,} lessons of {args.sample} schools, {wall:.1f} s, CPU {cpu:.1f} s; "
                f"{1 - cpu / max(busy, cpu):.0%} of the machine's busy CPU went elsewhere)",
            )
        sql("ANALYZE collector_lesson")
        measure_reads(grower, rng, args.reads)
        measure_admin(grower)
        size = measure_size(grower, week_lessons)
        measure_vacuum(grower)
        summary.append((step, merges, size))
    print("\n== Summary ==")
    base = summary[0][1]
    print(f"{'stored':>8} {'first load/s':>13} {'unchanged/s':>12} {'5% changed/s':>13} "
          f"{'per CPU-s (5%)':>15} {'MiB/M':>6}")  # fmt: skip
    for step, merges, size in summary:
        rates = [merges[c][0] / merges[c][1] for c in merges]
        cpu = merges["5% changed re-run"][0] / merges["5% changed re-run"][2]
        print(f"{human(step):>8} {rates[0]:>13,.0f} {rates[1]:>12,.0f} {rates[2]:>13,.0f} "
              f"{cpu:>15,.0f} {size['per_million']:>6.0f}")  # fmt: skip
    last = summary[-1][1]
    for case in last:
        ratio_wall = (last[case][0] / last[case][1]) / (base[case][0] / base[case][1])
        ratio_cpu = (last[case][0] / last[case][2]) / (base[case][0] / base[case][2])
        print(
            f"merge {case} at {human(summary[-1][0])} vs {human(summary[0][0])}: "
            f"{ratio_wall:.0%} wall, {ratio_cpu:.0%} per CPU-second "
            f"(target >= {TARGETS['merge_ratio']:.0%})"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scale", type=parse_scale, default=parse_scale("1M"),
        help="largest number of stored lessons (1M, 10M, 100M, 300M, or e.g. 200k); every "
        "step of 1M, 10M, 100M, 300M below it is measured too",
    )  # fmt: skip
    parser.add_argument("--schools", type=int, default=12_500, help="schools in the registry")
    parser.add_argument("--sample", type=int, default=300, help="schools in the merge mix")
    parser.add_argument("--reads", type=int, default=200, help="schools in the read samples")
    parser.add_argument("--seed", type=int, default=17, help="random seed of the world")
    parser.add_argument("--database", default="neis_scale", help="database to create and use")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        print("error: DATABASE_URL must point at PostgreSQL (postgres://user@host:5432/db)")
        return 2
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.database):
        print(f"error: --database {args.database!r} is not a plain lower-case name")
        return 2
    if not 100 <= args.schools <= 20_000:
        print(f"error: --schools must be 100-20,000, got {args.schools}")
        return 2
    import psycopg

    admin_url = libpq(with_database(url, "postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        data_dir = admin.execute("SHOW data_directory").fetchone()[0]
        where, free = free_disk(data_dir)
        need = args.scale * BYTES_PER_LESSON_NEEDED + 2 * GIB
        print(
            f"Disk: {free / GIB:,.1f} GiB free at {where} (PostgreSQL data: {data_dir}); "
            f"{human(args.scale)} lessons need about {need / GIB:,.1f} GiB"
        )
        if free < need:
            print(f"error: not enough free disk for {human(args.scale)} lessons")
            return 2
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        settings = dict(admin.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
            "('shared_buffers', 'work_mem', 'maintenance_work_mem', 'autovacuum', "
            "'max_parallel_workers_per_gather')"
        ).fetchall())  # fmt: skip
        print(
            f"Machine: {os.cpu_count()} cores, {memory / GIB:.0f} GiB; load average "
            f"{os.getloadavg()[0]:.1f}; {admin.execute('SELECT version()').fetchone()[0][:16]}; "
            + ", ".join(f"{k} {v}" for k, v in sorted(settings.items()))
        )
        admin.execute(f"DROP DATABASE IF EXISTS {args.database}")
        admin.execute(f"CREATE DATABASE {args.database}")
    os.environ["DATABASE_URL"] = with_database(url, args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    os.environ.setdefault("DEBUG", "1")
    import django
    from django.core.management import call_command

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client's host, and no e-mail
    call_command("migrate", verbosity=0, skip_checks=True)
    started = time.perf_counter()
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {args.database}")
        print(f"\nBench took {time.perf_counter() - started:,.0f} s.")


if __name__ == "__main__":
    sys.exit(main())
