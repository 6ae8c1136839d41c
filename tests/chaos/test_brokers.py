"""The broker (and the request budget's Redis) restarts mid-run."""

from __future__ import annotations

import pytest
from django.db.models import Sum

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


@pytest.mark.chaos_full
@pytest.mark.timeout(600)  # a RabbitMQ node takes a minute or more to start on a loaded machine
def test_it_collects_through_quorum_queues_on_rabbitmq(
    request, chaos_db, chaos_redis, chaos_rabbitmq, neis_sim_process, settings
):
    """RabbitMQ as docker/compose.yml's rabbitmq profile runs it: a vhost and user of its own,
    quorum queues (BROKER_QUORUM_QUEUES=1), retries' countdowns waiting in RabbitMQ. Every
    process here, the one that sends the run included, is configured so; transient NEIS faults
    make units retry through the delayed-delivery exchanges."""
    import subprocess
    import sys

    from collector.ledger import CollectionRun
    from tests import processes
    from tests.chaos.conftest import _logs
    from tests.chaos.harness import Chaos

    chaos = Chaos(chaos_db, chaos_redis, neis_sim_process, settings, _logs(request))
    url = chaos_rabbitmq.add_vhost("neis", "neis", "chaos-secret")
    chaos.use_broker(url)
    env = {"BROKER_QUORUM_QUEUES": "1"}
    chaos.sim.control.set_faults(rate=0.2, kinds=["http503", "http500"])
    with chaos.beat(**env), chaos.worker(**env) as worker:
        monday, friday = chaos.window()
        sent = subprocess.run(
            [sys.executable, "manage.py", "backfill_timetables", "--level", "all",
             "--from", monday.isoformat(), "--to", friday.isoformat(), "--office", "I10"],
            cwd=processes.ROOT, env=processes.child_env({**chaos.env, **env}),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        run = chaos.query(lambda: CollectionRun.objects.latest("pk"))
        run = chaos.wait_closed(run)
        queues = chaos_rabbitmq.ctl("list_queues", "-p", "neis", "name", "type")
        log = worker.output()
    chaos.sim.control.clear_faults()
    assert run.units.aggregate(n=Sum("retries"))["n"] > 0, "no retry went through a countdown"
    chaos.verify(run, "RabbitMQ quorum queues, 20% NEIS faults")
    types = dict(line.split() for line in queues.splitlines() if line.strip())
    assert types["neis"] == types["default"] == "quorum", queues
    assert "Global QoS is disabled" in log  # quorum queues refuse it
    assert "NOT_IMPLEMENTED" not in log
