"""Our own services failing under a task: a dead database connection, a database or Redis
that is away for a moment. The unit is retried, never failed or orphaned."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time

import psycopg
import pytest
import redis
from django.db import OperationalError, connection

from collector import clock, pipeline, tasks
from collector.ledger import SchoolRun, UnitStatus, lease_length
from tests import processes

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("local_budget")]

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)


@pytest.fixture
def unit(neis_sim, settings):
    settings.NEIS_BASE_URL = neis_sim.url
    settings.NEIS_API_KEY = neis_sim.key
    run = pipeline.create_run("special", MONDAY, FRIDAY, offices=["I10"])
    pipeline.dispatch(run, send=lambda unit_id, expires: None)
    return run.units.order_by("pk").first()


def _kill_this_connection() -> None:
    """Terminate the test's own database session from outside, as a server restart would."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(
        processes.test_database_url().replace("postgres://", "postgresql://")
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_task_starts_on_a_fresh_connection_after_the_database_restarted(unit, monkeypatch):
    real, calls = pipeline.collect_unit, []
    monkeypatch.setattr(pipeline, "collect_unit", lambda *a, **k: calls.append(1) or real(*a, **k))
    _kill_this_connection()
    result = tasks.collect_school.apply(args=[unit.pk])
    assert result.successful(), result.traceback
    assert len(calls) == 1  # not failed once on the dead connection, then retried
    assert SchoolRun.objects.get(pk=unit.pk).status in (UnitStatus.DONE, UnitStatus.NO_DATA)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("the connection is closed"),
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    ],
)
def test_it_retries_a_unit_through_a_database_or_redis_outage(unit, monkeypatch, error, settings):
    settings.NEIS_RETRY_BACKOFF_BASE = 0.001
    real, calls = pipeline.collect_unit, []

    def flaky(unit_id, **kwargs):
        calls.append(unit_id)
        if len(calls) <= 3:
            raise error
        return real(unit_id, **kwargs)

    monkeypatch.setattr(pipeline, "collect_unit", flaky)
    result = tasks.collect_school.apply(args=[unit.pk])  # eager: retries run at once
    assert result.successful(), result.traceback
    assert len(calls) == 4  # three outages, more than NEIS_MAX_RETRIES would allow here
    assert SchoolRun.objects.get(pk=unit.pk).status in (UnitStatus.DONE, UnitStatus.NO_DATA)


def test_it_leaves_the_unit_to_the_watchdog_when_it_cannot_record_a_failure(unit, monkeypatch):
    def database_away(*args):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(pipeline, "fail_unit", database_away)
    tasks.CollectSchoolTask().on_failure(KeyError("x"), "id", [unit.pk], {}, None)  # no raise
    assert SchoolRun.objects.get(pk=unit.pk).status == UnitStatus.PENDING


def test_an_attempt_keeps_its_lease_while_it_works(unit, settings):
    settings.NEIS_LEASE_SECONDS = 3
    assert unit.claim("task-1")
    first = SchoolRun.objects.get(pk=unit.pk).lease_expires_at
    with pipeline.heartbeat(unit):
        time.sleep(2.5)  # one renewal falls due after a third of the lease
    renewed = SchoolRun.objects.get(pk=unit.pk).lease_expires_at
    assert renewed > first


class Renewed:
    """A unit as the lease keeper sees it: counts its renewals, says whether it still holds."""

    def __init__(self, pk: int, holds: bool = True, fails: bool = False):
        self.pk, self.holds, self.fails, self.times = pk, holds, fails, 0

    def renew_lease(self) -> bool:
        self.times += 1
        if self.fails:
            raise OperationalError("the database is restarting")
        return self.holds


def test_one_keeper_renews_every_unit_a_process_holds_until_it_lets_go():
    """The process's one lease keeper renews each unit at its own interval while it is held,
    stops when it is released or superseded, and goes on past a renewal that fails."""
    keeper = pipeline._keeper
    slow, fast, gone, failing = (
        Renewed(1),
        Renewed(2),
        Renewed(3, holds=False),
        Renewed(4, fails=True),
    )
    held = [keeper.hold(slow, 5)]
    time.sleep(0.05)  # the keeper now sleeps until slow falls due: the others must wake it
    held += [keeper.hold(gone, 0.1), keeper.hold(failing, 0.1)]
    fast_held = keeper.hold(fast, 0.1)
    time.sleep(0.55)
    keeper.release(fast_held)
    released_at = fast.times
    time.sleep(0.3)
    for token in held:
        keeper.release(token)
    assert slow.times == 0
    assert released_at >= 2 and fast.times == released_at  # (about 5 on a quiet machine)
    assert gone.times == 1  # superseded at its first renewal: not asked again
    assert failing.times >= 2  # logged, and tried again at its interval


_KEEPER_IN_A_FORKED_CHILD = """
import os, sys, time
import django
django.setup()
from collector import pipeline
class Unit:
    pk, times = 1, 0
    def renew_lease(self):
        self.times += 1
        return True
parent = Unit()
pipeline._keeper.hold(parent, 0.1)
time.sleep(0.35)
child = os.fork()
if child == 0:  # the parent's keeper thread is not here: holding starts one
    unit, inherited = Unit(), parent.times
    pipeline._keeper.hold(unit, 0.1)
    time.sleep(0.55)
    # Its own unit renewed; the parent's (a copy here) is the parent's keeper's business.
    os._exit(0 if unit.times >= 2 and parent.times == inherited else 1)
_, status = os.waitpid(child, 0)
print(parent.times >= 3, os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_keeps_its_leases_with_a_keeper_of_its_own():
    done = processes.run_python(_KEEPER_IN_A_FORKED_CHILD)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "0"]


# A worker whose host dropped off the network inside its store transaction: it holds the
# unit's row lock and then says nothing more, as a client that will never send COMMIT.
_GONE_MID_TRANSACTION = """
import sys, time
import django
django.setup()
from django.db import transaction
from collector.ledger import SchoolRun
unit = SchoolRun.objects.get(pk=int(sys.argv[1]))
with transaction.atomic():
    assert unit.lock_claim()
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_host_gone_mid_transaction_lets_go_of_its_unit(unit, settings):
    assert unit.claim("task-there")
    gone = subprocess.Popen(
        [sys.executable, "-c", _GONE_MID_TRANSACTION, str(unit.pk)],
        cwd=processes.ROOT,
        env=processes.child_env({"DB_IDLE_IN_TRANSACTION_SECONDS": "1"}),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert gone.stdout.readline().strip() == "locked"
        later = clock.now() + 2 * lease_length()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '10s'")  # without the limit: a wait of hours
        try:
            sent = []
            pipeline.requeue_stuck(
                now=later, send=lambda unit_id, expires: sent.append(unit_id), waiting=lambda: 0
            )
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        gone.kill()
        gone.wait()
    assert unit.pk in sent  # taken back from the gone attempt and sent again
    assert SchoolRun.objects.get(pk=unit.pk).status == UnitStatus.PENDING
