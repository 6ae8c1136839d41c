"""The result backend: django-celery-results' database backend, riding out a restart.

Celery stores a task's STARTED state before its body runs. With the stock backend a database
that is restarting fails the task right there: its message is acknowledged, nothing of it was
recorded, and its school waits for the watchdog to find the message lost. This backend retries
such a failure on a fresh connection (``CELERY_RESULT_BACKEND_ALWAYS_RETRY``), so a task rides
out a restart of a few seconds and then runs.
"""

from __future__ import annotations

import contextlib

from django.db import InterfaceError, OperationalError, connection
from django_celery_results.backends import DatabaseBackend as StockDatabaseBackend


class DatabaseBackend(StockDatabaseBackend):
    def exception_safe_to_retry(self, exc) -> bool:
        if isinstance(exc, OperationalError | InterfaceError):
            with contextlib.suppress(Exception):
                connection.close()  # the next try connects afresh
            return True
        return super().exception_safe_to_retry(exc)
