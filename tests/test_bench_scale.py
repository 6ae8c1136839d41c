"""bench/bench_scale.py still runs and prints every figure (at a tiny scale: no timing asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = [
    "grown",
    "merge first load lessons/s",
    "merge unchanged re-run lessons/s",
    "merge 5% changed re-run lessons/s",
    "read one school's week p50/p95 ms",
    "read one class's week p50/p95 ms",
    "read one office's day, every lesson, p50/p95 ms",
    "read national lessons per school this week ms",
    "read national lessons per school this week, summary table ms",
    "admin lesson list ms",
    "admin lesson list, one office's day ms",
    "admin lesson list, one school ms",
    "admin ledger list ms",
    "admin ledger list, one run ms",
    "size per million lessons MiB",
    "sizes GiB",
    "indexes per school month GiB",
    "months of indexes in memory",
    "dead tuples after a week of 5% changes",
    "VACUUM of that partition s",
]

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="PostgreSQL only"
)


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/bench_scale.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )


def test_it_prints_every_figure_of_every_step_and_drops_its_database():
    database = f"neis_scale_ci_{os.getpid()}"
    done = _bench("--scale", "40k", "--schools", "120", "--sample", "10", "--reads", "5",
                  "--database", database)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    steps = re.split(r"^== ", done.stdout, flags=re.MULTILINE)
    assert [step.split(" ==")[0] for step in steps[1:]] == ["40k stored lessons", "Summary"]
    printed = re.findall(r"^  (.+?): ", steps[1], flags=re.MULTILINE)
    assert printed == FIGURES
    assert "merge 5% changed re-run at 40k vs 40k" in steps[2]
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres") as admin:
        left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchall()
    assert left == []


def test_it_refuses_a_scale_it_cannot_read_in_one_line():
    done = _bench("--scale", "lots")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("'lots' is not a scale; use e.g. 200k, 1M, 100M")
    )
