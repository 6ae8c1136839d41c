#!/usr/bin/env python
"""Benchmark of lesson storage on PostgreSQL: throughput, dead tuples and bytes per lesson.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/neis python bench/bench_storage.py

Creates its own database (``neis_bench`` on the same server, or ``--database NAME``), migrates
it and drops it at the end (``--keep`` keeps it). Realistic lessons for about a million rows:
elementary, middle, high and special schools of real sizes, one 3-week window each (about 150
to 3,000 lessons), electives, free periods, duplicate rows, subject marks, LOAD_DTM days after
the lesson. Every school is one ``store_lessons`` call in its own transaction, in random order,
as the pipeline does. It prints rows/s for a first load, an unchanged re-run and a re-run with
5% of the lessons changed (LOAD_DTM bumped, as a NEIS reload does) and 2% gone, for the COPY
path and for ``bulk_create(update_conflicts=True)``; dead tuples after each; raw COPY into an empty
copy of the table as the ceiling (measured just before each round's first load, as the host's
speed drifts between minutes); and the size per million lessons.

A first load's records are given by column (``records.LessonRecords``, as the workers hand a
typed answer over), the re-runs' as lists of records.
A first load now COPYs straight into the lessons (the windows hold nothing), so it is compared
with the raw COPY ceiling (issue 16: at least half of it; the median of each round's share of
the ceiling measured beside it); the unchanged re-run goes through
the merge (no digest is given), the case the digest cannot skip (issue 16: 200,000 rows/s).
``--no-orm`` skips the slow ``bulk_create`` path; ``--database`` names the scratch database.

``--designs`` instead compares physical designs on raw tables (size, queries, FK cost, drop);
``--weekly`` stores five overlapping weekly runs and prints the size after each;
``--history-overhead`` measures what recording the change history costs in CPU (the server
backend's and this process's), the same merges with and without it, and the bytes of a
history row.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import libpq, median_of, with_database  # noqa: E402

from collector.clock import SEOUL  # noqa: E402 (the project is importable only from here on)

WINDOW_START = datetime.date(2025, 3, 31)  # Monday; the window crosses into April
WINDOW_END = WINDOW_START + datetime.timedelta(days=20)
BENCH_DB = "neis_bench"

# Subjects by level; high-school electives come in groups that share a period.
SUBJECTS = {
    "elementary": ["국어", "수학", "사회", "과학", "영어", "음악", "미술", "체육", "도덕", "실과"]
    + ["창의적 체험활동", "바른생활", "슬기로운생활", "즐거운생활", "안전한 생활"],
    "middle": ["국어", "수학", "영어", "사회", "역사", "과학", "기술·가정", "정보", "음악"]
    + ["미술", "체육", "도덕", "한문", "진로와 직업", "스포츠클럽", "자율활동", "동아리활동"],
    "high": ["국어", "문학", "독서", "수학Ⅰ", "수학Ⅱ", "영어Ⅰ", "영어Ⅱ", "한국사", "통합사회"]
    + ["통합과학", "체육", "운동과 건강", "음악", "미술", "진로활동", "자율활동", "정보"],
    "special": ["국어", "수학", "사회", "과학", "체육", "음악", "미술", "진로와 직업"]
    + ["일상생활 활동", "창의적 체험활동", "재활", "보건"],
}
ELECTIVES = [
    ["물리학Ⅰ", "화학Ⅰ", "생명과학Ⅰ", "지구과학Ⅰ"],
    ["한국지리", "세계사", "윤리와 사상", "사회·문화"],
    ["미적분", "확률과 통계", "기하"],
    ["일본어Ⅰ", "중국어Ⅰ", "프랑스어Ⅰ"],
    ["경제", "정치와 법", "생활과 윤리"],
]
ROOMS = ["물리실", "화학실", "생물실", "지학실", "어학실", "다목적실", "멀티미디어실"]
DEPARTMENTS = ["일반과", "7차일반", "공통과정", "건축과", "전기과", "기계과", "정보통신과"]


# --- Data ---------------------------------------------------------------------------------


def make_schools(rng: random.Random, target_rows: int, start=WINDOW_START, weeks=3):
    """School records and each school's lessons (``weeks`` school weeks from ``start``, a
    Monday), until ``target_rows`` lessons."""
    from collector.neis.records import LessonRecord, SchoolRecord

    offices = ["B10", "C10", "D10", "E10", "F10", "G10", "H10", "I10", "J10", "K10"]
    offices += ["M10", "N10", "P10", "Q10", "R10", "S10", "T10"]
    kinds = [("초등학교", "elementary", 0.52), ("중학교", "middle", 0.27)]
    kinds += [("고등학교", "high", 0.20), ("특수학교", "special", 0.01)]
    schools, windows, total, number = [], [], 0, 0
    days = [
        start + datetime.timedelta(days=7 * week + day) for week in range(weeks) for day in range(5)
    ]
    while total < target_rows:
        number += 1
        kind, level, _ = rng.choices(kinds, weights=[k[2] for k in kinds])[0]
        office = rng.choice(offices)
        code = f"{rng.choice('1234789')}{number:06d}"
        schools.append(
            SchoolRecord(
                office, "", code, f"벤치{number}{kind}", kind, "", "공립", "주간", "", None
            )
        )
        records = lessons_for(rng, level, office, code, days, LessonRecord)
        windows.append((code, records))
        total += len(records)
    return schools, windows


def lessons_for(rng, level, office, code, days, LessonRecord):
    grades = {"elementary": 6, "middle": 3, "high": 3, "special": rng.randint(2, 6)}[level]
    # Classes per grade: many small schools, a few large ones (lognormal), capped so that a
    # window holds at most about 3,000 lessons.
    median = {"elementary": 3.0, "middle": 5.0, "high": 6.0, "special": 1.0}[level]
    most = {"elementary": 6, "middle": 9, "high": 8, "special": 3}[level]
    per_grade = max(1, min(most, round(rng.lognormvariate(0, 0.6) * median)))
    mark = rng.choice(["", "", "-", "-", "*"])  # a school-wide typing habit
    pool = SUBJECTS[level]
    track, department, day_night, course = "", "", "", ""
    if level in ("middle", "high"):
        day_night = "주간"
    if level == "high":
        track = rng.choice(["일반계", "일반계", "일반계", "공업계"])
        department = rng.choice(DEPARTMENTS)
    if level == "special":
        course = rng.choice(["초등학교과정", "중학교과정", "고등학교과정"])
    records = []
    for week in range(len(days) // 5):
        load_dtm = datetime.datetime.combine(
            days[5 * week] + datetime.timedelta(days=rng.randint(2, 9)), datetime.time(), SEOUL
        )
        for day in days[5 * week : 5 * week + 5]:
            for grade in range(1, grades + 1):
                periods = {"elementary": 4 + (grade + 1) // 3, "special": 5}.get(level, 7)
                for number in range(1, per_grade + 1):
                    class_name = str(number)
                    for period in range(1, periods + 1):
                        if rng.random() < 0.03:  # a free period is a missing row
                            continue
                        subjects = [rng.choice(pool)]
                        rooms = [class_name if level in ("high", "special") else ""]
                        if level == "high" and grade > 1 and rng.random() < 0.3:
                            subjects = rng.sample(rng.choice(ELECTIVES), 2)
                            rooms = rng.sample(ROOMS, 2)
                        for subject, room in zip(subjects, rooms, strict=True):
                            raw = mark + subject
                            record = LessonRecord(
                                office, code, day, 2025, 1, grade, class_name, period,
                                day_night, track, department, course, room, raw,
                                subject, load_dtm,
                            )  # fmt: skip
                            records.append(record)
                            if rng.random() < 0.005:  # NEIS serves some rows twice
                                records.append(record)
    rng.shuffle(records)  # response order is not guaranteed
    return records


def perturb(rng: random.Random, records: list, changed: float, removed: float) -> list:
    """A NEIS reload: ``changed`` of the rows get a later LOAD_DTM, ``removed`` disappear."""
    import dataclasses

    out = []
    for record in records:
        draw = rng.random()
        if draw < removed:
            continue
        if draw < removed + changed:
            later = record.load_dtm + datetime.timedelta(days=7)
            record = dataclasses.replace(record, load_dtm=later)
        out.append(record)
    return out


# --- Measuring ----------------------------------------------------------------------------


def run_case(label, windows, method, by_code, history=True):
    from collector.storage import Observer, store_lessons

    rows = sum(len(records) for _, records in windows)
    totals = Counter()
    observer = Observer(run_id=1) if history else None
    start, cpu = time.perf_counter(), time.process_time()
    for code, records in windows:
        result = store_lessons(
            by_code[code], WINDOW_START, WINDOW_END, records, method=method, history=observer
        )
        totals.update(result.as_dict())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "case": label,
        "rows": rows,
        "seconds": seconds,
        "rate": rows / seconds,
        "cpu_us": cpu / rows * 1e6,  # this process's CPU a lesson (the worker's share)
        **totals,
    }


def sql(query, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else None


def partitions(table="collector_lesson"):
    return [
        name
        for (name,) in sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            [table],
        )
    ]


def dead_tuples(table="collector_lesson") -> int:
    """Exact dead tuples over every partition (pgstattuple scans them)."""
    return sum(
        sql("SELECT dead_tuple_count FROM pgstattuple(%s)", [name])[0][0]
        for name in partitions(table)
    )


def sizes(table="collector_lesson") -> dict[str, int]:
    """Bytes of the heap and of each index, summed over partitions."""
    heap = sum(sql("SELECT pg_table_size(%s)", [p])[0][0] for p in partitions(table))
    result = {"heap": heap}
    for parent_index, size in sql(
        "SELECT pi.relname, sum(pg_relation_size(i.inhrelid)) FROM pg_inherits i "
        "JOIN pg_class pi ON pi.oid = i.inhparent WHERE pi.relkind = 'I' "
        "AND pi.relname LIKE %s GROUP BY 1",
        [table + "%"],
    ):
        result[parent_index.removeprefix(table + "_")] = int(size)
    return result


def live_rows(table="collector_lesson") -> int:
    return sql(f"SELECT count(*) FROM {table}")[0][0]


CEILING_TYPES = ["int4", "date", "int2", "text", "int2", "text", "text", "text", "text", "text"]
CEILING_TYPES += ["int4", "int2", "int2", "timestamptz", "timestamptz", "timestamptz"]


def copy_rows(cursor, statement, rows, types=None) -> None:
    """COPY ``rows``; in binary, as store_lessons does, when their types are given."""
    binary = " (FORMAT BINARY)" if types else ""
    with cursor.connection.cursor().copy(statement + binary) as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def ceiling(windows, by_code) -> dict:
    """Raw COPY of every row, one transaction, into an empty partitioned copy of the table."""
    from django.db import connection, transaction
    from django.utils import timezone

    from collector.models import Subject

    subjects = dict(Subject.objects.values_list("raw", "pk"))
    sql("CREATE TABLE ceiling (LIKE collector_lesson INCLUDING ALL) PARTITION BY RANGE (date)")
    for name in partitions():
        bounds = sql(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = %s", [name]
        )[0][0]
        sql(f"CREATE TABLE ceiling_{name[-7:]} PARTITION OF ceiling {bounds}")
    columns = "school_id, date, grade, class_name, period, day_night, track, department, "
    columns += "course, classroom, subject_id, academic_year, semester, load_dtm, "
    columns += "first_stored_at, changed_at"
    rows = []
    now = timezone.now()
    for code, records in windows:
        school_id = by_code[code].pk
        seen = set()
        for r in records:
            row = (
                school_id,
                r.date,
                r.grade,
                r.class_name,
                r.period,
                r.day_night,
                r.track,
                r.department,
                r.course,
                r.classroom,
                subjects[r.subject_raw],
                r.academic_year,
                r.semester,
                r.load_dtm,
                now,
                now,
            )
            if row[:11] not in seen:  # the table's unique key would refuse the duplicates
                seen.add(row[:11])
                rows.append(row)
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        copy_rows(cursor, f"COPY ceiling ({columns}) FROM STDIN", rows, CEILING_TYPES)
    seconds = time.perf_counter() - start
    sql("DROP TABLE ceiling")
    return {
        "case": "raw COPY, one transaction (ceiling)",
        "rows": len(rows),
        "seconds": seconds,
        "rate": len(rows) / seconds,
    }


CASES = ("first load", "unchanged re-run", "5% changed, 2% removed")
# (method, change history recorded, label): the product path records the history; the same
# merge without it shows what the history costs.
PATHS = [
    ("copy", True, "COPY + merge"),
    ("copy", False, "COPY + merge, no history"),
    ("orm", True, "bulk_create(update_conflicts)"),
]


def prepared(args):
    """The seeded generator, realistic school windows, and their stored schools by code."""
    from django.utils import timezone

    from collector.models import School
    from collector.registry import upsert_schools

    rng = random.Random(args.seed)
    print("generating lessons ...", file=sys.stderr)
    school_records, windows = make_schools(rng, args.rows)
    upsert_schools(school_records, seen_at=timezone.now())
    return rng, windows, School.objects.in_bulk(field_name="code")


def benchmark(args) -> None:
    from django.db import connection, transaction

    from collector.neis.records import LessonRecords
    from collector.storage import _subject_ids, ensure_partitions

    rng, windows, by_code = prepared(args)
    rng.shuffle(windows)  # workers take schools in no particular order
    data = {
        # By column, as a worker gives a typed answer to storage (``records.LessonRecords``).
        "first load": [(code, LessonRecords.of(records)) for code, records in windows],
        "unchanged re-run": [(code, list(records)) for code, records in windows],
        "5% changed, 2% removed": [
            (code, perturb(rng, records, 0.05, 0.02)) for code, records in windows
        ],
    }
    # The subjects and partitions first, as every round after the first finds them: the
    # ceiling, measured before each first load, COPYs their ids into a copy of the partitions.
    names = {r.subject_raw: r.subject for _, records in windows for r in records}
    with transaction.atomic():
        _subject_ids(names)
        ensure_partitions(WINDOW_START, WINDOW_END)
    gc.collect()
    gc.freeze()  # a worker holds one school's rows, not a million: keep them out of GC scans
    per_window = sorted(len(records) for _, records in windows)
    version = sql("SHOW server_version")[0][0].split()[0]
    print(
        f"{sum(per_window):,} lesson rows of {len(windows)} schools, one 3-week window each "
        f"({WINDOW_START}..{WINDOW_END}), rows per window min {per_window[0]}, median "
        f"{per_window[len(windows) // 2]}, max {per_window[-1]}; one transaction per school; "
        f"PostgreSQL {version}, {os.cpu_count()} CPUs; COPY path: median of {args.rounds} rounds"
    )
    results, size_notes, ceilings = [], [], []
    for method, history, label in PATHS:
        if method == "orm" and args.no_orm:
            continue
        rounds = args.rounds if method == "copy" else 1  # the slow path once: 5 minutes in all
        measured = {case: [] for case in CASES}
        for number in range(rounds):
            sql("TRUNCATE collector_lesson, collector_lessonchange")
            for case in CASES:
                paired = (method, history, case) == (*PATHS[0][:2], "first load")
                if paired:
                    # The ceiling just before each first load, both into empty tables, so
                    # that both see the host at one speed (it drifts by 10-20% from one
                    # minute to the next on a shared host); each after a CHECKPOINT, so
                    # that neither pays for writing out what the case before it left dirty
                    # (the first load measured straight after the ceiling's million rows
                    # ran 20% slower than the same load later in the round).
                    print(f"raw COPY ceiling, round {number + 1} ...", file=sys.stderr)
                    sql("CHECKPOINT")
                    ceilings.append(ceiling(windows, by_code))
                    sql("CHECKPOINT")
                print(f"{label}, round {number + 1}: {case} ...", file=sys.stderr)
                result = run_case(f"{label}, {case}", data[case], method, by_code, history)
                result["dead"] = dead_tuples()
                measured[case].append(result)
                if paired:
                    result["share"] = result["rate"] / ceilings[-1]["rate"]
                if (
                    history
                    and method == "copy"
                    and number == rounds - 1
                    and case != "unchanged re-run"
                ):
                    size_notes.append((case, live_rows(), sizes()))
        for case in CASES:
            median = median_of(measured[case])
            median["dead"] = max(r["dead"] for r in measured[case])
            if case == "first load" and "share" in median:
                median["shares"] = sorted(r["share"] for r in measured[case])
            results.append(median)
    connection.close()
    sql("TRUNCATE collector_lesson, collector_lessonchange")
    results.append(median_of(ceilings))
    report(results, size_notes)


def report(results, size_notes) -> None:
    print()
    header = f"{'case':<52} {'rows/s':>9} {'(min..max)':>17} {'s':>6} {'inserted':>9}"
    header += f" {'updated':>8} {'unchanged':>9} {'removed':>8} {'collapsed':>9} {'dead':>7}"
    header += f" {'client CPU us/row':>17}"
    print(header)
    for r in results:
        spread = "{:,.0f}..{:,.0f}".format(*r["range"]) if len(set(r.get("range", ()))) > 1 else ""
        line = f"{r['case']:<52} {r['rate']:>9,.0f} {spread:>17} {r['seconds']:>6.2f}"
        if "inserted" in r:
            line += f" {r['inserted']:>9,} {r['updated']:>8,} {r['unchanged']:>9,}"
            line += f" {r['removed']:>8,} {r['collapsed']:>9,} {r['dead']:>7,}"
            line += f" {r['cpu_us']:>17.2f}"
        print(line)
    by_case = {r["case"]: r for r in results}
    first = by_case["COPY + merge, first load"]["rate"]
    rerun = by_case["COPY + merge, unchanged re-run"]
    # The first load's share of the ceiling measured right after it, each round: the median
    # of the rounds' shares (the ratio of the two medians mixes rounds of different speed).
    shares = by_case["COPY + merge, first load"]["shares"]
    share = shares[len(shares) // 2]
    print()
    checks = [
        (f"first load {first:,.0f} rows/s >= 100,000", first >= 100_000),
        (
            f"first load {share:.0%} of the raw COPY ceiling >= 50% (median of the rounds' "
            f"{', '.join(f'{each:.0%}' for each in shares)})",
            share >= 0.5,
        ),
        (
            f"unchanged re-run through the merge {rerun['rate']:,.0f} rows/s >= 200,000",
            rerun["rate"] >= 200_000,
        ),
        (f"unchanged re-run left {rerun['dead']} dead tuples == 0", rerun["dead"] == 0),
    ]
    bulk = by_case.get("bulk_create(update_conflicts), first load")
    if bulk:
        ratio = first / bulk["rate"]
        checks.append((f"first load {ratio:.1f}x bulk_create(update_conflicts) >= 3x", ratio >= 3))
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    for case in ("5% changed, 2% removed", "unchanged re-run"):
        with_history = by_case[f"COPY + merge, {case}"]["rate"]
        without = by_case[f"COPY + merge, no history, {case}"]["rate"]
        print(
            f"      change history costs {1 - with_history / without:.1%} of the merge's "
            f"throughput on the {case} ({with_history:,.0f} vs {without:,.0f} rows/s)"
        )
    print("      dead = dead tuples after the case (pgstattuple over every partition, worst round)")
    print()
    for case, rows, size in size_notes:
        total = sum(size.values())
        parts = ", ".join(f"{name} {value / rows:.0f}" for name, value in size.items())
        print(
            f"size after {case}: {rows:,} live rows, {total / 2**20:.1f} MiB = "
            f"{total / rows * 1e6 / 2**20:.0f} MiB per million lessons "
            f"({total / rows:.0f} bytes/row: {parts})"
        )


# --- The change history's cost in CPU (--history-overhead) ------------------------------------


def backend_cpu_ns(pid: int) -> int:
    """CPU time a PostgreSQL backend has used, in nanoseconds (its scheduler's own count in
    /proc/<pid>/schedstat: exact, unlike the 10 ms ticks of /proc/<pid>/stat). The server must
    run on this machine."""
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[0])


def history_overhead(args) -> None:
    """The same merges with and without the history, each in a transaction rolled back, so
    that both start from the same stored window; CPU, not wall time, so that other processes
    on the machine do not count. Each school's two merges run back to back, in alternating
    order; a round is every school once each way, and the figures are medians over rounds."""
    from django.db import transaction

    from collector.storage import Observer, store_lessons

    rng, windows, by_code = prepared(args)
    rng.shuffle(windows)
    cases = {
        "unchanged re-run": windows,
        "5% changed, 2% removed": [
            (code, perturb(rng, records, 0.05, 0.02)) for code, records in windows
        ],
    }
    for code, records in windows:  # the first load, recorded as the pipeline does
        store_lessons(by_code[code], WINDOW_START, WINDOW_END, records, history=Observer(1))
    sql("VACUUM ANALYZE collector_lesson, collector_lessonchange")
    gc.collect()
    gc.freeze()
    pid = sql("SELECT pg_backend_pid()")[0][0]
    rows = sum(len(records) for _, records in windows)
    print(
        f"{rows:,} lesson rows of {len(windows)} schools, one 3-week window each; each merge in "
        f"its own transaction, rolled back; {args.rounds} rounds, {os.cpu_count()} CPUs shared "
        "with other work (CPU time is counted, not wall time)\n"
    )
    print(f"{'case':<24} {'history':>8} {'server CPU s':>13} {'client CPU s':>13} {'total':>7}")
    history = Observer(run_id=2)

    def merge(code, records, observer) -> tuple[int, int]:
        server, client = backend_cpu_ns(pid), time.process_time_ns()
        with transaction.atomic():
            store_lessons(by_code[code], WINDOW_START, WINDOW_END, records, history=observer)
            transaction.set_rollback(True)
        return backend_cpu_ns(pid) - server, time.process_time_ns() - client

    ratios = {}
    for case, data in cases.items():
        rounds = {True: [], False: []}
        recorded = 0
        for number in range(args.rounds):
            totals = {True: [0, 0], False: [0, 0]}
            for i, (code, records) in enumerate(data):
                for on in (True, False) if (i + number) % 2 == 0 else (False, True):
                    server, client = merge(code, records, history if on else None)
                    totals[on][0] += server
                    totals[on][1] += client
            for on in (True, False):
                rounds[on].append(totals[on])
            sql("VACUUM collector_lesson")  # the rolled-back writes, equally for both
        medians = {}
        for on in (True, False):
            server = sorted(s for s, _ in rounds[on])[len(rounds[on]) // 2] / 1e9
            client = sorted(c for _, c in rounds[on])[len(rounds[on]) // 2] / 1e9
            total = sorted(s + c for s, c in rounds[on])[len(rounds[on]) // 2] / 1e9
            medians[on] = (server, client, total)
            label = "with" if on else "without"
            print(f"{case:<24} {label:>8} {server:>13.3f} {client:>13.3f} {total:>7.3f}")
        with_, without = medians[True], medians[False]
        ratios[case] = (with_[0] / without[0] - 1, with_[2] / without[2] - 1)
        if case != "unchanged re-run":
            with transaction.atomic():  # how many history rows one such merge records
                before = live_rows("collector_lessonchange")
                for code, records in data:
                    store_lessons(by_code[code], WINDOW_START, WINDOW_END, records, history=history)
                recorded = live_rows("collector_lessonchange") - before
                transaction.set_rollback(True)
            print(f"{'':<24} {recorded:,} history rows per round ({recorded / rows:.1%} of rows)")
    print()
    for case, (server, total) in ratios.items():
        print(
            f"history costs {server:+.1%} server CPU, {total:+.1%} server + client CPU on the "
            f"{case} (target: at most +10% on the changed re-run, nothing measurable unchanged)"
        )
    history_row_size(by_code, cases["5% changed, 2% removed"])


def history_row_size(by_code, data) -> None:
    """Bytes per history row, heap and indexes, from the history of one changed re-run."""
    from collector.storage import Observer, store_lessons

    sql("TRUNCATE collector_lessonchange")
    for code, records in data:
        store_lessons(by_code[code], WINDOW_START, WINDOW_END, records, history=Observer(3))
    sql("VACUUM ANALYZE collector_lessonchange")
    count = live_rows("collector_lessonchange")
    names = partitions("collector_lessonchange")
    heap = sum(sql("SELECT pg_table_size(%s)", [name])[0][0] for name in names)
    total = sum(sql("SELECT pg_total_relation_size(%s)", [name])[0][0] for name in names)
    size = {"heap": heap, "3 indexes": total - heap}
    parts = ", ".join(f"{name} {value / count:.0f}" for name, value in size.items())
    kinds = dict(sql("SELECT kind, count(*) FROM collector_lessonchange GROUP BY 1 ORDER BY 1"))
    print(
        f"history of the changed re-run: {count:,} rows ({kinds}), "
        f"{sum(size.values()) / count:.0f} bytes/row ({parts})"
    )


# --- Weekly runs (--weekly) ----------------------------------------------------------------


def weekly(args) -> None:
    """Five weekly runs, each storing the previous, current and next school week of every
    school: a week is inserted when it is first fetched and unchanged the two times after.
    Shows whether the table grows by more than its new rows as weeks accumulate."""
    from django.utils import timezone

    from collector.models import School
    from collector.registry import upsert_schools
    from collector.storage import store_lessons

    rng = random.Random(args.seed)
    start = datetime.date(2025, 3, 3)
    school_records, windows = make_schools(rng, args.rows, start=start, weeks=7)
    upsert_schools(school_records, seen_at=timezone.now())
    by_code = School.objects.in_bulk(field_name="code")
    gc.collect()
    gc.freeze()
    print(f"{sum(len(r) for _, r in windows):,} lessons of {len(windows)} schools over 7 weeks")
    for run in range(1, 6):
        first = start + datetime.timedelta(weeks=run - 1)
        last = first + datetime.timedelta(days=20)
        rng.shuffle(windows)
        counts, rows, began = Counter(), 0, time.perf_counter()
        for code, records in windows:
            fetched = [r for r in records if first <= r.date <= last]
            rows += len(fetched)
            counts.update(store_lessons(by_code[code], first, last, fetched).as_dict())
        rate = rows / (time.perf_counter() - began)
        live, size = live_rows(), sizes()
        parts = " + ".join(f"{name} {value / live:.0f}" for name, value in size.items())
        print(
            f"run {run}: {first}..{last} {rate:>9,.0f} rows/s, inserted {counts['inserted']:,},"
            f" unchanged {counts['unchanged']:,}; {live:,} stored, "
            f"{sum(size.values()) / live:.0f} bytes/row ({parts})"
        )


# --- Physical designs (--designs) ---------------------------------------------------------

# Each alternative changes one thing of the chosen design (migration 0001).
DESIGNS = {
    "chosen (0001_initial)": {},
    "+ B-tree primary key (id, date)": {"pk": True},
    "subject as text in every row, no dimension": {"subject_text": True},
    "+ office_id column, index (office_id, date)": {"office": True},
    "+ foreign keys to school and subject": {"fks": True},
    'default collation instead of "C"': {"collate": ""},
}


def design_ddl(
    table: str,
    months: list[datetime.date],
    pk=False,
    subject_text=False,
    office=False,
    fks=False,
    collate=' COLLATE "C"',
    partitioned=True,
) -> list[str]:
    texts = ["class_name", "day_night", "track", "department", "course", "classroom"]
    subject = ["subject_raw text", "subject text"] if subject_text else ["subject_id integer"]
    columns = [
        "id bigint GENERATED BY DEFAULT AS IDENTITY",
        "first_stored_at timestamptz NOT NULL",
        "changed_at timestamptz NOT NULL",
        "load_dtm timestamptz",
        "school_id integer NOT NULL" + (" REFERENCES collector_school" if fks else ""),
        "date date NOT NULL",
        *(f"{c} NOT NULL" for c in subject),
        *(f"{c} smallint NOT NULL" for c in ("academic_year", "semester", "grade", "period")),
        *(f"{c} text{collate} NOT NULL" for c in texts),
    ]
    if fks and not subject_text:
        columns[6] += " REFERENCES collector_subject"
    if office:
        columns.append("office_id varchar(3) NOT NULL")
    key = "school_id, date, grade, class_name, period, day_night, track, department, course, "
    key += "classroom, " + ("subject_raw" if subject_text else "subject_id")
    columns.append(f"UNIQUE ({key})")
    if pk:
        columns.append("PRIMARY KEY (id, date)")
    by = " PARTITION BY RANGE (date)" if partitioned else ""
    statements = [f"CREATE TABLE {table} ({', '.join(columns)}){by}"]
    if not pk:
        statements.append(f"CREATE INDEX ON {table} USING brin (id)")
    if office:
        statements.append(f"CREATE INDEX ON {table} (office_id, date)")
    for month in months if partitioned else []:
        end = (month + datetime.timedelta(days=32)).replace(day=1)
        statements.append(
            f"CREATE TABLE {table}_{month:%Y_%m} PARTITION OF {table} "
            f"FOR VALUES FROM ('{month}') TO ('{end}')"
        )
    return statements


def design_rows(windows, by_code, subjects, now, subject_text=False, office=False, **_):
    """Per school: the distinct rows of its window in the variant's column order."""
    names = dict(subjects.values())
    ids = {raw: pk for pk, (raw, _) in subjects.items()}
    out = []
    for code, records in windows:
        school, rows = by_code[code], {}
        for r in records:
            key = (
                school.pk,
                r.date,
                r.grade,
                r.class_name,
                r.period,
                r.day_night,
                r.track,
                r.department,
                r.course,
                r.classroom,
            )
            subject = (
                (r.subject_raw, names[r.subject_raw]) if subject_text else (ids[r.subject_raw],)
            )
            row = (*key, *subject, r.academic_year, r.semester, r.load_dtm, now, now)
            rows[key + subject[:1]] = row + ((school.office_id,) if office else ())
        out.append(list(rows.values()))
    return out


