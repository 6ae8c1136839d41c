"""Measuring helpers shared by the bench scripts (one copy, imported by each).

- ``CpuMeter``: CPU seconds by process group (workers, PostgreSQL, simulator, Redis, this
  bench, everything else), read from /proc, so that a figure stays comparable on a machine
  other jobs are loading: CPU-seconds per unit of work, not wall time.
- ``PeakMemory``: the peak resident memory of a process group's children (Celery's prefork
  children), sampled in a thread so that a child recycled mid-run still counts.
- ``alternate``, ``median_of``, ``per``: cases run in turn, medians of rounds with their
  spread, rates per N units; ``module_from_file``: another version of a module, beside ours.
- ``print_table``, ``print_medians``: aligned plain-text tables; cases' medians with their ranges.
- ``core_speed``: how fast one core of this machine runs plain Python, so that figures taken on
  two machines can be compared (the same code measured 2x apart on two hosts of one kind).
- ``with_database``, ``libpq``: a database URL on the same server, and its libpq spelling.
- ``stage_shares`` (and ``python bench/measure.py FILE...``): py-spy raw profiles of a worker
  child attributed to pipeline stages; ``Profiles`` records them on every child of a worker
  while a ``with`` block runs.

Standard library only (Linux /proc): a bench imports it before Django is set up.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
GROUPS = ("workers", "postgres", "simulator", "redis", "bench")
# Part of "workers": the Celery worker's main process (it takes messages from the broker,
# hands them to its children and sends the task events), apart from the children's work.
MAIN = "worker main"


# --- CPU ------------------------------------------------------------------------------------


def proc_stat(pid: int | str) -> tuple[str, int, int, float, float] | None:
    """(comm, parent pid, process group, own CPU seconds, reaped children's CPU seconds) of a
    process, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / TICK
    reaped = (int(fields[13]) + int(fields[14])) / TICK
    return comm, int(fields[1]), int(fields[2]), own, reaped


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores)."""
    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in cpu[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


class CpuMeter:
    """CPU seconds by group: ``snapshot()`` now, ``delta(before, after)`` between two.

    Groups: ``workers`` (every process of the process group ``workers_pgid``: a Celery worker
    and its children; ``MAIN`` is the worker's own share of it), ``simulator`` (the pid
    ``simulator_pid``), ``bench`` (this process), ``redis`` (any redis-server), ``postgres``
    (the postmaster with its reaped children, the live backends of ``database``, and the
    server-wide writers working for them; another database's live backends are not counted,
    so a neighbour on the same server is "other" until its connections close), and
    ``other``: the machine's busy time less all of them.

    Processes that exit mid-measure (a recycled worker child, a closed database connection)
    are counted through their parent's reaped-children time.
    """

    def __init__(
        self,
        *,
        workers_pgid: int | None = None,
        simulator_pid: int | None = None,
        database: str | None = None,
    ):
        self.workers_pgid = workers_pgid
        self.simulator_pid = simulator_pid
        self.database = database

    def snapshot(self) -> dict[str, float]:
        groups = dict.fromkeys((*GROUPS, MAIN), 0.0)
        me = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            stat = proc_stat(entry.name)
            if stat is None:
                continue
            comm, _parent, pgid, own, reaped = stat
            pid = int(entry.name)
            if self.workers_pgid is not None and pgid == self.workers_pgid:
                groups["workers"] += own + reaped
                if pid == self.workers_pgid:  # the worker's own process, not its children
                    groups[MAIN] = own
            elif pid == self.simulator_pid:
                groups["simulator"] += own
            elif pid == me:
                groups["bench"] += own
            elif comm.startswith("redis-server"):
                groups["redis"] += own
            elif comm == "postgres":
                groups["postgres"] += self._postgres(entry, own, reaped)
        groups["machine"] = machine_busy()
        return groups

    def _postgres(self, entry: Path, own: float, reaped: float) -> float:
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return 0.0
        if not cmdline.startswith("postgres:"):  # the postmaster
            return own + reaped
        writers = ("walwriter", "checkpointer", "background writer")
        if (self.database and f" {self.database} " in cmdline) or any(
            w in cmdline for w in writers
        ):
            return own
        return 0.0

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Seconds spent between two snapshots by group, with ``other`` and ``machine``."""
        spent = {name: after[name] - before[name] for name in before}
        spent["other"] = spent["machine"] - sum(spent[name] for name in GROUPS)
        return spent


