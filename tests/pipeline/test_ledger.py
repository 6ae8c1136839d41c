"""The ledger's state machine, driven directly: no worker, no broker, no NEIS.

Each transition is checked from the states it leaves and the ones it must refuse; time moves
by pinning the collector's clock, and messages are caught by a sender passed to the pipeline.
"""

from __future__ import annotations

import datetime
import pickle

import psycopg
import pytest
from billiard.exceptions import WorkerLostError
from celery.utils.serialization import get_pickleable_exception
from django.db import connection, transaction

from collector import clock, pipeline
from collector.ledger import CollectionRun, RunStatus, SchoolRun, UnitStatus
from collector.neis.errors import (
    NeisError,
    NeisPermanentError,
    NeisQuotaError,
    NeisTransientError,
)
from collector.retry import RetryPolicy
from collector.tasks import CollectSchoolTask
from tests.storage.factories import MONDAY, SUNDAY, make_school

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget")]


@pytest.fixture
def run():
    """A running run of three middle schools, nothing sent yet."""
    for code in ("7010001", "7010002", "7010003"):
        make_school(code, "B10", "중학교")
    return pipeline.create_run("middle", MONDAY, SUNDAY, offices=["B10"], refresh_registry=False)


class Sent(list):
    """A sender that keeps (unit id, expires) instead of reaching a broker."""

    def __call__(self, unit_id, expires):
        self.append((unit_id, expires))

    @property
    def units(self):
        return sorted(unit_id for unit_id, _ in self)


def _unit(run) -> SchoolRun:
    return run.units.order_by("pk").first()


def _later(**delta):
    return clock.pinned(clock.now() + datetime.timedelta(**delta))


# --- claims ---------------------------------------------------------------------------------


def test_it_claims_a_pending_unit_once(run):
    unit, rival = _unit(run), SchoolRun.objects.get(pk=_unit(run).pk)
    assert unit.claim("task-1")
    assert not rival.claim("task-2")

    stored = SchoolRun.objects.get(pk=unit.pk)
    assert (stored.status, stored.task_id, stored.attempts) == ("running", "task-1", 1)
    assert stored.claim_token == unit.claim_token != ""
    assert stored.lease_expires_at > clock.now()


