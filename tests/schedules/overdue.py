"""A schedule that is overdue when beat starts, for the single-beat tests."""

from __future__ import annotations

import datetime
import json

from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

NAME = "ping-overdue"


def overdue_ping() -> PeriodicTask:
    """An hourly ``proj.ping`` last run two hours ago: due at once."""
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(
        name=NAME,
        task="proj.ping",
        kwargs=json.dumps({"payload": "overdue"}),
        interval=every_hour,
        last_run_at=timezone.now() - datetime.timedelta(hours=2),
        queue="default",
    )
