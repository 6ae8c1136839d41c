"""PostgreSQL restarts mid-run, under the workers, beat and the test itself."""

from __future__ import annotations

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
        import time

        time.sleep(10)
        chaos.postgres.start()
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    chaos.verify(run, "PostgreSQL down 10 s (immediate stop)")
