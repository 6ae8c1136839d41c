"""The broker's queues as a worker sees them: how many messages wait, and a consumer that
stopped taking them.

Celery's consumer can come back from a broker restart connected but taking nothing (Celery and
kombu have had several such bugs with Redis; Celery's own tests of consumer restarts carry
Redis failures). Then the collect messages wait in the queue, no unit is claimed, and the
watchdog cannot help: it re-sends only the messages of an empty queue, and its own message
waits in the same worker. ``StallGuard`` watches for that in every worker: a worker with no
task reserved, whose queues have held messages for ``WORKER_STALL_SECONDS`` while it took none,
reconnects to the broker down Celery's own path for a lost connection.
"""

from __future__ import annotations

import contextlib
import logging
import time

from celery import bootsteps
from celery.signals import task_received
from celery.worker import state

log = logging.getLogger(__name__)


def queue_depth(connection, queue: str) -> int:
    """Messages ready in ``queue`` on a kombu ``connection`` (connected with one retry at most).

    A queue the broker does not have holds nothing: Redis drops an empty queue's key, and a
    broker that restarted without the queue lost what it held. Any other failure raises.
    """
    channel = connection.channel()
    try:
        return channel.queue_declare(queue=queue, passive=True).message_count
    except Exception as exc:
        if getattr(exc, "code", None) == 404 or "NOT_FOUND" in str(exc):
            return 0
        raise
    finally:
        with contextlib.suppress(Exception):
            channel.close()


class ConsumerStalled(ConnectionResetError):
    """Raised in the worker's event loop: Celery treats it as a lost broker connection (an
    OSError is one for every transport) and reconnects its consumer."""


# When this process last received a task message (time.monotonic()).
_received = [0.0]


@task_received.connect(dispatch_uid="collector.broker.received")
def _note_received(**kwargs) -> None:
    _received[0] = time.monotonic()


class StallGuard(bootsteps.StartStopStep):
    """A consumer step: every quarter of ``WORKER_STALL_SECONDS`` (at most 15 s), while the
    worker has no task reserved, count the messages waiting in the queues it consumes; once
    they have waited that long with none received, log it and raise ``ConsumerStalled``.

    A worker at work, or whose queues are empty, is never stalled; a message received restarts
    the count. The step starts again with each new connection (Celery cancels the timer
    entries of the one it drops), so each connection gets the whole delay. 0 turns it off.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.entry = None
        self.waiting_since: float | None = None

    def start(self, parent) -> None:
        from django.conf import settings

        seconds = settings.WORKER_STALL_SECONDS
        self.waiting_since = None
        # Only in the event loop (Redis, RabbitMQ): there an error raised by a timer is the
        # consumer's; a polling transport's timer runs in a thread of its own.
        if seconds and getattr(parent, "hub", None) is not None and parent.timer is not None:
            every = min(15.0, max(1.0, seconds / 4))
            self.entry = parent.timer.call_repeatedly(every, self.check, (parent, seconds))

    def stop(self, parent) -> None:
        if self.entry is not None:
            self.entry.cancel()
            self.entry = None

    shutdown = stop

    def check(self, parent, seconds: float) -> None:
        now = time.monotonic()
        since = self.waiting_since
        if state.reserved_requests or (since is not None and _received[0] >= since):
            self.waiting_since = None  # at work, or took a message since the count began
            return
        waiting = self.waiting(parent)
        if not waiting:
            self.waiting_since = None
            return
        if since is None:
            self.waiting_since = now
            return
        if now - since < seconds:
            return
        self.waiting_since = None
        log.error(
            "the worker took no message for %.0f s while %s waited in its queues and it had "
            "nothing to do: reconnecting to the broker",
            now - since,
            waiting,
        )
        raise ConsumerStalled("consumer stalled: messages wait and none is taken")

    @staticmethod
    def waiting(parent) -> int | None:
        """Messages waiting in the queues ``parent`` consumes; None when the broker cannot
        say (its connection failing is the consumer's own business)."""
        task_consumer = getattr(parent, "task_consumer", None)
        names = [queue.name for queue in task_consumer.queues] if task_consumer else []
        if not names:
            return None
        try:
            with parent.app.connection_for_read() as connection:
                return sum(queue_depth(connection, name) for name in names)
        except Exception as exc:
            log.debug("queue depth unknown: %s", exc)
            return None