def copy_columns(subject_text=False, office=False, **_) -> str:
    columns = "school_id, date, grade, class_name, period, day_night, track, department, course, "
    columns += "classroom, " + ("subject_raw, subject" if subject_text else "subject_id")
    columns += ", academic_year, semester, load_dtm, first_stored_at, changed_at"
    return columns + (", office_id" if office else "")


def load_design(table, per_school, options) -> float:
    """COPY each school's rows in its own transaction, as the pipeline commits; rows/s."""
    from django.db import connection, transaction

    statement = f"COPY {table} ({copy_columns(**options)}) FROM STDIN"
    start = time.perf_counter()
    for rows in per_school:
        with transaction.atomic(), connection.cursor() as cursor:
            copy_rows(cursor, statement, rows)
    return sum(map(len, per_school)) / (time.perf_counter() - start)


def explained(query, param_sets) -> tuple[float, float, float]:
    """Mean server execution ms, rows and shared buffers of ``query`` (EXPLAIN ANALYZE)."""
    import json

    totals = [0.0, 0.0, 0.0]
    for params in param_sets:
        (plan,) = sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, params)[0]
        plan = plan if isinstance(plan, list) else json.loads(plan)
        top = plan[0]["Plan"]
        buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
        for i, value in enumerate((plan[0]["Execution Time"], top["Actual Rows"], buffers)):
            totals[i] += value / len(param_sets)
    return tuple(totals)


