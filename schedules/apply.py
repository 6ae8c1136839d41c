"""Apply the code-defined schedules to django-celery-beat's tables, idempotently."""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import (
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)

from schedules.definitions import SCHEDULES, Crontab, ScheduleDef


def _schedule_fields(definition: ScheduleDef) -> dict:
    spec = definition.schedule
    if isinstance(spec, Crontab):
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=spec.minute,
            hour=spec.hour,
            day_of_week=spec.day_of_week,
            day_of_month=spec.day_of_month,
            month_of_year=spec.month_of_year,
            timezone=settings.TIME_ZONE,
        )
        return {"crontab": crontab, "interval": None}
    interval, _ = IntervalSchedule.objects.get_or_create(every=spec.every, period=spec.period)
    return {"interval": interval, "crontab": None}


def _wanted(definition: ScheduleDef) -> dict:
    return {
        "task": definition.task,
        "kwargs": json.dumps(definition.kwargs, sort_keys=True),
        "queue": definition.queue,
        "expire_seconds": definition.expire_seconds,
        "description": definition.description,
        "enabled": True,
        **_schedule_fields(definition),
    }


def _differences(task: PeriodicTask, wanted: dict) -> list[str]:
    differ = []
    for field, value in wanted.items():
        if field == "description":
            continue  # beat rewrites its own entries without one; not worth a drift report
        current = getattr(task, field)
        if field == "kwargs":
            current = json.dumps(json.loads(current or "{}"), sort_keys=True)
        if current != value:
            differ.append(field)
    return differ


def apply_schedules(
    *, reset: bool = False, definitions: Iterable[ScheduleDef] = SCHEDULES
) -> dict[str, list[str]]:
    """Create missing schedules; with ``reset`` also put edited ones back to the code's values.

    Returns names under "created", "updated", "unchanged" and "kept" (differs from the code,
    left as the operator set it). Running it twice in a row changes nothing.
    """
    report: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "kept": []}
    with transaction.atomic():
        for definition in definitions:
            wanted = _wanted(definition)
            task = PeriodicTask.objects.filter(name=definition.name).first()
            if task is None:
                PeriodicTask.objects.create(name=definition.name, **wanted)
                report["created"].append(definition.name)
                continue
            differ = _differences(task, wanted)
            if not differ:
                report["unchanged"].append(definition.name)
            elif reset:
                PeriodicTask.objects.filter(pk=task.pk).update(**wanted)
                report["updated"].append(definition.name)
            else:
                report["kept"].append(f"{definition.name} ({', '.join(differ)} edited)")
        if report["created"] or report["updated"]:
            # .update() bypasses the signal that tells a running beat to reload.
            PeriodicTasks.update_changed()
    return report
