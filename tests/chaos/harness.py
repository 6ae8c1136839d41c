"""One chaos scenario: a run on real workers and beat, a fault, and the reckoning.

``Chaos`` starts a run of one office over the private servers, lets the test break something
mid-run, notes when the fault cleared, waits for the run to close by itself, then compares the
database with the simulator's ground truth and the ledger with what is stored. The figures go
into ``RESULTS``, printed as a table at the end of the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import signal
import time
from pathlib import Path

from django.db import DatabaseError, connection
from django.db.models import Count, Sum

from collector import clock, pipeline
from collector.broker import queue_depth
from collector.ledger import TERMINAL, CollectionRun, RunStatus, UnitStatus
from proj.celery import app
from tests import processes
from tests.pipeline.truth import expected_lessons, stored_lessons

# Beat sends the watchdog and resume_deferred this often in the chaos suite (production: every
# minute); the leases are short to match, so a dead attempt's unit comes back in seconds.
TICK_SECONDS = 2
LEASE_SECONDS = 6
IDLE_IN_TRANSACTION_SECONDS = 10
STALL_SECONDS = 10
# The goal of issue 12: a run recovers within a minute of its fault clearing, plus the work
# that was still left to do then.
RECOVERY_SECONDS = 60


@dataclasses.dataclass
class Result:
    fault: str
    lost: int
    duplicated: int
    wrong: int
    failed: int
    recovery: str


RESULTS: list[Result] = []


class Chaos:
    def __init__(self, postgres, redis, sim, settings, logs: Path):
        self.postgres, self.redis, self.sim = postgres, redis, sim
        self.settings, self.logs = settings, logs
        self.broker_url = redis.url
        self.env = {
            "CELERY_BROKER_URL": redis.url,
            "NEIS_LIMITER_URL": redis.url,
            "NEIS_BASE_URL": sim.url,
            "NEIS_API_KEY": sim.key,
            "NEIS_MAX_CONCURRENCY": "4",
            "NEIS_MAX_RPS": "200",
            "NEIS_CONNECT_TIMEOUT": "1",
            "NEIS_READ_TIMEOUT": "2",
            "NEIS_LEASE_SECONDS": str(LEASE_SECONDS),
            "NEIS_RETRY_BACKOFF_MAX": "2",
            "NEIS_BREAKER_PROBE_SECONDS": "3",
            # A worker cut off mid-transaction holds its locks this long (production: a minute).
            "DB_IDLE_IN_TRANSACTION_SECONDS": str(IDLE_IN_TRANSACTION_SECONDS),
            # A consumer that stopped taking messages reconnects after this (production: a
            # minute; collector.broker).
            "WORKER_STALL_SECONDS": str(STALL_SECONDS),
        }
        # This process creates runs and reads the budget: the same servers as the workers.
        settings.CELERY_BROKER_URL = settings.NEIS_LIMITER_URL = redis.url
        settings.NEIS_BASE_URL, settings.NEIS_API_KEY = sim.url, sim.key
        settings.NEIS_MAX_CONCURRENCY, settings.NEIS_MAX_RPS = 4, 200.0
        settings.NEIS_LEASE_SECONDS = LEASE_SECONDS
        self.started_at = self.fault_at = self.cleared_at = None
        self.done_at_fault = 0
        self.open_at_clear = 0
        self._orphans: list[int] = []

    def use_broker(self, url: str) -> None:
        """Send and consume through ``url``; the private Redis stays the request budget."""
        self.broker_url = self.env["CELERY_BROKER_URL"] = url
        self.settings.CELERY_BROKER_URL = url

    # --- processes ----------------------------------------------------------------------

    def worker(self, concurrency: int = 2, prefix: list[str] | None = None, **env):
        return processes.celery_worker(
            self.logs,
            {**self.env, **env},
            concurrency=concurrency,
            queues="default,neis",
            prefix=prefix,
        )

    @contextlib.contextmanager
    def beat(self, **env):
        """Beat with the real schedules, the watchdog and resume_deferred every tick."""
        from django.core.management import call_command
        from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

        call_command("setup_schedules", stdout=open(os.devnull, "w"))  # noqa: SIM115
        every, _ = IntervalSchedule.objects.get_or_create(
            every=TICK_SECONDS, period=IntervalSchedule.SECONDS
        )
        fast = ["collector.watchdog", "collector.resume_deferred"]
        PeriodicTask.objects.exclude(task__in=fast).update(enabled=False)
        PeriodicTask.objects.filter(task__in=fast).update(interval=every, crontab=None)
        PeriodicTasks.update_changed()
        with processes.celery_beat(self.logs, {**self.env, **env}) as beat:
            yield beat

    def kill_group(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    # --- the run ------------------------------------------------------------------------

    @staticmethod
    def window(weeks: int = 1) -> tuple[datetime.date, datetime.date]:
        """School weeks ending Friday 2026-11-20, the week before the pinned clock's."""
        monday = datetime.date(2026, 11, 16) - datetime.timedelta(weeks=weeks - 1)
        return monday, datetime.date(2026, 11, 20)

    @staticmethod
    def now() -> datetime.datetime:
        return clock.now()

    def start_run(self, level: str = "all", office: str = "I10", weeks: int = 1, **kwargs):
        run = pipeline.create_run(level, *self.window(weeks), offices=[office], **kwargs)
        self.dispatch(run)
        self.started_at = clock.now()
        return run

    @contextlib.contextmanager
    def sender(self):
        """A pipeline sender publishing to the private broker (this process's Celery app is
        configured for the shared one)."""
        with app.connection_for_write(self.broker_url) as conn:

            def send(unit_id: int, expires: float) -> None:
                app.send_task(
                    pipeline.COLLECT_TASK, args=[unit_id], expires=expires, connection=conn
                )

            yield send

    def dispatch(self, run, **kwargs) -> int:
        with self.sender() as send:
            return pipeline.dispatch(run, send=send, **kwargs)

    def wait_for(self, predicate, timeout: float = 120):
        return processes.wait_until(lambda: self.query(predicate), timeout=timeout)

    def units(self, run, *statuses) -> int:
        return self.query(lambda: run.units.filter(status__in=statuses).count())

    def wait_for_progress(self, run, fraction: float, timeout: float = 120) -> None:
        """Until ``fraction`` of the run's units have ended; then the fault may strike."""
        target = max(1, int(run.units_total * fraction))
        processes.wait_until(
            lambda: self.units(run, *TERMINAL) >= target,
            timeout=timeout,
            interval=0.1,
            message=f"run {run.pk} did not reach {target} ended units",
        )

    def fault(self, run) -> None:
        """Note the moment a fault strikes and how far the run had come."""
        self.fault_at = clock.now()
        self.done_at_fault = self.units(run, *TERMINAL)

    def cleared(self, run) -> None:
        """Note the moment the fault cleared (the service is back) and the work left."""
        self.cleared_at = clock.now()
        if self.fault_at is None:
            self.fault(run)
        self.open_at_clear = run.units_total - self.units(run, *TERMINAL)

    def wait_closed(self, run, timeout: float = 180) -> CollectionRun:
        def closed():
            found = CollectionRun.objects.get(pk=run.pk)
            return found if not found.is_open else None

        try:
            return processes.wait_until(lambda: self.query(closed), timeout=timeout)
        except TimeoutError:
            left = dict(
                run.units.exclude(status__in=TERMINAL)
                .values_list("status", "last_error_code")
                .annotate(n=Count("pk"))
                .values_list("status", "n")
            )
            raise TimeoutError(
                f"run {run.pk} did not close in {timeout} s; open: {left}; "
                f"{self._waiting()} collect messages waiting; logs in {self.logs}"
            ) from None

    def _waiting(self) -> str:
        """How many collect messages wait in the private broker, for a stall's message."""
        try:
            with app.connection_for_read(self.broker_url) as conn:
                queue = self.settings.CELERY_TASK_ROUTES[pipeline.COLLECT_TASK]["queue"]
                return str(queue_depth(conn, queue))
        except Exception as exc:  # the message is a diagnosis; it must not hide the timeout
            return f"unknown ({exc.__class__.__name__})"

    @staticmethod
    def query(read, attempts: int = 600):
        """``read()`` through a database restart: a dead connection is dropped and retried."""
        for _ in range(attempts):
            try:
                return read()
            except DatabaseError:
                connection.close()
                time.sleep(0.1)
        return read()

    # --- the reckoning ------------------------------------------------------------------

    def verify(self, run, fault: str, *, first_load: bool = True) -> Result:
        """Database against ground truth, ledger against the database; record the figures.

        Asserts nothing lost, duplicated or wrong, no unit failed, and recovery within
        ``RECOVERY_SECONDS`` of the fault clearing plus the work that was left then.
        """
        run = CollectionRun.objects.get(pk=run.pk)
        codes = list(run.units.values_list("school__code", flat=True))
        expected = expected_lessons(
            self.sim.world, codes, run.date_from, run.date_to, self.sim.control.now()
        )
        stored = stored_lessons(codes, run.date_from, run.date_to)
        inserted = run.units.aggregate(n=Sum("rows_inserted"))["n"] or 0
        lost = len(expected.keys() - stored.keys())
        extra = len(stored.keys() - expected.keys())
        wrong = sum(1 for key in expected.keys() & stored.keys() if expected[key] != stored[key])
        duplicated = extra + (inserted - len(stored) if first_load else 0)
        failed = run.units.filter(status=UnitStatus.FAILED).count()
        recovery, bound = self._recovery(run)
        result = Result(fault, lost, duplicated, wrong, failed, recovery)
        RESULTS.append(result)
        print(f"\nchaos: {result}")

        assert expected, "the window should hold lessons"
        assert (lost, duplicated, wrong, failed) == (0, 0, 0, 0), result
        assert run.status == RunStatus.DONE, list(
            run.units.exclude(status__in=["done", "no_data"]).values("status", "last_error")
        )
        if bound is not None:
            seconds = (run.finished_at - self.cleared_at).total_seconds()
            assert seconds <= bound, f"recovered in {seconds:.1f} s, bound {bound:.1f} s"
        return result

    def _recovery(self, run) -> tuple[str, float | None]:
        if self.cleared_at is None:
            return "-", None
        seconds = (run.finished_at - self.cleared_at).total_seconds()
        before = (self.fault_at - self.started_at).total_seconds()
        rate = self.done_at_fault / before if before > 0 and self.done_at_fault else None
        work = self.open_at_clear / rate if rate else 0.0
        # Twice the work left at the pace before the fault: after a fault the work left is
        # cold (new connections, retries), and the bound is about the minute, not the pace.
        bound = RECOVERY_SECONDS + 2 * work
        return f"{seconds:.1f} s ({self.open_at_clear} units left, ~{work:.0f} s of work)", bound