@pytest.mark.parametrize("status", [status for status, _ in UnitStatus.choices])
@pytest.mark.parametrize("lease", ["expired", "live", "none"])
@pytest.mark.parametrize("holder", ["", "task-1", "task-2"])
def test_take_claims_what_claim_claims_and_reads_the_unit_its_school_and_run(
    run, status, lease, holder
):
    """``SchoolRun.take`` (one plain statement) and ``claim`` (the ORM) agree on every state,
    lease and task id, write the same fields, and ``take`` reads the unit as the ORM does."""
    leases = {"expired": clock.now() - datetime.timedelta(seconds=1), "live": None, "none": None}
    leases["live"] = clock.now() + datetime.timedelta(minutes=1)
    for unit in run.units.all():
        SchoolRun.objects.filter(pk=unit.pk).update(
            status=status, lease_expires_at=leases[lease], task_id=holder, attempts=2
        )
    by_orm, by_take = run.units.order_by("pk")[:2]

    with clock.pinned(clock.now(), frozen=True):  # both claims at one moment
        claimed = by_orm.claim("task-1")
        taken, took = SchoolRun.take(by_take.pk, "task-1")

    assert took == claimed
    expected = SchoolRun.objects.select_related("school", "run").get(pk=by_take.pk)
    fields = [f.attname for f in SchoolRun._meta.concrete_fields if f.attname != "claim_token"]
    assert [getattr(taken, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert taken.claim_token == expected.claim_token
    assert taken.school.__dict__.keys() >= {"code", "level", "office_id"}
    # The run's office and school lists are left unread (an attempt never needs them, and a
    # run of picked schools holds thousands of codes), and read when asked for.
    if took:  # (else take read it with the ORM, which reads every field)
        assert taken.run.get_deferred_fields() == {"offices", "school_codes"}
    assert taken.run.offices == ["B10"]
    for model, got, want in (
        ("school", taken.school, expected.school),
        ("run", taken.run, expected.run),
    ):
        names = [f.attname for f in type(want)._meta.concrete_fields]
        assert [getattr(got, n) for n in names] == [getattr(want, n) for n in names], model
    orm = SchoolRun.objects.get(pk=by_orm.pk)
    if claimed:
        assert (taken.status, taken.attempts, taken.task_id) == (orm.status, 3, "task-1")
        assert taken.started_at == orm.started_at and taken.lease_expires_at == orm.lease_expires_at
        assert taken.defer_until is None
    else:
        assert (taken.status, taken.attempts) == (status, 2)


def test_take_says_an_unknown_unit_does_not_exist(run):
    with pytest.raises(SchoolRun.DoesNotExist):
        SchoolRun.take(10**9, "task-1")


def test_finish_adds_the_requests_of_the_attempt_and_sets_the_rest(run):
    unit = _unit(run)
    SchoolRun.objects.filter(pk=unit.pk).update(requests=3, rows_fetched=99)
    assert unit.claim("task-1")
    with clock.pinned(clock.now(), frozen=True):
        now = clock.now()
        assert unit.finish(UnitStatus.DONE, requests=2, rows_fetched=7, pages=1)
    stored = SchoolRun.objects.get(pk=unit.pk)
    assert (stored.status, stored.requests, stored.rows_fetched, stored.pages) == ("done", 5, 7, 1)
    assert stored.lease_expires_at is None and stored.finished_at == now


def test_it_lets_a_redelivered_message_reclaim_and_supersedes_the_first_attempt(run):
    first, redelivered = _unit(run), SchoolRun.objects.get(pk=_unit(run).pk)
    assert first.claim("task-1")
    assert redelivered.claim("task-1")  # the same message, back after its worker died
    assert redelivered.claim_token != first.claim_token

    with transaction.atomic():
        assert not first.lock_claim()  # the first attempt must discard its work
    assert not first.finish(UnitStatus.DONE, rows_fetched=10)
    assert not first.fail(NeisPermanentError("ERROR-290", "bad key"))
    assert not first.release(NeisTransientError("TIMEOUT", "slow"))
    with transaction.atomic():
        assert redelivered.lock_claim()
        assert redelivered.finish(UnitStatus.DONE, rows_fetched=12)

    stored = SchoolRun.objects.get(pk=first.pk)
    assert (stored.status, stored.rows_fetched, stored.attempts) == ("done", 12, 2)
    assert stored.last_error_code == ""


def test_it_lets_another_attempt_take_a_unit_whose_lease_expired(run, settings):
    holder, other = _unit(run), SchoolRun.objects.get(pk=_unit(run).pk)
    assert holder.claim("task-1")
    assert not other.claim("task-2")
    with _later(seconds=settings.CELERY_TASK_TIME_LIMIT + 61):
        assert other.claim("task-2")
    assert not holder.finish(UnitStatus.NO_DATA)
    assert SchoolRun.objects.get(pk=holder.pk).task_id == "task-2"


def test_it_defers_and_releases_only_under_the_claim(run):
    unit = _unit(run)
    assert unit.claim()
    until = clock.now() + datetime.timedelta(hours=3)
    assert unit.defer(until, NeisQuotaError("ERROR-337", "quota", until))
    stored = SchoolRun.objects.get(pk=unit.pk)
    assert (stored.status, stored.defer_until, stored.last_error_code) == (
        "deferred",
        until,
        "ERROR-337",
    )
    assert stored.claim_token == "" and stored.lease_expires_at is None
    assert not unit.defer(until, NeisQuotaError("ERROR-337", "again", until))

    assert unit.claim()  # deferred units are claimable
    assert unit.release(NeisTransientError("ERROR-500", "server"))
    stored = SchoolRun.objects.get(pk=unit.pk)
    assert (stored.status, stored.retries, stored.last_error_code) == ("pending", 1, "ERROR-500")


# --- the run --------------------------------------------------------------------------------


def test_it_closes_a_run_exactly_once_with_its_counts(run):
    units = list(run.units.order_by("pk"))
    for unit, status in zip(units, ["done", "no_data", "failed"], strict=True):
        unit.claim()
        if status == "failed":
            unit.fail(NeisPermanentError("ERROR-290", "bad key"))
        else:
            with transaction.atomic():
                unit.lock_claim()
                unit.finish(status, rows_fetched=5 if status == "done" else 0)
    closers = [CollectionRun.objects.get(pk=run.pk).close_if_complete() for _ in range(3)]
    assert closers == [True, False, False]
    run.refresh_from_db()
    assert run.status == RunStatus.PARTIAL
    assert (run.units_done, run.units_no_data, run.units_failed, run.rows_fetched) == (1, 1, 1, 5)


def test_it_keeps_a_run_open_while_a_unit_is_open(run):
    run.start()
    first = _unit(run)
    first.claim()
    first.fail(NeisPermanentError("ERROR-290", "bad key"))
    assert not run.close_if_complete()
    assert CollectionRun.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_it_cancels_waiting_units_and_leaves_a_running_one_to_finish(run):
    running = _unit(run)
    running.claim()
    assert run.cancel() == 2
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    statuses = dict(run.units.values_list("pk", "status"))
    assert statuses.pop(running.pk) == "running"
    assert set(statuses.values()) == {"cancelled"}
    assert run.reopen_failed() == []  # a cancelled run stays cancelled


def test_it_reopens_failed_units_and_the_run(run):
    sent = Sent()
    for unit in run.units.all():
        unit.claim()
        unit.fail(NeisPermanentError("ERROR-290", "bad key"))
    run.close_if_complete()
    assert pipeline.retry_failed(run, send=sent) == 3
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.finished_at is None
    assert sent.units == sorted(run.units.values_list("pk", flat=True))
    assert set(run.units.values_list("status", "retries")) == {("pending", 0)}


# --- the watchdog and expiry ----------------------------------------------------------------


def test_it_sends_each_unit_with_the_expiry_from_settings(run, settings):
    settings.NEIS_TASK_EXPIRES_HOURS = 3
    sent = Sent()
    assert pipeline.dispatch(run, send=sent) == 3
    assert {expires for _, expires in sent} == {3 * 3600}
    assert run.units.filter(queued_at__isnull=True).count() == 0
    assert CollectionRun.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_it_resends_a_message_that_expired_unconsumed_but_not_before(run, settings):
    """A collect message expires after NEIS_TASK_EXPIRES_HOURS; the watchdog re-sends it."""
    settings.NEIS_TASK_EXPIRES_HOURS = 2
    pipeline.dispatch(run, send=Sent())
    early, waiting = Sent(), (lambda: 3)  # the messages are still in the queue
    with _later(hours=1):
        assert pipeline.watchdog(send=early, waiting=waiting) == {"requeued": 0, "closed": 0}
    late = Sent()
    with _later(hours=2, minutes=1):
        assert pipeline.watchdog(send=late, waiting=waiting)["requeued"] == 3
    assert early == [] and late.units == sorted(run.units.values_list("pk", flat=True))


def test_it_sends_units_that_never_had_a_message(run):
    run.start()  # created and started, but the process died before sending
    sent = Sent()
    assert pipeline.requeue_stuck(send=sent) == 3


def test_it_takes_back_a_unit_whose_worker_died_once_the_lease_expires(run, settings):
    pipeline.dispatch(run, send=Sent())
    dead = _unit(run)
    dead.claim("task-dead")
    sent, waiting = Sent(), (lambda: 2)  # the other two messages are still in the queue
    assert pipeline.requeue_stuck(send=sent, waiting=waiting) == 0
    with _later(seconds=settings.CELERY_TASK_TIME_LIMIT + 61):
        # Queued more than the expiry ago counts only for pending units; this one is running.
        settings.NEIS_TASK_EXPIRES_HOURS = 24
        assert pipeline.requeue_stuck(send=sent, waiting=waiting) == 1
    assert sent.units == [dead.pk]
    stored = SchoolRun.objects.get(pk=dead.pk)
    assert (stored.status, stored.claim_token) == ("pending", "")
    assert not dead.finish(UnitStatus.DONE)  # the dead attempt's late result is refused


def test_it_closes_a_running_run_with_nothing_open(run):
    run.start()
    run.units.all().cancel(clock.now())
    assert pipeline.watchdog(send=Sent()) == {"requeued": 0, "closed": 1}
    assert CollectionRun.objects.get(pk=run.pk).status == RunStatus.DONE


def test_it_resumes_deferred_units_after_their_reset(run):
    until = clock.now() + datetime.timedelta(hours=5)
    run.start()
    run.units.all().defer_pending(until)
    sent = Sent()
    assert pipeline.resume_deferred(now=until - datetime.timedelta(minutes=1), send=sent) == 0
    assert pipeline.resume_deferred(now=until, send=sent) == 3
    assert set(run.units.values_list("status", flat=True)) == {"pending"}


def _wait_for_neis(run, budget) -> None:
    """Open the key's breaker and defer every unit of ``run`` behind it, as a NEIS outage
    would (each unit fails once; the breaker opens on the third failure)."""
    run.start()
    for unit in run.units.all():
        unit.claim()
        probe_at = budget.record_failure()
        if probe_at:
            unit.defer(pipeline._moment(probe_at), pipeline._neis_down("down", probe_at))
        else:
            unit.release(NeisTransientError("ERROR-500", "server"))
    run.units.filter(status="pending").update(status="deferred", last_error_code="NEIS-DOWN")


def test_it_sends_one_probe_a_minute_while_neis_is_down_then_everything(run, settings):
    from collector.limiter import budget_from_settings

    settings.NEIS_BREAKER_FAILURES, settings.NEIS_BREAKER_PROBE_SECONDS = 3, 60
    budget = budget_from_settings()
    _wait_for_neis(run, budget)
    assert set(run.units.values_list("status", "last_error_code")) == {("deferred", "NEIS-DOWN")}

    sent = Sent()
    assert pipeline.resume_deferred(send=sent) == 0  # the probe is not due yet
    with _later(seconds=61):
        assert pipeline.resume_deferred(send=sent) == 1  # one school goes as the probe
        assert pipeline.resume_deferred(send=sent) == 1  # the probe has not been taken yet
        assert budget.allow() == 0  # the probe's task takes it...
        assert pipeline.resume_deferred(send=sent) == 0  # ...and nothing else goes meanwhile
        assert budget.record_success()  # NEIS answered the probe
        assert pipeline.resume_deferred(send=sent) == 1  # the last one still deferred
    assert set(run.units.values_list("status", flat=True)) == {"pending"}


# --- the task's failure hook ----------------------------------------------------------------


def _on_failure(unit, exc):
    CollectSchoolTask().on_failure(exc, "task-id", [unit.pk], {}, None)


def test_it_fails_the_unit_with_the_neis_code_when_celery_gives_up(run):
    unit = _unit(run)
    # What the worker hands on_failure: the exception after Celery made it pickleable.
    error = get_pickleable_exception(NeisTransientError("ERROR-500", "server error"))
    assert type(error) is NeisTransientError
    _on_failure(unit, error)
    stored = SchoolRun.objects.get(pk=unit.pk)
    assert (stored.status, stored.last_error_code) == ("failed", "ERROR-500")
    assert stored.last_error == "ERROR-500: server error"


def test_it_records_an_unexpected_exception_as_internal(run):
    unit = _unit(run)
    _on_failure(unit, KeyError("boom"))
    stored = SchoolRun.objects.get(pk=unit.pk)
    assert (stored.status, stored.last_error_code) == ("failed", "INTERNAL")
    assert stored.last_error == "INTERNAL: KeyError: 'boom'"


@pytest.mark.django_db(transaction=True)
def test_lock_claim_holds_the_unit_row_until_the_transaction_ends(run):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    unit = _unit(run)
    unit.claim()
    db = connection.settings_dict
    other = psycopg.connect(
        dbname=db["NAME"], host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"]
    )
    peek = f"SELECT id FROM {SchoolRun._meta.db_table} WHERE id = %s FOR UPDATE NOWAIT"
    try:
        with transaction.atomic():
            assert unit.lock_claim()
            with pytest.raises(psycopg.errors.LockNotAvailable), other.transaction():
                other.execute(peek, [unit.pk])
        with other.transaction():
            assert other.execute(peek, [unit.pk]).fetchone() == (unit.pk,)
    finally:
        other.close()
    rival = SchoolRun.objects.get(pk=unit.pk)
    rival.claim_token = "another attempt's"
    with transaction.atomic():
        assert not rival.lock_claim()


def test_it_leaves_a_unit_whose_worker_was_lost_to_the_redelivery(run):
    unit = _unit(run)
    unit.claim("task-id")
    _on_failure(unit, WorkerLostError("killed"))
    assert SchoolRun.objects.get(pk=unit.pk).status == UnitStatus.RUNNING


def test_it_does_not_fail_a_unit_that_finished(run):
    unit = _unit(run)
    unit.claim()
    with transaction.atomic():
        unit.lock_claim()
        unit.finish(UnitStatus.NO_DATA)
    _on_failure(unit, NeisTransientError("ERROR-500", "late"))
    assert SchoolRun.objects.get(pk=unit.pk).status == UnitStatus.NO_DATA


@pytest.mark.parametrize(
    "error",
    [
        NeisError("X", "y"),
        NeisTransientError("ERROR-500", "서버 오류"),
        NeisPermanentError("ERROR-290", "bad key"),
        NeisQuotaError("ERROR-337", "spent", datetime.datetime(2026, 11, 22, tzinfo=clock.SEOUL)),
    ],
)
def test_it_pickles_every_neis_error_intact(error):
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.message, str(copy)) == (
        type(error),
        error.code,
        error.message,
        str(error),
    )
    assert getattr(copy, "resets_at", None) == getattr(error, "resets_at", None)
    assert type(get_pickleable_exception(error)) is type(error)


# --- the retry policy -----------------------------------------------------------------------


def test_it_reads_the_retry_policy_from_settings(settings):
    settings.NEIS_MAX_RETRIES, settings.NEIS_RETRY_BACKOFF_BASE = 9, 0.5
    settings.NEIS_RETRY_BACKOFF_MAX, settings.NEIS_RETRY_WINDOW_SECONDS = 7, 0
    policy = RetryPolicy.from_settings()
    assert policy == RetryPolicy(max_retries=9, backoff_base=0.5, backoff_max=7)
    assert [policy.ceiling(n) for n in range(6)] == [0.5, 1, 2, 4, 7, 7]
    assert all(0 <= policy.countdown(n) <= policy.ceiling(n) for n in range(40))
    assert not policy.exhausted(8) and policy.exhausted(9)


def test_it_retries_for_a_time_window_not_a_count(settings):
    settings.NEIS_RETRY_WINDOW_SECONDS = 3 * 3600
    policy = RetryPolicy.from_settings()
    assert policy.window == 3 * 3600
    assert not policy.exhausted(500, failing_for=3 * 3600 - 1)  # many tries, still young
    assert not policy.exhausted(2, failing_for=4 * 3600)  # old, but fewer than the minimum
    assert policy.exhausted(6, failing_for=3 * 3600)
    assert RetryPolicy.for_infrastructure().exhausted(30)  # no window: the count alone


def test_it_fails_a_unit_only_once_its_failures_outlast_the_window(run, settings):
    settings.NEIS_MAX_RETRIES, settings.NEIS_RETRY_WINDOW_SECONDS = 0, 600
    unit = _unit(run)
    unit.claim()
    assert unit.release(NeisTransientError("ERROR-500", "server"))
    first = SchoolRun.objects.get(pk=unit.pk).retrying_since
    assert first is not None and first <= clock.now()
    with _later(minutes=9):
        again = SchoolRun.objects.get(pk=unit.pk)
        assert again.claim() and again.release(NeisTransientError("ERROR-500", "server"))
        stored = SchoolRun.objects.get(pk=unit.pk)
        assert stored.retrying_since == first  # the first failure in a row is kept
        assert not RetryPolicy.from_settings().exhausted(
            stored.retries, stored.failing_for(clock.now())
        )
    with _later(minutes=11):
        assert RetryPolicy.from_settings().exhausted(
            stored.retries, stored.failing_for(clock.now())
        )
    SchoolRun.objects.filter(pk=unit.pk).update(status=UnitStatus.DEFERRED)
    SchoolRun.objects.filter(pk=unit.pk).resume()
    assert SchoolRun.objects.get(pk=unit.pk).retrying_since is None  # waiting is not retrying


# --- leases and lost messages ----------------------------------------------------------------


def test_it_keeps_a_claim_alive_while_its_attempt_renews_the_lease(run, settings):
    working, rival = _unit(run), SchoolRun.objects.get(pk=_unit(run).pk)
    assert working.claim("task-1")
    lease = datetime.timedelta(seconds=settings.NEIS_LEASE_SECONDS)
    with _later(seconds=lease.total_seconds() * 0.9):
        assert working.renew_lease()
    with _later(seconds=lease.total_seconds() * 1.5):
        assert not rival.claim("task-2")  # renewed: still alive
    with _later(seconds=lease.total_seconds() * 2):
        assert rival.claim("task-2")  # no renewal since: the attempt stopped
    assert not working.renew_lease()  # superseded attempts cannot revive their claim


def test_it_resends_a_pending_unit_whose_message_was_lost_within_a_minute(run):
    pipeline.dispatch(run, send=Sent())
    with _later(seconds=30):
        assert pipeline.requeue_stuck(send=Sent(), waiting=lambda: 0) == 0
    with _later(seconds=61):
        # Messages still waiting in the broker: these units are only slow, not lost.
        assert pipeline.requeue_stuck(send=Sent(), waiting=lambda: 3) == 0
        # The broker is empty (it restarted without persistence): their messages are gone.
        lost = Sent()
        assert pipeline.requeue_stuck(send=lost, waiting=lambda: 0) == 3
    assert lost.units == sorted(run.units.values_list("pk", flat=True))


def test_it_waits_for_a_retry_countdown_before_taking_the_message_for_lost(run):
    pipeline.dispatch(run, send=Sent())
    unit = _unit(run)
    unit.claim("task-1")
    unit.release(NeisTransientError("ERROR-500", "server"))
    pipeline.retry_due(unit.pk, 240)  # the retry message waits out a four-minute countdown
    with _later(minutes=2):
        sent = Sent()
        pipeline.requeue_stuck(send=sent, waiting=lambda: 0)
        assert unit.pk not in sent.units
    with _later(minutes=5, seconds=1):
        sent = Sent()
        pipeline.requeue_stuck(send=sent, waiting=lambda: 0)
        assert unit.pk in sent.units


def test_it_runs_the_watchdog_every_minute():
    from schedules.definitions import SCHEDULES

    watchdog = next(s for s in SCHEDULES if s.task == "collector.watchdog")
    assert (watchdog.schedule.every, watchdog.schedule.period) == (1, "minutes")
