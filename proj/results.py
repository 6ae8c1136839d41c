"""The result backend: django-celery-results' database backend, riding out an outage.

Celery stores a task's STARTED state before its body runs, and its RETRY state after the body
asked for a retry. With the stock backend a database that is away fails the task right there:
its message is acknowledged, nothing of it was recorded, and its school waits for the watchdog
to find the message lost, which it can only do once the queue is empty (hours into a national
run). This backend retries such a failure on a fresh connection for as long as a restart or a
failover may take (``retry_seconds``), trying again at least every second, so a task waits out
the outage and then runs, within a second or so of the database coming back.
"""

from __future__ import annotations

import contextlib
import math
import time

from celery import states
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections
from django.utils import timezone
from django_celery_results.backends import DatabaseBackend as StockDatabaseBackend
from django_celery_results.models import TaskResult

# How long storing a task's state waits for the database before the task gives up (and is
# left to the watchdog as an infrastructure error): longer than a restart or a failover, and
# at most half the task's hard time limit, which would end the wait and acknowledge the
# message without a trace.
RETRY_SECONDS = 300.0


def retry_seconds() -> float:
    return min(RETRY_SECONDS, settings.CELERY_TASK_TIME_LIMIT / 2)


class DatabaseBackend(StockDatabaseBackend):
    _give_up_at = math.inf  # one backend per thread (Celery's app.backend): no sharing

    def _ensure_retryable(self, func, *args, max_retries=None, **kwargs):
        # Celery's own loop does the retrying (a jittered backoff capped by
        # CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS); a time limit ends it, not a
        # count of tries, so an outage is ridden out however the sleeps fall.
        self._give_up_at = time.monotonic() + retry_seconds()
        limit = math.inf if max_retries is None else max_retries
        return super()._ensure_retryable(func, *args, max_retries=limit, **kwargs)

    def exception_safe_to_retry(self, exc) -> bool:
        if isinstance(exc, OperationalError | InterfaceError):
            with contextlib.suppress(Exception):
                connection.close()  # the next try connects afresh
            # Past the limit the database error itself is raised: the task's failure is then
            # an infrastructure error (collector/retry.py), never a failed school.
            return time.monotonic() < self._give_up_at
        return super().exception_safe_to_retry(exc)

    def _store_result(self, task_id, result, status, traceback=None, request=None, using=None):
        """The stock backend's, in one statement: an INSERT ... ON CONFLICT DO UPDATE where the
        stock ``TaskResult.objects.store_result`` makes a ``get_or_create`` and then a
        ``save()`` of every column (two or three round trips a state, a task storing two).
        The row is the same: the columns of this state, ``date_done`` now, ``date_created``
        from the first state, ``date_started`` from the STARTED one (this worker's clock,
        as ``date_done`` always was)."""
        content_type, content_encoding, encoded = self.encode_content(result)
        meta = {
            **self._get_meta_from_request(request),
            "children": self.current_task_children(request),
        }
        fields = {
            "status": status,
            "result": encoded,
            "meta": self.encode_content(meta)[2],
            "content_encoding": content_encoding,
            "content_type": content_type,
            "traceback": traceback,
            **self._get_extended_properties(request, traceback),  # as the stock one: last
        }
        now = timezone.now()
        if status == states.STARTED:
            fields["date_started"] = now
        # Plain SQL: the ORM's bulk_create built this statement anew for every state of
        # every task, most of storing a result's cost (names are the model's own columns).
        names = ["task_id", *fields, "date_created", "date_done"]
        columns = [TaskResult._meta.get_field(name).column for name in names]
        updated = columns[1:-2] + columns[-1:]  # date_created only when the row is new
        sql = (
            f"INSERT INTO {TaskResult._meta.db_table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT (task_id) DO UPDATE SET "
            + ", ".join(f"{column} = EXCLUDED.{column}" for column in updated)
        )
        with connections[using or "default"].cursor() as cursor:
            cursor.execute(sql, [task_id, *fields.values(), now, now])
        return result
