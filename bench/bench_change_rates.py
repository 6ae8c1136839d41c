#!/usr/bin/env python
"""How many change-history rows a national weekly collection records, from the simulator.

The simulator revises published weeks the way schools do (``SimulatorConfig.revision_kinds``).
This replays the weekly schedule over a sample of schools: a run every Saturday at 10:00 KST
collects the previous, the current and the next school week, so each school-week is seen by
three runs. The first run that sees a week records it as a baseline; each later run records
the edits NEIS published since the run before (``World.edits``), as the merge writes them: a
subject swap or a classroom move is a removal and an addition, a cancelled or an added period
one row per lesson, a reloaded day one row per lesson of the day, a removed day one row.
Prints history rows per thousand lessons by kind, and per national week of 20 million lessons
collected. No database; standard library and the simulator only.

    python bench/bench_change_rates.py [--every 10] [--weeks 4]
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

from neis_simulator import SimulatorConfig, World  # noqa: E402
from neis_simulator.clock import KST  # noqa: E402

FIRST_MONDAY = datetime.date(2026, 10, 19)  # four ordinary school weeks of the 2nd semester
NATIONAL_LESSONS_COLLECTED = 20_000_000  # a weekly run: three school weeks of every school
RUN_TIME = datetime.time(10, 0)  # Saturdays


def _lessons(rows) -> int:
    """Distinct lessons among served rows (LOAD_DTM aside): what the merge stores."""
    return len({tuple(v for k, v in row.items() if k != "LOAD_DTM") for row in rows})


def history_rows(edit) -> Counter:
    """The history rows the merge records for one edit, by kind."""
    if edit.kind == "day_off":
        return Counter(day_removed=1)
    if edit.kind == "reload":
        return Counter(reloaded=_lessons(edit.after))
    return Counter(removed=_lessons(edit.before), added=_lessons(edit.after))


def measure(world: World, every: int, weeks: int) -> tuple[Counter, Counter, int]:
    """(history rows by kind, edits by kind, lessons stored) over the sampled school-weeks."""
    rows, edits, lessons = Counter(), Counter(), 0
    schools = [s for s in world.schools()[::every] if s.level]
    for week in range(weeks):
        monday = FIRST_MONDAY + datetime.timedelta(weeks=week)
        friday = monday + datetime.timedelta(days=4)
        saturday = monday + datetime.timedelta(days=5)
        runs = [
            datetime.datetime.combine(saturday + datetime.timedelta(weeks=k), RUN_TIME, KST)
            for k in (-1, 0, 1)
        ]
        for school in schools:
            seen = None
            for run in runs:
                served = world.timetable(school.code, monday, friday, as_of=run)
                if not served:
                    continue
                if seen is None:
                    rows["baseline"] += 1
                else:
                    for edit in world.edits(school.code, monday, friday, since=seen, until=run):
                        edits[edit.kind] += 1
                        rows += history_rows(edit)
                seen = run
            if seen is not None:
                lessons += _lessons(world.timetable(school.code, monday, friday, as_of=seen))
    return rows, edits, lessons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=int, default=10, help="sample one school in N")
    parser.add_argument("--weeks", type=int, default=4, help="school weeks from 2026-10-19")
    parser.add_argument("--seed", type=int, default=1, help="the simulator's seed")
    args = parser.parse_args()
    began = time.perf_counter()
    world = World(SimulatorConfig(seed=args.seed))
    rows, edits, lessons = measure(world, args.every, args.weeks)
    total = sum(rows.values())
    print(
        f"{lessons:,} lessons in {args.weeks} school weeks of one school in {args.every} "
        f"({time.perf_counter() - began:.0f} s); edits seen: {dict(sorted(edits.items()))}"
    )
    print(f"{'kind':<12} {'rows':>8} {'per 1,000 lessons':>18}")
    for kind, count in sorted(rows.items(), key=lambda item: -item[1]):
        print(f"{kind:<12} {count:>8,} {count / lessons * 1000:>18.2f}")
    print(f"{'all':<12} {total:>8,} {total / lessons * 1000:>18.2f}")
    # A weekly run collects three school weeks; each is new to it once, so a national week
    # holds a third of the 20 million lessons collected as new school-weeks.
    weekly = total / lessons * NATIONAL_LESSONS_COLLECTED / 3
    print(
        f"national: about {weekly:,.0f} history rows a week "
        f"({NATIONAL_LESSONS_COLLECTED:,} lessons collected, a third of them new)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
