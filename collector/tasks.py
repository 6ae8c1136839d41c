"""Celery tasks: thin, bound, explicitly named wrappers over collector.pipeline.

Names are stable strings because django-celery-beat stores them in the database.
"""

from __future__ import annotations

import datetime

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger
from django.db import IntegrityError

from collector import clock, pipeline
from collector.ledger import CollectionRun, Trigger
from collector.neis.client import NeisClient
from collector.neis.errors import NeisError, NeisTransientError
from collector.retry import RetryPolicy

log = get_task_logger(__name__)

# The state a refused start (a duplicate firing of a schedule) is stored with, so that the
# task results page says "REFUSED" and names the run that already exists, not "SUCCESS".
REFUSED = "REFUSED"


def _date(value: str | datetime.date) -> datetime.date:
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)


class CollectSchoolTask(Task):
    """Records the unit as failed once Celery gives up on it (retries spent, or a bug)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, WorkerLostError):
            return  # the message goes back to the queue; the unit is not lost
        unit_id = args[0] if args else kwargs.get("unit_id")
        if not isinstance(exc, NeisError):
            exc = pipeline.internal_error(exc)
        pipeline.fail_unit(unit_id, exc)


@shared_task(
    bind=True,
    base=CollectSchoolTask,
    name=pipeline.COLLECT_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
)
def collect_school(self, unit_id: int) -> dict:
    """Collect one school of one run (ledger unit ``unit_id``).

    Transient NEIS errors are retried by the settings' ``RetryPolicy``, read at each retry
    (not frozen into the task when it was defined); when it is exhausted the error itself
    reaches ``on_failure``, which records its code in the ledger.
    """
    try:
        return pipeline.collect_unit(unit_id, task_id=self.request.id or "").as_dict()
    except NeisTransientError as exc:
        policy = RetryPolicy.from_settings()
        retries = self.request.retries
        if policy.exhausted(retries):
            raise
        raise self.retry(
            exc=exc, countdown=policy.countdown(retries), max_retries=policy.max_retries
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
    scope = ",".join(sorted(offices or [])) or "all"
    key = f"schedule:{level}:{scope}:{date_from.isoformat()}:{date_to.isoformat()}"
    return _start(
        self,
        level,
        date_from,
        date_to,
        offices=offices or (),
        trigger=Trigger.SCHEDULE,
        trigger_key=key,
    )


@shared_task(name="collector.resume_deferred")
def resume_deferred() -> dict:
    """Put units deferred by a spent quota back in the queue once the quota has reset."""
    return {"resumed": pipeline.resume_deferred()}


@shared_task(name="collector.watchdog")
def watchdog() -> dict:
    """Find runs that stopped moving: re-send lost units and close runs with nothing open."""
    return pipeline.watchdog()


@shared_task(name="collector.sync_schools")
def sync_schools(offices: list[str] | None = None) -> dict:
    """Refresh the school registry from ``schoolInfo``."""
    from collector.registry import sync_school_registry

    return sync_school_registry(NeisClient.from_settings(), offices=offices or None).as_dict()
