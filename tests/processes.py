"""Real Celery worker and beat processes for tests.

Tests that matter for Celery behaviour (acks, retries, fan-out, schedules) run against a real
``celery -A proj worker`` child process with the environment they choose, never only eager mode.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from django.db import connection

from tests import loopback

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def test_database_url() -> str:
    """A DATABASE_URL for the database the current test is using (pytest-django's test DB)."""
    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or "postgres"
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = cfg.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{cfg['NAME']}"


def child_env(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment for a child process: this one, pointed at the test database, able to
    reach loopback only (``tests.loopback``) and at a loopback NEIS unless told otherwise.

    An override of ``None`` removes the variable (to run a child on the embedded defaults).
    """
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    env.setdefault("NEIS_BASE_URL", loopback.LOOPBACK_NEIS_URL)
    env["DATABASE_URL"] = test_database_url()
    env["PYTHONPATH"] = str(ROOT)
    loopback.child_environ(env)
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_child(
    args: list[str], overrides: Mapping[str, str | None] | None = None, *, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``args`` to completion from the project's folder with ``child_env(overrides)``,
    capturing its output as text."""
    return subprocess.run(
        args, cwd=ROOT, env=child_env(overrides), capture_output=True, text=True, timeout=timeout
    )


def run_python(
    code: str, overrides: Mapping[str, str | None] | None = None, *, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (``run_child``)."""
    return run_child([sys.executable, "-c", code], overrides, timeout=timeout)


class Process:
    """A child process whose combined output goes to a log file we can search and show."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.args[0:4]} exited early:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"{text!r} not seen in {timeout}s:\n{self.output()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()


@contextlib.contextmanager
def celery_worker(
    tmp_path: Path,
    env: Mapping[str, str | None] | None = None,
    *,
    queues: str | None = "default,neis",
    pool: str = "prefork",
    concurrency: int = 2,
    extra: list[str] | None = None,
    prefix: list[str] | None = None,
    app: str = "proj",
) -> Iterator[Process]:
    """Run ``celery -A proj worker`` until the block ends; yields once it reports ready.

    ``queues=None`` starts it as the README and Celery's tutorials do, with no ``-Q``.
    ``prefix``: a command that runs the worker (``ip netns exec NAME``: on another host).
    ``app``: another Celery app module (a test's, with a fault of its own).
    """
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    args = [
        sys.executable, "-m", "celery", "-A", app, "worker",
        "-n", name, *(["-Q", queues] if queues else []), "-P", pool, "-c", str(concurrency),
        "-l", "INFO", "--without-gossip", "--without-mingle", *(extra or []),
    ]  # fmt: skip
    args = [*(prefix or []), *args]
    process = Process(args, child_env(env), tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log")
    try:
        process.wait_for(" ready.", timeout=90)
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def celery_beat(tmp_path: Path, env: Mapping[str, str | None] | None = None) -> Iterator[Process]:
    """Run ``celery -A proj beat`` (DatabaseScheduler) until the block ends."""
    with celery_beats(tmp_path, env, count=1) as (process,):
        yield process


@contextlib.contextmanager
def celery_beats(
    tmp_path: Path, env: Mapping[str, str | None] | None = None, *, count: int = 2
) -> Iterator[tuple[Process, ...]]:
    """Start ``count`` beats at once (not one after the other is up) and run them until the
    block ends."""
    args = [
        sys.executable, "-m", "celery", "-A", "proj", "beat", "-l", "DEBUG",
        "--max-interval", "1", "-s", str(tmp_path / "beat-schedule"),
    ]  # fmt: skip
    processes: list[Process] = []
    try:
        for _ in range(count):
            log = tmp_path / f"beat-{uuid.uuid4().hex[:6]}.log"
            processes.append(Process(args, child_env(env), log))
        for process in processes:
            process.wait_for("beat: Starting", timeout=60)
        yield tuple(processes)
    finally:
        for process in processes:
            process.stop()


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.2, message: str = ""):
    """Poll ``predicate`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not met in {timeout}s")
        time.sleep(interval)
