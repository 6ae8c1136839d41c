"""Celery tasks: thin, bound, explicitly named wrappers over collector.pipeline.

Names are stable strings because django-celery-beat stores them in the database.
"""

from __future__ import annotations

import datetime
import math

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.signals import task_prerun
from celery.utils.log import get_task_logger
from django.conf import settings
from django.db import IntegrityError, connections

from collector import clock, pipeline, planning
from collector.ledger import CollectionRun, Trigger
from collector.neis.errors import NeisError
from collector.retry import RetryPolicy, is_infrastructure_error

log = get_task_logger(__name__)

# The state a refused start (a duplicate firing of a schedule) is stored with, so that the
# task results page says "REFUSED" and names the run that already exists, not "SUCCESS".
REFUSED = "REFUSED"


def _date(value: str | datetime.date) -> datetime.date:
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)


@task_prerun.connect
def drop_broken_connections(**kwargs) -> None:
    """Drop a database connection that died since the last task (a server restart), as Django
    does before each request: Celery keeps connections across tasks (CELERY_DB_REUSE_MAX),
    and a dead one would fail every task of this worker process. A connection inside a
    transaction (a task run eagerly in someone's transaction) is left alone."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


class CollectSchoolTask(Task):
    """Records the unit as failed once Celery gives up on it (retries spent, or a bug)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, WorkerLostError):
            return  # the message goes back to the queue; the unit is not lost
        unit_id = args[0] if args else kwargs.get("unit_id")
        if is_infrastructure_error(exc):
            # Our own database, broker or Redis failed the task (its retries spent, or before
            # its body ran): nothing is wrong with the school. Its lease runs out, or its
            # message is found lost, and the watchdog sends it again.
            log.warning("unit %s: %s; left to the watchdog", unit_id, exc)
            return
        if not isinstance(exc, NeisError):
            exc = pipeline.internal_error(exc)
        try:
            pipeline.fail_unit(unit_id, exc)
        except Exception as error:
            if not is_infrastructure_error(error):
                raise
            # The database is away: the unit stays claimed, its lease runs out, and the
            # watchdog sends it again. Nothing is lost by not recording the failure now.
            log.warning("unit %s: failure not recorded (%s); left to the watchdog", unit_id, error)


@shared_task(
    bind=True,
    base=CollectSchoolTask,
    name=pipeline.COLLECT_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # the pipeline's RetryPolicy decides, on the ledger's record
    # The ledger records a unit's start (``started_at``, the claiming task); a STARTED result
    # would be a second row write per school, 4% of a worker's CPU on an unchanged re-run.
    track_started=False,
)
def collect_school(self, unit_id: int, outage: int = 0) -> dict:
    """Collect one school of one run (ledger unit ``unit_id``).

    Transient NEIS errors are retried as the pipeline says (``RetryLater``: the settings'
    ``RetryPolicy``, read at each retry, over the unit's failures in the ledger); once its
    window is spent the pipeline records the failure itself. ``outage`` counts the retries in
    a row for our own services being away (``retry.is_infrastructure_error``).
    """
    try:
        outcome = pipeline.collect_unit(unit_id, task_id=self.request.id or "")
    except pipeline.RetryLater as later:
        raise self.retry(
            args=[unit_id], kwargs={}, exc=later.error, countdown=broker_countdown(later.countdown)
        ) from None
    except Exception as exc:
        if not is_infrastructure_error(exc):
            raise
        # Our own database, broker or Redis is away: retry on a longer leash, on a fresh
        # connection (the one that failed may be dead).
        drop_broken_connections()
        log.warning("unit %s: %s: %s; retrying", unit_id, type(exc).__name__, exc)
        _retry_outage(self, unit_id, outage, exc)
    if outcome.reopened:
        # NEIS is back: the schools waiting for it go now, not at beat's next resume.
        try:
            pipeline.resume_deferred()
        except Exception as exc:
            log.warning("resuming after an outage is left to beat: %s", exc)
    return outcome.as_dict()


def broker_countdown(seconds: float) -> float:
    """``seconds`` as a retry's countdown the broker can keep. With quorum queues on RabbitMQ
    a countdown waits in Celery's native delayed delivery, which delays by whole seconds and
    refuses a countdown that rounds down to none ("countdown must be a positive number": the
    retry is never sent and its message is dropped), so there it is rounded up."""
    if seconds > 0 and settings.BROKER_KIND == "amqp" and settings.BROKER_QUORUM_QUEUES:
        return float(math.ceil(seconds))
    return seconds


def _retry_outage(task: Task, unit_id: int, outage: int, exc: Exception):
    """Retry ``task`` after the infrastructure policy's countdown, or re-raise ``exc`` once
    its retries are spent."""
    policy = RetryPolicy.for_infrastructure()
    if policy.exhausted(outage):
        raise exc
    countdown = broker_countdown(policy.countdown(outage))
    pipeline.retry_due(unit_id, countdown)
    raise task.retry(
        args=[unit_id], kwargs={"outage": outage + 1}, exc=exc, countdown=countdown
    ) from None


