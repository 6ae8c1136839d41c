"""The broker (and the request budget's Redis) restarts mid-run."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.chaos]


def test_it_recovers_from_a_redis_restart_that_lost_every_message(chaos):
    chaos.sim.control.configure(latency_ms=100)
    with chaos.beat(), chaos.worker():
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        chaos.fault(run)
        chaos.redis.restart(down=1)  # no persistence: queued and unacked messages are gone
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    chaos.verify(run, "Redis restart, no persistence")


@pytest.mark.chaos_full
def test_it_recovers_from_a_redis_restart_with_appendonly(chaos_aof):
    chaos = chaos_aof
    chaos.sim.control.configure(latency_ms=100)
    with chaos.beat(), chaos.worker():
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        chaos.fault(run)
        chaos.redis.restart(down=1)
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    chaos.verify(run, "Redis restart, appendonly")


@pytest.mark.chaos_full
def test_it_recovers_from_a_rabbitmq_restart_mid_run(
    request, chaos_db, chaos_redis, chaos_rabbitmq, neis_sim_process, settings
):
    """RabbitMQ as the broker (durable queues, persistent messages), Redis as the budget."""
    from tests.chaos.conftest import _logs
    from tests.chaos.harness import Chaos

    chaos = Chaos(chaos_db, chaos_redis, neis_sim_process, settings, _logs(request))
    chaos.use_broker(chaos_rabbitmq.url)
    chaos.sim.control.configure(latency_ms=100)
    with chaos.beat(), chaos.worker():
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        chaos.fault(run)
        chaos_rabbitmq.restart()
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    chaos.verify(run, "RabbitMQ restart")