# --- Memory ---------------------------------------------------------------------------------


def children(parent: int) -> list[int]:
    """The live child processes of ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(entry.name)
            if stat is not None and stat[1] == parent:
                found.append(int(entry.name))
    return found


def peak_rss(pid: int | str) -> int:
    """A live process's peak resident set (VmHWM) in bytes; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class PeakMemory:
    """The largest peak resident memory of any child of ``parent`` (a Celery worker's main
    process: its children are the prefork processes), sampled every ``interval`` seconds in
    a thread while the ``with`` block runs. ``peak`` is in bytes; ``pid`` says whose."""

    def __init__(self, parent: int, interval: float = 0.5):
        self.parent = parent
        self.interval = interval
        self.peak = 0
        self.pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        for pid in children(self.parent):
            peak = peak_rss(pid)
            if peak > self.peak:
                self.peak, self.pid = peak, pid

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


# --- Figures --------------------------------------------------------------------------------


SPEED_LOOP = 2_000_000  # steps of the loop ``core_speed`` times


def core_speed(rounds: int = 5) -> float:
    """CPU seconds (best of ``rounds``) one core takes for a fixed mix of plain-Python work:
    dictionary updates, string joins and integer arithmetic, ``SPEED_LOOP`` steps. Smaller is
    faster; a bench prints it beside its figures."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        memo: dict[int, str] = {}
        total = 0
        for i in range(SPEED_LOOP):
            total += i * 7 % 13
            memo[i & 1023] = "x"
        "\t".join(map(str, range(SPEED_LOOP // 10)))
        best = min(best, time.process_time() - started)
    return best


def median_of(results: Sequence[dict], key: str = "rate") -> dict:
    """The round whose ``key`` is the median (the middle one of an odd count), with
    ``range`` (lowest, highest) and ``rounds`` added."""
    ordered = sorted(results, key=lambda r: r[key])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["range"] = (ordered[0][key], ordered[-1][key])
    chosen["rounds"] = len(results)
    return chosen


def alternate(cases: dict[str, Callable[[], dict]], rounds: int) -> dict[str, list[dict]]:
    """Each case's results over ``rounds`` rounds, the cases run in turn within each round
    (old, new, old, new...), so that a machine whose load changes weighs on all alike."""
    results: dict[str, list[dict]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            results[name].append(case())
    return results


def print_medians(results: dict[str, list[dict]], key: str, label: str, unit: str) -> dict:
    """Print each case's median ``key`` over its rounds (``alternate``'s results) with its
    range, one row a case; returns the medians by case (``median_of``)."""
    medians = {name: median_of(rounds, key) for name, rounds in results.items()}
    print_table(
        [label, unit, "lowest", "highest"],
        [(name, m[key], *m["range"]) for name, m in medians.items()],
        formats=dict.fromkeys([unit, "lowest", "highest"], ".2f"),
    )
    return medians


def module_from_file(path: Path | str, name: str) -> ModuleType:
    """The Python file at ``path`` imported as module ``name`` (another version of one of the
    project's modules, measured beside this tree's), registered in ``sys.modules`` so that
    its dataclasses can look their module up."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def per(amount: float, units: float, scale: float = 100_000) -> float:
    """``amount`` per ``scale`` units (CPU seconds per 100,000 lessons by default)."""
    return amount / units * scale if units else 0.0


