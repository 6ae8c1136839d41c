"""Fixtures of the chaos suite: private servers to break, real workers, ground truth.

Every scenario runs against a PostgreSQL cluster and a Redis of its own (``services``), so it
may restart them while others test on the shared ones. The test process itself is pointed at
the private cluster (``chaos_db``) for the length of a test: it creates the run, watches the
ledger and compares the result with the simulator's ground truth, through the same restarts
as the workers. The table of results is printed at the end of the session.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from django.db import connections

from tests import processes
from tests.chaos import services
from tests.chaos.harness import RESULTS, Chaos

LOGS = Path(tempfile.gettempdir()) / "neis-chaos-logs"


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("chaos: what each fault cost")
    write("| fault | lost | duplicated | wrong | failed | time to recover |")
    write("|---|---:|---:|---:|---:|---:|")
    for row in RESULTS:
        write(
            f"| {row.fault} | {row.lost} | {row.duplicated} | {row.wrong} | {row.failed} "
            f"| {row.recovery} |"
        )


def _folder(prefix: str) -> Path:
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL runs as postgres.
    return Path(tempfile.mkdtemp(prefix=f"neis-{prefix}-", dir="/tmp"))


@pytest.fixture(scope="session")
def chaos_postgres():
    """A private cluster with a migrated template database, for the whole session."""
    root = _folder("pg")
    try:
        cluster = services.Postgres(root)
        cluster.start()
    except (services.ServiceUnavailable, subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"CHAOS SKIPPED: cannot run a private PostgreSQL here: {exc}")
    try:
        cluster.execute("CREATE DATABASE chaos_template")
        env = processes.child_env({"DATABASE_URL": cluster.url("chaos_template")})
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=processes.ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def chaos_db(chaos_postgres, django_db_blocker):
    """A fresh database on the private cluster; this process and its children use it."""
    name = f"chaos_{uuid.uuid4().hex[:10]}"
    chaos_postgres.execute(f'CREATE DATABASE "{name}" TEMPLATE chaos_template')
    config = connections["default"].settings_dict
    saved = dict(config)
    with django_db_blocker.unblock():
        connections.close_all()
        del connections["default"]  # the next use builds a PostgreSQL wrapper from the dict
        config.update(
            ENGINE="django.db.backends.postgresql",
            NAME=name,
            USER="postgres",
            PASSWORD="",
            HOST="127.0.0.1",
            PORT=str(chaos_postgres.port),
            OPTIONS={},
        )
        try:
            yield chaos_postgres
        finally:
            connections.close_all()
            del connections["default"]
            config.clear()
            config.update(saved)
    with contextlib.suppress(Exception):
        chaos_postgres.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def chaos_redis():
    """A private Redis without persistence: the broker and the request budget."""
    yield from _redis(appendonly=False)


@pytest.fixture
def chaos_redis_aof():
    """A private Redis with appendonly persistence (fsync on every write)."""
    yield from _redis(appendonly=True)


def _redis(appendonly: bool):
    root = _folder("redis")
    server = services.Redis(root, appendonly=appendonly)
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def chaos_rabbitmq():
    root = _folder("rabbitmq")
    try:
        node = services.RabbitMQ(root)
        node.start()
    except (services.ServiceUnavailable, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"CHAOS SKIPPED: cannot run a private RabbitMQ node here: {exc}")
    try:
        yield node
    finally:
        node.stop()
        node.close()
        shutil.rmtree(root, ignore_errors=True)


#: Attempts of one scenario whose logs are kept (a rare failure's among passes after it).
KEEP_ATTEMPTS = 20


def _logs(request) -> Path:
    # Kept after the session (pytest keeps only its last few temporary folders, and other
    # sessions on this machine rotate them): the workers' and beat's logs of each scenario,
    # a folder an attempt, the newest KEEP_ATTEMPTS of them.
    scenario = LOGS / request.node.name
    scenario.mkdir(parents=True, exist_ok=True)
    for old in sorted(scenario.iterdir())[: -KEEP_ATTEMPTS + 1]:
        shutil.rmtree(old, ignore_errors=True)
    folder = scenario / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    folder.mkdir()
    return folder


@pytest.fixture
def chaos(request, chaos_db, chaos_redis, neis_sim_process, settings):
    """A scenario's world: private PostgreSQL and Redis, the simulator, nothing started yet."""
    return Chaos(chaos_db, chaos_redis, neis_sim_process, settings, _logs(request))


@pytest.fixture
def chaos_aof(request, chaos_db, chaos_redis_aof, neis_sim_process, settings):
    """The same, with a Redis that keeps its data in an append-only file."""
    return Chaos(chaos_db, chaos_redis_aof, neis_sim_process, settings, _logs(request))
