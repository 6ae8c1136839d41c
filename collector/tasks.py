"""Celery tasks: thin, bound, explicitly named wrappers over collector.pipeline.

Names are stable strings because django-celery-beat stores them in the database.
"""

from __future__ import annotations

import datetime

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.utils.log import get_task_logger
from django.db import IntegrityError

from collector import pipeline
from collector.ledger import CollectionRun, Trigger
from collector.neis.client import NeisClient
from collector.neis.errors import NeisError, NeisTransientError
from collector.windows import school_weeks_window

log = get_task_logger(__name__)


def _date(value: str | datetime.date) -> datetime.date:
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)


class CollectSchoolTask(Task):
    """Records the unit as failed once Celery gives up on it (retries spent, or a bug)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if isinstance(exc, WorkerLostError):
            return  # the message goes back to the queue; the unit is not lost
        unit_id = args[0] if args else kwargs.get("unit_id")
        if not isinstance(exc, NeisError):
            exc = NeisError("INTERNAL", f"{type(exc).__name__}: {exc}")
        pipeline.fail_unit(unit_id, exc)


@shared_task(
    bind=True,
    base=CollectSchoolTask,
    name="collector.collect_school",
    autoretry_for=(NeisTransientError,),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=6,
    acks_late=True,
    reject_on_worker_lost=True,
)
def collect_school(self, unit_id: int) -> dict:
    """Collect one school of one run (ledger unit ``unit_id``)."""
    return pipeline.collect_unit(unit_id, task_id=self.request.id or "").as_dict()


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
    try:
        run = pipeline.create_run(
            level,
            _date(date_from),
            _date(date_to),
            offices=offices or (),
            school_codes=school_codes or (),
            trigger=trigger,
            trigger_key=trigger_key,
            requested_by=requested_by,
        )
    except IntegrityError:
        existing = CollectionRun.objects.filter(trigger_key=trigger_key).first()
        if not trigger_key or existing is None:
            raise  # not a duplicate firing: a real integrity problem
        log.warning(
            "run for %s already started (run %s); refused", trigger_key, existing and existing.pk
        )
        return {"run": existing and existing.pk, "refused": True}
    sent = pipeline.dispatch(run)
    return {"run": run.pk, "units": run.units_total, "sent": sent}


@shared_task(bind=True, name="collector.start_scheduled_run")
def start_scheduled_run(
    self,
    level: str,
    weeks_before: int = 1,
    weeks_after: int = 1,
    offices: list[str] | None = None,
) -> dict:
    """The weekly schedule's entry point: a window of school weeks around today (Asia/Seoul).

    The trigger key names the level, offices and window, so a second beat firing the same
    schedule is refused instead of starting the same run twice.
    """
    date_from, date_to = school_weeks_window(weeks_before=weeks_before, weeks_after=weeks_after)
    scope = ",".join(sorted(offices or [])) or "all"
    key = f"schedule:{level}:{scope}:{date_from.isoformat()}:{date_to.isoformat()}"
    return start_run.run(
        level,
        date_from.isoformat(),
        date_to.isoformat(),
        offices=offices,
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
    requeued = pipeline.requeue_stuck()
    closed = sum(
        pipeline.finish_run_if_complete(pk)
        for pk in CollectionRun.objects.filter(status="running").values_list("pk", flat=True)
    )
    return {"requeued": requeued, "closed": closed}


@shared_task(name="collector.sync_schools")
def sync_schools(offices: list[str] | None = None) -> dict:
    """Refresh the school registry from ``schoolInfo``."""
    from collector.storage import sync_school_registry

    return sync_school_registry(NeisClient.from_settings(), offices=offices or None).as_dict()
