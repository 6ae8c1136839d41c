"""Several hosts: a worker on a second host (a network namespace) is cut off mid-run.

Two workers collect one run, one here and one on the other side of a veth pair
(``tests/chaos/netns.py``), sharing PostgreSQL, the broker and the request budget through the
cable. The cable is pulled mid-run for 20 s, then plugged back. The units the cut-off host held
are claimed again here once their leases run out; when the host comes back, whatever it still
tries to write for them is refused by the claim token; the request budget holds across both.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from django.db import connection

from collector.ledger import SchoolRun, UnitStatus
from tests import processes
from tests.chaos import netns

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.chaos]

CUT_SECONDS = 20
RECEIVED = re.compile(r"Task collector\.collect_school\[([0-9a-f-]+)\] received")


@pytest.fixture
def second_host(chaos):
    """A namespace host wired to the private services through a relay on its cable."""
    reason = netns.Host.available()
    if reason:
        pytest.skip(f"CHAOS SKIPPED: no network namespaces here: {reason}")
    host = netns.Host(uuid.uuid4().hex[:6])
    relay = None
    try:
        host.create()
        sim_port = int(chaos.sim.url.rsplit(":", 1)[1].split("/")[0])
        relay = netns.Relay(host.here, [chaos.postgres.port, chaos.redis.port, sim_port])
        database = processes.test_database_url()
        env = {
            "DATABASE_URL": relay.url(database, chaos.postgres.port),
            "CELERY_BROKER_URL": relay.url(chaos.redis.url, chaos.redis.port),
            "NEIS_LIMITER_URL": relay.url(chaos.redis.url, chaos.redis.port),
            "NEIS_BASE_URL": relay.url(chaos.sim.url, sim_port),
            # The one address the worker over there may reach besides its own loopback.
            "TEST_LOOPBACK_ALLOW": host.here,
            # A page in flight when the cable goes outlives the cut (the chaos default of 2 s
            # would end it): the host is gone mid-task, as with production's 30 s.
            "NEIS_READ_TIMEOUT": "40",
        }
        yield host, env
    finally:
        if relay is not None:
            relay.close()
        host.close()


def _held_by(worker, run) -> dict[int, str]:
    """The running units of ``run`` whose message ``worker`` took: id -> claim token."""
    task_ids = set(RECEIVED.findall(worker.output()))
    return dict(
        SchoolRun.objects.filter(
            run=run, status=UnitStatus.RUNNING, task_id__in=task_ids
        ).values_list("pk", "claim_token")
    )


def _dump(chaos, held) -> None:
    """What holds the cut host's units: their rows, the sessions and locks, the logs' tails."""
    fields = ["pk", "status", "claim_token", "lease_expires_at", "task_id", "attempts"]
    print(f"\nchaos: now {chaos.now()}; held {held}")
    for row in SchoolRun.objects.filter(pk__in=held).values(*fields):
        print("chaos: unit", row)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, wait_event_type, wait_event, pg_blocking_pids(pid), xact_start,"
            " left(query, 160) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        for row in cursor.fetchall():
            print("chaos: session", row)
    for path in sorted(chaos.logs.iterdir()):
        print(f"chaos: --- {path}")
        print("\n".join(path.read_text(errors="replace").splitlines()[-40:]))


@pytest.mark.chaos_full
@pytest.mark.timeout(600)  # two workers, a 20 s cut and the verification, on a loaded machine
def test_a_worker_host_cut_off_mid_run_is_taken_over(chaos, second_host):
    host, there_env = second_host
    chaos.sim.control.configure(latency_ms=100)
    with (
        chaos.beat(),
        chaos.worker(),
        chaos.worker(prefix=host.command([]), **there_env) as there,
    ):
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        held = chaos.query(lambda: _held_by(there, run))
        while not held:  # the cut must catch the other host mid-task
            held = chaos.query(lambda: _held_by(there, run))
        chaos.fault(run)
        host.cut()
        cut_at = time.monotonic()

        def taken_over() -> bool:
            # None of them is still held under the cut host's claim: claimed again here
            # (a new token), or ended by the cut host just before the cable went.
            still = SchoolRun.objects.filter(
                pk__in=held, status=UnitStatus.RUNNING, claim_token__in=held.values()
            )
            return not still.exists()

        try:
            chaos.wait_for(taken_over, timeout=CUT_SECONDS + 60)
        except TimeoutError:
            _dump(chaos, held)
            raise
        taken_over_after = time.monotonic() - cut_at
        reclaimed = chaos.query(
            lambda: (
                SchoolRun.objects.filter(pk__in=held).exclude(claim_token__in=held.values()).count()
            )
        )
        time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut_at)))
        host.restore()
        chaos.cleared(run)
        run = chaos.wait_closed(run)
        log = there.output()
    stats = chaos.sim.control.stats()
    result = chaos.verify(run, f"worker host cut off {CUT_SECONDS} s (namespace link down)")
    print(
        f"chaos: {len(held)} units held by the cut host, {reclaimed} claimed again here, none "
        f"held after {taken_over_after:.1f} s; late attempts refused: {log.count('superseded')}; "
        f"NEIS requests in flight at most {stats['max_in_flight']}"
    )
    assert result.lost == 0
    assert taken_over_after <= 60, "the cut host's units were not claimed again within a minute"
    assert stats["max_in_flight"] <= 4, "the request budget was exceeded across hosts"