def _refused(task: Task, result: dict) -> None:
    """Store a refused start as REFUSED (with the existing run's id) and stop the task."""
    log.warning("refused: %s", result["reason"])
    if task.request.id:
        task.update_state(state=REFUSED, meta=result)
    raise Ignore()


def _start(task: Task, level, date_from, date_to, **options) -> dict:
    trigger_key = options.get("trigger_key")
    try:
        run = pipeline.create_run(level, _date(date_from), _date(date_to), **options)
    except IntegrityError:
        existing = CollectionRun.objects.filter(trigger_key=trigger_key).first()
        if not trigger_key or existing is None:
            raise  # not a duplicate firing: a real integrity problem
        _refused(
            task,
            {
                "refused": True,
                "run": existing.pk,
                "reason": f"run {existing.pk} was already started for {trigger_key}",
            },
        )
    sent = pipeline.dispatch(run)
    return {"run": run.pk, "units": run.units_total, "sent": sent}


@shared_task(bind=True, name="collector.start_run")
def start_run(
    self,
    level: str,
    date_from: str,
    date_to: str,
    offices: list[str] | None = None,
    school_codes: list[str] | None = None,
    trigger: str = Trigger.COMMAND,
    trigger_key: str | None = None,
    requested_by: str = "",
) -> dict:
    """Create a run (refreshing a stale school registry) and fan out one task per school."""
    return _start(
        self,
        level,
        date_from,
        date_to,
        offices=offices or (),
        school_codes=school_codes or (),
        trigger=trigger,
        trigger_key=trigger_key,
        requested_by=requested_by,
    )


@shared_task(bind=True, name="collector.start_scheduled_run")
def start_scheduled_run(
    self,
    level: str,
    weeks_before: int = 1,
    weeks_after: int = 1,
    offices: list[str] | None = None,
) -> dict:
    """The weekly schedule's entry point: a window of school weeks around today (Seoul).

    The trigger key names the level, offices and window, so a second beat firing the same
    schedule is refused instead of starting the same run twice.
    """
    date_from, date_to = clock.school_weeks_window(
        weeks_before=weeks_before, weeks_after=weeks_after
    )
    key = pipeline.schedule_key(level, offices or (), date_from, date_to)
    return _start(
        self,
        level,
        date_from,
        date_to,
        offices=offices or (),
        trigger=Trigger.SCHEDULE,
        trigger_key=key,
    )


@shared_task(bind=True, name="collector.start_refresh")
def start_refresh(
    self,
    level: str = "all",
    weeks_before: int = 0,
    weeks_after: int = 1,
    max_requests: int | None = None,
) -> dict:
    """The refresh schedule's entry point: the current and next school week (Seoul), as far
    as what the day's quota leaves goes (``planning.start_refresh``). A second firing the same
    day is refused. ``max_requests`` caps it below what the day leaves (room for ad hoc
    collections)."""
    result = planning.start_refresh(
        level, weeks_before=weeks_before, weeks_after=weeks_after, max_requests=max_requests
    )
    if result.get("refused"):
        _refused(self, result)
    return result


@shared_task(name="collector.resume_deferred")
def resume_deferred() -> dict:
    """Put units deferred by a spent quota back in the queue once the quota has reset."""
    return {"resumed": pipeline.resume_deferred()}


@shared_task(name="collector.watchdog")
def watchdog() -> dict:
    """Find runs that stopped moving: re-send lost units and close runs with nothing open."""
    return pipeline.watchdog()


@shared_task(name="collector.create_partitions")
def create_partitions(months_ahead: int = 3) -> dict:
    """Create the coming months' lesson and change-history partitions ahead of the merges."""
    from django.db import connection

    from collector.storage import create_partitions_ahead

    if connection.vendor != "postgresql":
        return {"created": []}
    return {"created": create_partitions_ahead(months_ahead)}


@shared_task(name="collector.prune_history")
def prune_history() -> dict:
    """Delete expired ledger units and task results (collector/retention.py), in batches."""
    from collector import retention

    pruned = retention.prune(retention.Policy.from_settings(), apply=True)
    return {"units": pruned.units, "runs": len(pruned.runs), "results": pruned.results}


@shared_task(name="collector.refresh_calendars")
def refresh_calendars(
    levels: list[str] | None = None, offices: list[str] | None = None, max_requests: int = 2000
) -> dict:
    """Ask classInfo and SchoolSchedule where due, inside the shared request budget."""
    return pipeline.refresh_calendars(levels or (), offices or (), max_requests=max_requests)


@shared_task(name="collector.sync_schools")
def sync_schools(offices: list[str] | None = None) -> dict:
    """Refresh the school registry from ``schoolInfo``."""
    from collector.registry import sync_school_registry

    return sync_school_registry(pipeline.registry_client(), offices=offices or None).as_dict()
