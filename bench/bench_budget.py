#!/usr/bin/env python
"""How full the shared request budget keeps its slots, and what each slot costs.

    python bench/bench_budget.py --redis-url redis://127.0.0.1:6379/13 [--seconds 10]
    python bench/bench_budget.py --against OLD_LIMITER.py   # alternate with another limiter

``--processes`` worker processes (8, as the pipeline's budget case) each loop over
``RequestBudget.slot()`` around a fake request (``--hold-ms`` of sleep, 200 by default) for
``--seconds``, ``--between-ms`` apart (a worker's own work between its requests: without it
a holder takes its freed slot back at once), on one key with 4 in flight and ``--max-rps``
(1000: only the concurrency binds, as in bench_pipeline.py's budget case; 20 makes both
bind, as production's defaults do). The ceiling is 4 slots / 200 ms = 20 requests/s. Per
variant (the Redis budget and the file budget; with ``--against``, also that limiter
module's, run in turn with this tree's, ``--rounds`` times) it prints:

- the share of the slot-time requests filled (requests in flight over time, the first and
  last half second left out, over 4 slots) and the requests/s that makes;
- the hand-over gap: from a release to the next start while requests were waiting (each
  start is matched with the latest release before it, across processes; median and 90th
  percentile);
- CPU milliseconds per request of the worker processes (``time.process_time`` in each),
  which on a busy host is what polling takes from the real work;
- Redis commands per request (counted in each process at ``execute_command`` and in each
  pipeline sent; a script's call is one command).

The Redis DB of ``--redis-url`` must be one nobody else uses: the bench deletes its own
budget keys only, but the figures assume no other traffic on them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import median_of, module_from_file, print_table  # noqa: E402

CONCURRENCY = 4


def load_limiter(path: str | None):
    """This tree's ``collector.limiter``, or the module at ``path`` (another version of it)."""
    if path is None:
        from collector import limiter

        return limiter
    return module_from_file(path, f"limiter_{uuid.uuid4().hex}")


def worker(path, kind, target, key, args, until, go, queue) -> None:
    import redis

    limiter = load_limiter(path)
    commands = [0]
    execute = redis.Redis.execute_command

    def counted(self, *command, **options):
        commands[0] += 1
        return execute(self, *command, **options)

    def counted_pipeline(self, *args, **options):
        commands[0] += len(self.command_stack)  # each command a pipeline sends
        return execute_pipeline(self, *args, **options)

    redis.Redis.execute_command = counted
    execute_pipeline = redis.client.Pipeline.execute
    redis.client.Pipeline.execute = counted_pipeline
    budget = limiter.Budget(args.max_rps, CONCURRENCY)
    if kind == "redis":
        shared = limiter.RedisBudget(key, budget, target)
    else:
        shared = limiter.FileBudget(key, budget, Path(target))
    queue.put("ready")
    go.wait()
    events, cpu = [], time.process_time()
    while time.time() < until.value:
        with shared.slot():
            events.append(("in", time.time()))
            time.sleep(args.hold_ms / 1000)
            events.append(("out", time.time()))
        time.sleep(args.between_ms / 1000)  # the worker's own work between requests
    queue.put((events, time.process_time() - cpu, commands[0]))


