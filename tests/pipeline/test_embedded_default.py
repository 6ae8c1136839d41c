"""A run on the embedded default: SQLite, the filesystem broker and a lock-file budget."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time

import pytest

from tests.pipeline.truth import expected_lessons
from tests.processes import ROOT, celery_worker, child_env

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.slow]

DUMP = """
import json, django
django.setup()
from tests.pipeline.truth import stored_lessons
from collector.models import School
codes = list(School.objects.filter(office_id="I10", level="middle").values_list("code", flat=True))
rows = stored_lessons(codes, *map(__import__("datetime").date.fromisoformat, {window!r}))
from tests.pipeline.test_embedded_default import flat
print(json.dumps([flat(key, value) for key, value in rows.items()]))
"""


def flat(key, value) -> list[str]:
    """One lesson as strings, datetimes in UTC, so both sides compare as text."""
    return [
        v.astimezone(datetime.UTC).isoformat() if isinstance(v, datetime.datetime) else str(v)
        for v in (*key, *value)
    ]


def _manage(env, *args, check=True):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=check,
    )  # fmt: skip


def test_it_collects_on_the_embedded_default(neis_sim, tmp_path):
    embedded = {
        "DATABASE_URL": None,
        "CELERY_BROKER_URL": None,
        "NEIS_LIMITER_URL": None,
        "VAR_DIR": str(tmp_path),
        "NEIS_BASE_URL": neis_sim.url,
        "NEIS_API_KEY": neis_sim.key,
    }
    env = child_env(embedded)
    _manage(env, "migrate", "-v", "0")
    window = ("2026-11-16", "2026-11-20")
    with celery_worker(tmp_path, embedded, concurrency=2):
        started = _manage(env, "backfill_timetables", "--level", "middle", "--office", "I10",
                          "--from", window[0], "--to", window[1])  # fmt: skip
        assert "tasks enqueued" in started.stdout, started.stdout + started.stderr
        deadline = time.monotonic() + 180
        while (status := _manage(env, "collection_status", "--run", "1", check=False)).returncode:
            assert time.monotonic() < deadline, status.stdout
            time.sleep(1)
    assert "Complete." in status.stdout

    dumped = _manage(env, "shell", "-c", DUMP.format(window=window)).stdout
    stored = {tuple(row) for row in json.loads(dumped.strip().splitlines()[-1])}
    # Every middle school of I10 the simulated NEIS lists ("mis"), not the ones that were
    # stored: a school the run skipped must fail this.
    codes = {school.code for school in neis_sim.world.schools(office="I10", level="mis")}
    days = [datetime.date.fromisoformat(day) for day in window]
    expected = expected_lessons(neis_sim.world, codes, *days, neis_sim.control.now())
    expected = {tuple(flat(key, value)) for key, value in expected.items()}
    assert len({row[0] for row in expected}) > 10, "the window should have lessons to collect"
    assert stored == expected
