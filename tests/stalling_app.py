"""The project's Celery app with one fault: a second after the consumer's first connection
starts, it stops taking messages while its queues stay listed, as Celery's consumer can after
a broker restart. For tests/test_worker.py (``celery -A tests.stalling_app worker``)."""

import logging

from celery import bootsteps

from proj.celery import app

log = logging.getLogger(__name__)
STALLED = "tests.stalling_app: the consumer takes no more messages"

_stalled: list[bool] = []


class StopTakingMessages(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent) -> None:
        if not _stalled:  # the first connection only: a new one takes messages again
            _stalled.append(True)
            parent.timer.call_after(1.0, self.stall, (parent,))

    @staticmethod
    def stall(parent) -> None:
        parent.task_consumer.cancel()
        log.warning(STALLED)


app.steps["consumer"].add(StopTakingMessages)
