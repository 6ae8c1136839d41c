"""How long the ledger's units and Celery's task results are kept, and pruning them.

The ledger grows by one unit per school per run (about 650,000 a school year) and the task
results by one or more a unit. Neither is needed for long, but some of it is needed by others,
so a unit goes only when nothing reads it any more:

- **Open runs keep every unit**, however old: the watchdog, the console and the run's closing
  count them.
- **A closed run keeps its units while its window is young**: a unit is pruned only when its
  run closed *and* its window (``date_to``) ended more than ``LEDGER_RETENTION_DAYS`` ago.
  Every run covering a school week younger than that is then kept whole, so the completeness
  page, the coverage grid (eight weeks back), ``check_freshness`` and the metrics (five weeks
  back), and ``backfill_timetables --reprocess none|failed`` see the same latest unit per
  school and week as before. For older weeks they no longer know which school was collected;
  a week whose pruned units were the latest goes to an older unit kept (an open run's, or one
  whose window ends later), if any (``LatestUnit.refill``).
- **The run itself stays** with the counts it closed with (runs are a few hundred rows a
  year): the run list, a run's page and the change history's "which run" keep working. Change
  history rows keep the unit's id as a plain number (no constraint), and are retired with the
  lesson partitions of their month (``manage.py lesson_partitions``), not here.
- **Window digests** (``WindowDigest``) never refer to the ledger, so pruning does not touch
  them.

Task results go after ``CELERY_RESULT_EXPIRES_DAYS`` (the setting ``celery.backend_cleanup``
reads too), except those of tasks still working for an open run's units.

Rows are deleted in batches of ids, each batch in its own short transaction, so no pruning
holds locks on the ledger for longer than one batch (milliseconds) while workers write to it.
"""

from __future__ import annotations

import dataclasses
import datetime

from django.conf import settings
from django.db import transaction
from django_celery_results.models import TaskResult

from collector import clock
from collector.ledger import CollectionRun, LatestUnit, SchoolRun

# Rows deleted per statement: small enough that a batch holds its row locks for milliseconds.
BATCH = 5000


@dataclasses.dataclass(frozen=True)
class Policy:
    """What a prune keeps: units of closed runs whose window ended on or after
    ``ledger_before``, and task results done on or after ``results_before``."""

    ledger_before: datetime.date
    results_before: datetime.datetime

    @classmethod
    def from_settings(
        cls, ledger_days: int | None = None, results_days: int | None = None
    ) -> Policy:
        ledger_days = settings.LEDGER_RETENTION_DAYS if ledger_days is None else ledger_days
        if results_days is None:
            results_days = settings.CELERY_RESULT_EXPIRES.days
        return cls(
            ledger_before=clock.today() - datetime.timedelta(days=ledger_days),
            results_before=clock.now() - datetime.timedelta(days=results_days),
        )


@dataclasses.dataclass(frozen=True)
class Pruned:
    """What a prune deleted (or, dry, would delete)."""

    units: int
    runs: list[int]  # ids of the runs whose units go
    results: int
    oldest_result: datetime.datetime | None
    batches: int = 0


def expired_units(policy: Policy):
    """Units of closed runs whose window ended before the policy's date."""
    runs = CollectionRun.objects.closed().filter(date_to__lt=policy.ledger_before)
    return SchoolRun.objects.filter(run__in=runs)


def expired_results(policy: Policy):
    """Task results done before the policy's time, less those of open runs' units."""
    working = SchoolRun.objects.filter(run__in=CollectionRun.objects.open()).exclude(task_id="")
    return TaskResult.objects.filter(date_done__lt=policy.results_before).exclude(
        task_id__in=working.values("task_id")
    )


def prune(policy: Policy, *, apply: bool = False, batch: int = BATCH) -> Pruned:
    """Delete (with ``apply``; else only count) the expired units and task results."""
    units = expired_units(policy)
    results = expired_results(policy)
    runs = sorted(set(units.values_list("run_id", flat=True).distinct()))
    found = Pruned(
        units=units.count(),
        runs=runs,
        results=results.count(),
        oldest_result=results.order_by("date_done").values_list("date_done", flat=True).first(),
    )
    if not apply:
        return found
    deleted_units, batches_units = _delete_in_batches(units, batch)
    deleted_results, batches_results = _delete_in_batches(results, batch)
    return dataclasses.replace(
        found,
        units=deleted_units,
        results=deleted_results,
        batches=batches_units + batches_results,
    )


def _delete_in_batches(queryset, size: int) -> tuple[int, int]:
    """Delete ``queryset`` ``size`` rows at a time, each batch its own transaction; returns
    (rows deleted, batches). Rows that stop matching meanwhile (a run reopened) are left."""
    deleted = batches = 0
    while True:
        with transaction.atomic():
            ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:size])
            if not ids:
                return deleted, batches
            batch = queryset.filter(pk__in=ids)
            units = (
                list(batch.values_list("school_id", "run_id"))
                if queryset.model is SchoolRun
                else []
            )
            # Re-checked in the DELETE itself, so a row that changed since the SELECT stays.
            # Counted by model: a unit's LatestUnit rows go with it, and are not units.
            _, by_model = batch.delete()
            # Their school-weeks go to an older unit kept (an open run's), if any.
            LatestUnit.refill(units)
        deleted += by_model.get(queryset.model._meta.label, 0)
        batches += 1
