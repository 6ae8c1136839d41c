"""PostgreSQL restarts mid-run, under the workers, beat and the test itself."""

from __future__ import annotations

import time

import pytest

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.chaos]


@pytest.mark.parametrize(
    "mode",
    ["fast", pytest.param("immediate", marks=pytest.mark.chaos_full)],
)
def test_it_recovers_from_a_postgres_restart_mid_run(chaos, mode):
    chaos.sim.control.configure(latency_ms=100)
    with chaos.beat(), chaos.worker():
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        chaos.fault(run)
        chaos.postgres.restart(mode)
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    chaos.verify(run, f"PostgreSQL restart -m {mode}")


@pytest.mark.chaos_full
def test_it_recovers_from_postgres_down_for_a_while_mid_run(chaos):
    chaos.sim.control.configure(latency_ms=100)
    with chaos.beat(), chaos.worker():
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        chaos.fault(run)
        chaos.postgres.stop("immediate")
        time.sleep(10)
        chaos.postgres.start()
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    chaos.verify(run, "PostgreSQL down 10 s (immediate stop)")


# What Celery logs when it gives up storing a task's state: the task fails before its body
# runs and its message is acknowledged, unrecorded (the watchdog finds it lost only once the
# queue is empty, which in a national run can be hours).
BACKEND_GAVE_UP = "failed to store result on the backend"


@pytest.mark.chaos_full
@pytest.mark.timeout(600)  # 40 s away, then the run's remaining work on a loaded machine
def test_it_recovers_from_postgres_down_longer_than_a_result_retry(chaos):
    """40 s away: longer than Celery's stock result-backend retries (about 15 s)."""
    chaos.sim.control.configure(latency_ms=100)
    with chaos.beat() as beat, chaos.worker() as worker:
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        chaos.fault(run)
        chaos.postgres.stop("immediate")
        time.sleep(40)
        chaos.postgres.start()
        chaos.cleared(run)
        run = chaos.wait_closed(run)
        log = worker.output()
        # Beat took its lock back and lived on (it once died reading the schedule through the
        # connection the outage had killed); the watchdog depends on it.
        beat.wait_for("lock acquired; this beat now sends the schedule", timeout=30)
        assert beat.popen.poll() is None, beat.output()[-3000:]
    chaos.verify(run, "PostgreSQL down 40 s (immediate stop)")
    # Every message taken while the database was away ran once it was back.
    assert BACKEND_GAVE_UP not in log, "a task was dropped unrecorded while the database was away"