def compare_designs(args) -> None:
    from django.utils import timezone

    from collector.models import Subject

    rng, windows, by_code = prepared(args)
    rng.shuffle(windows)
    raws = sorted({(r.subject_raw, r.subject) for _, records in windows for r in records})
    Subject.objects.bulk_create([Subject(raw=raw, name=name) for raw, name in raws])
    subjects = {
        pk: (raw, name) for pk, raw, name in Subject.objects.values_list("pk", "raw", "name")
    }
    months = [WINDOW_START.replace(day=1), WINDOW_END.replace(day=1)]
    now = timezone.now()
    gc.collect()
    gc.freeze()
    print(
        f"{sum(len(r) for _, r in windows):,} lesson rows of {len(windows)} schools, one "
        "transaction per school, COPY straight into each design's table (no merge)\n"
    )
    print(f"{'design':<46} {'COPY rows/s':>11} {'bytes/row':>9}  heap + indexes")
    tables = {}
    for number, (label, options) in enumerate(DESIGNS.items()):
        table = f"design_{number}"
        for statement in design_ddl(table, months, **options):
            sql(statement)
        per_school = design_rows(windows, by_code, subjects, now, **options)
        # Best of two loads: other processes on a 2-core machine add noise, never speed.
        rate = load_design(table, per_school, options)
        sql(f"TRUNCATE {table}")
        rate = max(rate, load_design(table, per_school, options))
        sql(f"ANALYZE {table}")
        size = sizes(table)
        rows = sum(map(len, per_school))
        parts = " + ".join(f"{value / rows:.0f}" for value in size.values())
        print(f"{label:<46} {rate:>11,.0f} {sum(size.values()) / rows:>9.0f}  {parts}")
        tables[label] = table
    chosen, office = (
        tables["chosen (0001_initial)"],
        tables["+ office_id column, index (office_id, date)"],
    )
    schools = rng.sample(sorted(by_code.values(), key=lambda s: s.pk), min(200, len(by_code)))
    week_end = WINDOW_START + datetime.timedelta(days=4)
    day = WINDOW_START + datetime.timedelta(days=8)
    offices = sorted({s.office_id for s in by_code.values()})
    school_week = [(s.pk, WINDOW_START, week_end) for s in schools]
    office_day = [(o, day) for o in offices]
    print("\nqueries, mean server time (EXPLAIN ANALYZE) over 200 schools / 17 offices:")
    for label, query, params in [
        (
            "one school's week, natural-key index",
            f"SELECT * FROM {chosen} WHERE school_id = %s AND date BETWEEN %s AND %s",
            school_week,
        ),
        (
            "one office's day, through the school",
            f"SELECT l.* FROM {chosen} l JOIN "
            "collector_school s ON s.id = l.school_id WHERE s.office_id = %s AND l.date = %s",
            office_day,
        ),
        (
            "one office's day, denormalised office",
            f"SELECT * FROM {office} WHERE office_id = %s AND date = %s",
            office_day,
        ),
    ]:
        explained(query, params)  # warm the cache
        ms, rows, buffers = explained(query, params)
        print(f"  {label:<40} {ms:6.2f} ms {rows:7.0f} rows {buffers:6.0f} buffers")
    # Retiring a month: detach and drop a partition, or DELETE from one big table.
    flat = "design_flat"
    for statement in design_ddl(flat, months, partitioned=False):
        sql(statement)
    sql(f"INSERT INTO {flat} SELECT * FROM {chosen}")
    sql(f"VACUUM ANALYZE {flat}")
    april = months[1]
    start = time.perf_counter()
    sql(f"ALTER TABLE {chosen} DETACH PARTITION {chosen}_{april:%Y_%m}")
    sql(f"DROP TABLE {chosen}_{april:%Y_%m}")
    drop = time.perf_counter() - start
    start = time.perf_counter()
    may = (april + datetime.timedelta(days=32)).replace(day=1)
    deleted = sql(
        f"WITH d AS (DELETE FROM {flat} WHERE date >= %s AND date < %s RETURNING 1) "
        "SELECT count(*) FROM d",
        [april, may],
    )[0][0]
    delete = time.perf_counter() - start
    dead = sql("SELECT dead_tuple_count FROM pgstattuple(%s)", [flat])[0][0]
    print(
        f"\nretiring a month of {deleted:,} lessons: DETACH + DROP PARTITION {drop * 1000:.0f} ms;"
        f" DELETE from an unpartitioned table {delete * 1000:,.0f} ms, leaving {dead:,} dead "
        "tuples to vacuum"
    )


