"""NEIS maintenance windows of ten minutes and two hours, passed in seconds of simulated time.

A broker, a worker and beat run in this process on a clock the test moves (``Simulated``):
messages wait for their due time, each task takes a second, beat runs the watchdog and
resume_deferred every minute, and NEIS's clock moves with the collector's. The settings are
production's (retry window, backoff cap, breaker threshold and probe interval), so this is
how a real run lives through a real maintenance window: it waits as a whole, probes NEIS once
a minute, and finishes within a minute of NEIS coming back, with no school failed.
"""

from __future__ import annotations

import datetime
import heapq
import itertools

import pytest
from django.db.models import Sum

from collector import clock, pipeline
from collector.ledger import CollectionRun, RunStatus, UnitStatus
from tests.pinned_clock import TEST_CLOCK
from tests.pipeline.truth import expected_lessons, stored_lessons

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [
    pytest.mark.chaos,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("local_budget"),
]

START = datetime.datetime.fromisoformat(TEST_CLOCK)
MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)
MINUTE = datetime.timedelta(minutes=1)


class Simulated:
    """One broker, one worker and beat, in this process, on a clock the test moves."""

    def __init__(self, sim, start: datetime.datetime, task_seconds: float = 1.0):
        self.sim = sim
        self.queue: list[tuple[datetime.datetime, int, int]] = []
        self.order = itertools.count()
        self.task = datetime.timedelta(seconds=task_seconds)
        self.next_beat = start
        self.requests_at: list[datetime.datetime] = []
        self.previous = clock.install(clock.Clock(start, frozen=True))
        self.move(start)

    def move(self, moment: datetime.datetime) -> None:
        clock.install(clock.Clock(moment, frozen=True))
        self.sim.control.set_clock(moment, frozen=True)

    @property
    def now(self) -> datetime.datetime:
        return clock.now()

    def send(self, unit_id: int, expires: float) -> None:
        heapq.heappush(self.queue, (self.now, next(self.order), unit_id))

    def waiting(self) -> int:
        """Messages in the queue proper (a retry's countdown is held by the worker)."""
        return sum(1 for due, _, _ in self.queue if due <= self.now)

    def run(self, run: CollectionRun, until: datetime.datetime) -> CollectionRun:
        """Work and beat until the run closes (or ``until``); returns the run."""
        while CollectionRun.objects.get(pk=run.pk).is_open and self.now < until:
            if self.queue and self.queue[0][0] <= self.next_beat:
                due, _, unit_id = heapq.heappop(self.queue)
                self.move(max(due, self.now))
                self.collect(unit_id)
                self.move(self.now + self.task)
            else:
                self.move(max(self.next_beat, self.now))
                pipeline.watchdog(send=self.send, waiting=self.waiting)
                pipeline.resume_deferred(send=self.send)
                self.next_beat = self.now + MINUTE
        return CollectionRun.objects.get(pk=run.pk)

    def collect(self, unit_id: int) -> None:
        """What ``collector.collect_school`` does, with this broker."""
        before = self.sim.control.stats()["requests"]
        try:
            outcome = pipeline.collect_unit(unit_id, task_id=f"sim-{unit_id}")
        except pipeline.RetryLater as later:
            heapq.heappush(
                self.queue,
                (self.now + datetime.timedelta(seconds=later.countdown), next(self.order), unit_id),
            )
        else:
            if outcome.reopened:
                pipeline.resume_deferred(send=self.send)
        if self.sim.control.stats()["requests"] > before:
            self.requests_at.append(self.now)

    def close(self) -> None:
        clock.install(self.previous)


@pytest.fixture
def simulated(neis_sim, settings):
    settings.NEIS_BASE_URL, settings.NEIS_API_KEY = neis_sim.url, neis_sim.key
    world = Simulated(neis_sim, START)
    yield world
    world.close()


def _assert_equals_neis(sim, run) -> None:
    """Each school against what NEIS served when it was collected (revisions may land while
    the run waits out the window)."""
    stored = 0
    for code, finished in run.units.values_list("school__code", "finished_at"):
        expected = expected_lessons(sim.world, [code], MONDAY, FRIDAY, finished)
        assert stored_lessons([code], MONDAY, FRIDAY) == expected, code
        stored += len(expected)
    assert stored > 0
    assert run.units.aggregate(n=Sum("rows_inserted"))["n"] == stored  # counted once each


@pytest.mark.parametrize("window", [datetime.timedelta(minutes=10), datetime.timedelta(hours=2)])
def test_a_run_waits_out_a_maintenance_window_and_finishes_within_a_minute(simulated, window):
    sim = simulated.sim
    run = pipeline.create_run("elementary", MONDAY, FRIDAY, offices=["I10"])
    begins = simulated.now + datetime.timedelta(seconds=20)  # some schools are done by then
    ends = begins + window
    sim.control.add_maintenance(begins, ends)
    pipeline.dispatch(run, send=simulated.send)

    run = simulated.run(run, until=ends + datetime.timedelta(hours=1))

    assert run.status == RunStatus.DONE, list(run.units.values("status", "last_error_code"))
    assert run.units.filter(status=UnitStatus.FAILED).count() == 0
    assert run.units.filter(finished_at__lt=begins).exists()  # the window fell mid-run
    # Within a minute of NEIS coming back (the next probe), plus the work that was left.
    left = run.units.filter(finished_at__gte=ends).count()
    assert run.finished_at <= ends + MINUTE + left * simulated.task + MINUTE
    # While NEIS was down the run probed it about once a minute, not once per school.
    during = [t for t in simulated.requests_at if begins + 2 * MINUTE <= t < ends]
    assert len(during) <= window / MINUTE + 2, len(during)
    print(
        f"\nchaos: maintenance {window} (simulated): closed {run.finished_at - ends} after "
        f"NEIS came back, {len(during)} requests while down"
    )
    _assert_equals_neis(sim, run)


def test_a_run_in_process_sleeps_through_a_maintenance_window(simulated):
    """``--sync`` (``run_in_process``) rides out two hours of maintenance on its retry window:
    each sleep is a move of the clock."""
    sim = simulated.sim
    run = pipeline.create_run("special", MONDAY, FRIDAY, offices=["I10"])
    begins = simulated.now
    ends = begins + datetime.timedelta(hours=2)
    sim.control.add_maintenance(begins, ends)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        simulated.move(simulated.now + datetime.timedelta(seconds=seconds))

    run = pipeline.run_in_process(run, sleep=sleep)

    assert run.status == RunStatus.DONE
    assert run.units.filter(status=UnitStatus.FAILED).count() == 0
    assert run.finished_at >= ends
    assert max(slept) <= 300  # NEIS_RETRY_BACKOFF_MAX: NEIS is asked at least every 5 minutes
    assert run.finished_at <= ends + datetime.timedelta(seconds=300)
    _assert_equals_neis(sim, run)
