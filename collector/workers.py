"""Which Celery workers are up and which queues they consume, as the workers themselves say.

A queue nobody consumes is the commonest reason a run stands still, and nothing in the ledger
shows it: units stay pending and look exactly like units about to be taken. So every worker
writes a heartbeat row (``WorkerHeartbeat``): once when it is ready, then every
``BEAT_SECONDS`` from a small thread, and it deletes the row when it shuts down. A row not
refreshed for ``STALE_AFTER`` belongs to a worker that died without saying so.

The row lives in the project's database, not in the broker or the budget's Redis: the console
reads it with one indexed query and no network round trip, and it works the same on the
embedded default (SQLite) and in tests, each of which has a database of its own.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading

from django.db import models

from collector import clock

log = logging.getLogger(__name__)

# How often a worker refreshes its row, and after how long without it the worker counts as gone.
BEAT_SECONDS = 10
STALE_AFTER = datetime.timedelta(seconds=45)
# The queues a run needs consumed (settings.CELERY_TASK_QUEUES): collection and the rest.
NEEDED_QUEUES = ("neis", "default")


class WorkerHeartbeatQuerySet(models.QuerySet):
    def alive(self, now: datetime.datetime | None = None):
        """Workers heard from within ``STALE_AFTER``."""
        return self.filter(seen_at__gte=(now or clock.now()) - STALE_AFTER)

    def consumers(self, now: datetime.datetime | None = None) -> dict[str, list[str]]:
        """Each queue consumed by a live worker, with the workers' host names."""
        found: dict[str, list[str]] = {}
        for hostname, queues in (
            self.alive(now).order_by("hostname").values_list("hostname", "queues")
        ):
            for queue in queues:
                found.setdefault(queue, []).append(hostname)
        return found

    def unconsumed(self, now: datetime.datetime | None = None) -> list[str]:
        """The needed queues (``NEEDED_QUEUES``) no live worker consumes, in that order."""
        consumed = self.consumers(now)
        return [queue for queue in NEEDED_QUEUES if queue not in consumed]


class WorkerHeartbeat(models.Model):
    """One running Celery worker, written by the worker itself (see the module docstring)."""

    hostname = models.CharField(
        "worker", max_length=200, unique=True, help_text="The worker's node name (-n)."
    )
    queues = models.JSONField("queues", default=list, help_text="Queues it consumes.")
    pid = models.PositiveIntegerField("process id", default=0)
    started_at = models.DateTimeField("started", help_text="When the worker became ready.")
    seen_at = models.DateTimeField(
        "last heard", db_index=True, help_text="Refreshed every few seconds while it runs."
    )

    objects = WorkerHeartbeatQuerySet.as_manager()

    class Meta:
        verbose_name = "worker heartbeat"
        ordering = ["hostname"]

    def __str__(self):
        return f"{self.hostname} ({', '.join(self.queues)})"


def beat(hostname: str, queues: list[str], *, started: bool = False) -> None:
    """Write this worker's row: it is alive now and consumes ``queues``."""
    now = clock.now()
    fields = {"queues": sorted(queues), "pid": os.getpid(), "seen_at": now}
    if started:
        fields["started_at"] = now
    updated = WorkerHeartbeat.objects.filter(hostname=hostname).update(**fields)
    if not updated:
        WorkerHeartbeat.objects.update_or_create(
            hostname=hostname, defaults=fields, create_defaults={**fields, "started_at": now}
        )


def gone(hostname: str) -> None:
    """Remove this worker's row: it is shutting down."""
    WorkerHeartbeat.objects.filter(hostname=hostname).delete()


# --- Celery signals (connected in CollectorConfig.ready) -------------------------------------

_stop = threading.Event()


def _queue_names(consumer) -> list[str]:
    """The queues ``consumer`` takes messages from now (``-Q``, or every declared queue)."""
    task_consumer = getattr(consumer, "task_consumer", None)
    if task_consumer is not None and task_consumer.queues:
        return [queue.name for queue in task_consumer.queues]
    queues = consumer.app.amqp.queues
    return list((queues.consume_from or queues).keys())


def _on_ready(sender, **kwargs) -> None:
    consumer = sender
    hostname = consumer.hostname

    def loop():
        while True:
            try:
                beat(hostname, _queue_names(consumer), started=first[0])
                first[0] = False
            except Exception as exc:  # the database may be away for a while; keep trying
                log.warning("worker heartbeat not written: %s", exc)
            if _stop.wait(BEAT_SECONDS):
                return

    first = [True]
    _stop.clear()
    threading.Thread(target=loop, name="worker-heartbeat", daemon=True).start()


def _on_shutdown(sender=None, **kwargs) -> None:
    _stop.set()
    hostname = getattr(sender, "hostname", None)
    if hostname:
        try:
            gone(hostname)
        except Exception as exc:
            log.warning("worker heartbeat not removed: %s", exc)


def connect_signals() -> None:
    from celery.signals import worker_ready, worker_shutdown

    worker_ready.connect(_on_ready, dispatch_uid="collector.workers.ready")
    worker_shutdown.connect(_on_shutdown, dispatch_uid="collector.workers.shutdown")