def run(path, kind, args) -> dict:
    key = f"bench-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as folder:
        target = args.redis_url if kind == "redis" else folder
        queue, go, until = (
            multiprocessing.Queue(),
            multiprocessing.Event(),
            multiprocessing.Value("d"),
        )
        procs = [
            multiprocessing.Process(
                target=worker, args=(path, kind, target, key, args, until, go, queue)
            )
            for _ in range(args.processes)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:  # every process started and imported before the clock runs
            queue.get(timeout=60)
        begin = time.time()
        until.value = begin + args.seconds
        go.set()
        results = [queue.get(timeout=args.seconds + 60) for _ in procs]
        for proc in procs:
            proc.join(10)
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(args.redis_url)
        for name in client.scan_iter(f"neis:budget:{load_limiter(None).key_id(key)}:*"):
            client.delete(name)
    events = sorted((e for r in results for e in r[0]), key=lambda e: (e[1], e[0] == "in"))
    # Slot-time filled: requests in flight over time, away from the start and the end.
    low, high = begin + 0.5, until.value - 0.5
    in_flight, peak, gaps, last_out, filled, previous = 0, 0, [], None, 0.0, low
    for kind_, moment in events:
        if low <= moment:
            filled += in_flight * (min(moment, high) - previous)
            previous = min(moment, high)
        if kind_ == "in":
            if in_flight == CONCURRENCY - 1 and last_out is not None:
                gaps.append(moment - last_out)  # a slot freed while someone waited
            in_flight += 1
            peak = max(peak, in_flight)
        else:
            in_flight -= 1
            last_out = moment
    requests = sum(1 for kind_, _ in events if kind_ == "in")
    gaps.sort()
    return {
        "rate": filled / (high - low) * 1000 / args.hold_ms,
        "share": filled / (high - low) / CONCURRENCY,
        "peak": peak,
        "gap_median_ms": 1000 * statistics.median(gaps) if gaps else 0.0,
        "gap_p90_ms": 1000 * gaps[int(len(gaps) * 0.9)] if gaps else 0.0,
        "cpu_ms": 1000 * sum(r[1] for r in results) / requests,
        "commands": sum(r[2] for r in results) / requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", required=True, help="a Redis DB nobody else uses")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant (median)")
    parser.add_argument("--processes", type=int, default=8, help="worker processes")
    parser.add_argument("--hold-ms", type=float, default=200.0, help="the fake request's time")
    parser.add_argument(
        "--between-ms",
        type=float,
        default=0.0,
        help="sleep between a process's requests (its own work), so that a freed slot goes "
        "to a waiter, not back to its holder",
    )
    parser.add_argument("--max-rps", type=float, default=1000.0, help="the budget's rate")
    parser.add_argument("--kinds", default="redis,file", help="budgets to run: redis,file")
    parser.add_argument("--against", default=None, help="another limiter.py to alternate with")
    args = parser.parse_args()
    variants = [(name, None) for name in ("this tree",)]
    if args.against:
        variants.insert(0, (f"{args.against}", args.against))
    rows = []
    for kind in args.kinds.split(","):
        results = {label: [] for label, _ in variants}
        for _ in range(args.rounds):
            for label, path in variants:  # in turn, so a changing load weighs on all alike
                results[label].append(run(path, kind, args))
        for label, _ in variants:
            r = median_of(results[label])
            rows.append(
                (
                    kind,
                    label,
                    r["rate"],
                    r["share"],
                    r["peak"],
                    r["gap_median_ms"],
                    r["gap_p90_ms"],
                    r["cpu_ms"],
                    r["commands"] if kind == "redis" else "",
                )  # fmt: skip
            )
    print(
        f"$ python bench/bench_budget.py {' '.join(sys.argv[1:])}\n"
        f"{args.processes} processes, {CONCURRENCY} in flight, {args.max_rps:g} requests/s, "
        f"{args.hold_ms:g} ms a request: ceiling {CONCURRENCY * 1000 / args.hold_ms:g}/s; "
        f"medians of {args.rounds} runs of {args.seconds:g} s; {os.cpu_count()} CPUs"
    )
    print_table(
        [
            "budget",
            "limiter",
            "requests/s",
            "slot-time filled",
            "max in flight",
            "gap median ms",
            "gap p90 ms",
            "worker CPU ms/request",
            "Redis commands/request",
        ],  # fmt: skip
        rows,
        formats={
            "requests/s": ".2f",
            "slot-time filled": ".1%",
            "gap median ms": ".2f",
            "gap p90 ms": ".2f",
            "worker CPU ms/request": ".2f",
            "Redis commands/request": ".2f",
        },  # fmt: skip
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