def print_table(
    header: Sequence[str], rows: Iterable[Sequence], *, file=None, formats: dict | None = None
) -> None:
    """Print ``rows`` under ``header``, the first column left-aligned and the rest right.

    Numbers are written with thousands separators (floats with no decimals) unless
    ``formats`` gives a format spec for a column by header name.
    """
    formats = formats or {}

    def cell(name: str, value) -> str:
        if name in formats and value is not None and value != "":
            return format(value, formats[name])
        if isinstance(value, bool) or value is None:
            return "" if value is None else str(value)
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.0f}"
        return str(value)

    text = [[cell(name, value) for name, value in zip(header, row, strict=True)] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in text)) for i, h in enumerate(header)]

    def line(cells) -> str:
        first, *rest = cells
        parts = [f"{first:<{widths[0]}}"]
        parts += [f"{c:>{w}}" for c, w in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    print(line(header), file=file)
    for row in text:
        print(line(row), file=file)


# --- Databases ------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def libpq(url: str) -> str:
    """A Django-style database URL (postgres://, pgsql://) as libpq spells it."""
    scheme = urlsplit(url).scheme
    return url.replace(f"{scheme}://", "postgresql://", 1)


# --- Profiles -------------------------------------------------------------------------------

# Pipeline stages, each named by markers of the frames that belong to it; a sample goes to the
# first stage with a marker anywhere on its stack (innermost stages first).
STAGES = [
    ("limiter/budget (Redis)", ("limiter.py",)),
    ("heartbeat thread", ("renew_lease", "heartbeat.<locals>")),
    (
        "row parse/validate",
        ("lesson_from_row", "LessonRows", "_LessonsOf", "lesson_records", "_NewLessonRecord"),
    ),
    ("JSON decode", ("read_envelope", "read_lessons", "peek_envelope", "same_row")),
    ("HTTP send/read", ("read_body", "_send (", "_exchange")),
    ("storage: dedupe rows", ("_distinct_rows",)),
    (
        "storage: COPY encoding",
        ("write_row", "copy_text", "_copy_lines", "_CopyText", "_copy_binary"),
    ),
    ("storage: COPY send", ("Copy.write", "copy.py", "Copy.__exit__")),
    ("storage: merge/lock SQL", ("_merge_copy",)),
    ("client per-row loop", ("NeisClient._fetch", "FetchResult._convert")),
    ("storage: subject ids", ("_subject_ids",)),
    ("storage: digest", ("known_answer", "_remember_digest", "WindowDigest")),
    ("storage: other", ("store_lessons",)),
    ("ledger queries", ("ledger.py",)),
    ("pipeline other", ("pipeline.py",)),
    ("result backend (django-db)", ("django_celery_results", "proj/results.py")),
    ("celery/kombu per task", ("celery/", "kombu/", "billiard/")),
    ("logging", ("logging/",)),
]


class Profiles:
    """py-spy raw profiles (``--format raw``, 100 samples/s, only while holding the GIL:
    CPU, not waiting) of every child of ``parent`` while the ``with`` block runs, one file
    each in ``folder`` named ``label-PID.txt``; ``paths`` lists them afterwards. Needs py-spy
    (requirements/dev.txt) and the right to trace the children (root, or ptrace_scope 0)."""

    def __init__(self, parent: int, folder: Path, label: str, rate: int = 100):
        self.parent, self.folder, self.label, self.rate = parent, Path(folder), label, rate
        self.paths: list[Path] = []
        self._spies: list[subprocess.Popen] = []

    def __enter__(self) -> Profiles:
        spy = shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("py-spy is not installed (pip install -r requirements/dev.lock)")
        self.folder.mkdir(parents=True, exist_ok=True)
        for pid in children(self.parent):
            path = self.folder / f"{self.label}-{pid}.txt"
            command = [spy, "record", "--format", "raw", "--gil", "--nonblocking"]
            command += ["--rate", str(self.rate), "--output", str(path), "--pid", str(pid)]
            self._spies.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            self.paths.append(path)
        return self

    def __exit__(self, *exc_info) -> None:
        for spy in self._spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for spy in self._spies:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
        self.paths = [path for path in self.paths if path.exists()]


def stage_shares(paths: Iterable[str | Path]) -> dict[str, float]:
    """Share of samples per pipeline stage in py-spy's raw output (``py-spy record --format
    raw``: one "frame;frame;... count" line per stack), largest first."""
    counts: dict[str, int] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            stage = next(
                (name for name, marks in STAGES if any(m in stack for m in marks)), "other"
            )
            counts[stage] = counts.get(stage, 0) + int(count)
    total = sum(counts.values()) or 1
    return {name: n / total for name, n in sorted(counts.items(), key=lambda i: -i[1])}


if __name__ == "__main__":
    # python bench/measure.py FILE...: the stage shares of py-spy raw profiles.
    import sys

    for stage, share in stage_shares(sys.argv[1:]).items():
        print(f"{share:6.1%}  {stage}")