# --- Set-up -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="lesson rows to generate")
    parser.add_argument("--seed", type=int, default=4, help="random seed for the data")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the COPY path cases")
    parser.add_argument(
        "--database", default=BENCH_DB, help=f"scratch database, dropped (default {BENCH_DB})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--no-orm", action="store_true", help="skip the bulk_create path (minutes on 2 cores)"
    )
    parser.add_argument("--designs", action="store_true", help="compare physical designs")
    parser.add_argument("--weekly", action="store_true", help="five weekly runs: size over time")
    parser.add_argument(
        "--history-overhead",
        action="store_true",
        help="CPU cost of the change history: the same merges with and without it",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme not in ("postgres", "postgresql", "pgsql"):
        print("DATABASE_URL must point at PostgreSQL (postgres://user@host:5432/name)")
        return 2
    import psycopg

    admin_url = libpq(with_database(url, "postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.database}")
        admin.execute(f"CREATE DATABASE {args.database}")
    os.environ["DATABASE_URL"] = with_database(url, args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    # The figures in README.md were measured with DEBUG on, which was then the default.
    os.environ.setdefault("DEBUG", "1")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, skip_checks=True)
    with psycopg.connect(libpq(os.environ["DATABASE_URL"]), autocommit=True) as bench:
        bench.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
    try:
        if args.designs:
            compare_designs(args)
        elif args.weekly:
            weekly(args)
        elif args.history_overhead:
            history_overhead(args)
        else:
            benchmark(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {args.database}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
