"""NEIS misbehaves mid-run: random transient faults, a maintenance window, a spent quota."""

from __future__ import annotations

import datetime
import time

import pytest
from django.db.models import Sum

from collector import pipeline
from collector.ledger import UnitStatus

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.chaos]

TRANSIENT = ["http500", "http502", "http503", "maintenance", "hang", "drop", "error500",
             "error600", "truncated", "partial", "invalid_json"]  # fmt: skip


def test_it_collects_everything_through_thirty_percent_transient_faults(chaos):
    chaos.sim.control.set_faults(rate=0.3, kinds=TRANSIENT, hang_seconds=3)
    with chaos.beat(), chaos.worker(concurrency=3):
        run = chaos.start_run()
        run = chaos.wait_closed(run, timeout=240)
    chaos.sim.control.clear_faults()
    assert run.units.aggregate(n=Sum("retries"))["n"] > 0
    chaos.verify(run, "NEIS: 30% transient faults, whole run")


def test_it_waits_out_a_maintenance_window_mid_run_and_resumes_by_itself(chaos):
    chaos.sim.control.configure(latency_ms=100)
    with chaos.beat(), chaos.worker():
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        chaos.fault(run)
        chaos.sim.control.set_faults(rate=1.0, kinds=["maintenance"])
        # The breaker opens: the run waits as a whole instead of spending retries.
        chaos.wait_for(lambda: run.units.filter(last_error_code=pipeline.NEIS_DOWN).exists())
        time.sleep(15)
        requests_while_down = chaos.sim.control.stats()["requests"]
        time.sleep(5)
        probes = chaos.sim.control.stats()["requests"] - requests_while_down
        chaos.sim.control.set_faults(rate=0.0)
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    # One probe per NEIS_BREAKER_PROBE_SECONDS (3 s here), not a request per school.
    assert probes <= 5, probes
    chaos.verify(run, "NEIS maintenance 20 s mid-run (breaker)")


@pytest.mark.chaos_full
def test_it_defers_on_a_quota_spent_mid_run_and_finishes_after_the_reset(chaos):
    chaos.sim.control.configure(latency_ms=50)
    with chaos.beat(), chaos.worker():
        run = pipeline.create_run("all", *chaos.window(), offices=["I10"])
        used = chaos.sim.control.quota_used(chaos.sim.key)
        chaos.sim.control.set_quota(used + run.units_total // 2)
        chaos.dispatch(run)
        chaos.started_at = chaos.now()
        chaos.wait_for(lambda: not run.units.filter(status__in=["pending", "running"]).exists())
        deferred = run.units.filter(status=UnitStatus.DEFERRED).count()
        assert run.units.filter(last_error_code="ERROR-337").exists()
        assert run.units.filter(status=UnitStatus.FAILED).count() == 0
        chaos.fault(run)

        chaos.sim.control.set_quota(100_000)
        chaos.sim.control.reset_quota()  # the simulated midnight reset
        tomorrow = chaos.now() + datetime.timedelta(days=1)
        with chaos.sender() as send:
            assert pipeline.resume_deferred(now=tomorrow, send=send) == deferred
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    chaos.verify(run, "NEIS quota spent mid-run, reset")
