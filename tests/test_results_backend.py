"""The result backend rides out a database outage by time, not by a count of quick tries."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import OperationalError

from proj import results
from proj.celery import app


class Clock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def backend(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(results, "time", SimpleNamespace(monotonic=clock.monotonic), raising=False)
    backend = results.DatabaseBackend(app=app)
    monkeypatch.setattr(backend, "_sleep", clock.sleep)
    return backend, clock


def _down_for(seconds: float, clock: Clock):
    calls = []

    def store():
        calls.append(clock.now)
        if clock.now < seconds:
            raise OperationalError("connection refused")
        return "stored"

    return store, calls


def test_it_waits_out_a_forty_second_outage_and_goes_on_within_a_second(backend):
    backend, clock = backend
    store, calls = _down_for(40, clock)
    assert backend._ensure_retryable(store) == "stored"
    # The stock settings (12 tries, 10 ms doubling to 10 s) gave up after about 15 s.
    assert calls[-1] - 40 <= 1.0
    assert max(b - a for a, b in zip(calls, calls[1:], strict=False)) <= 1.0


def test_it_gives_up_with_the_database_error_itself_after_its_time(backend, settings):
    backend, clock = backend
    store, calls = _down_for(10_000, clock)
    with pytest.raises(OperationalError):  # an infrastructure error, not BackendStoreError
        backend._ensure_retryable(store)
    assert results.retry_seconds() <= clock.now < results.retry_seconds() + 1.0
    assert results.retry_seconds() <= settings.CELERY_TASK_TIME_LIMIT / 2


def _states(backend, task_id: str) -> dict:
    from django_celery_results.models import TaskResult

    request = SimpleNamespace(
        id=task_id, task="collector.collect_school", args=[7], kwargs={}, hostname="w@h"
    )
    request.argsrepr, request.kwargsrepr = "[7]", "{}"
    backend.store_result(task_id, None, "STARTED", request=request)
    row = TaskResult.objects.values().get(task_id=task_id)
    backend.store_result(task_id, {"unit_id": 7, "status": "done"}, "SUCCESS", request=request)
    return row, TaskResult.objects.values().get(task_id=task_id)


@pytest.mark.django_db
def test_it_stores_each_state_in_one_statement_as_the_stock_backend_would(
    django_assert_num_queries,
):
    from django_celery_results.backends import DatabaseBackend as Stock

    stock_started, stock_done = _states(Stock(app=app), "stock")
    with django_assert_num_queries(4):  # one a state, and the test's two reads of the row
        started, done = _states(results.DatabaseBackend(app=app), "ours")
    moments = ("id", "task_id", "date_created", "date_started", "date_done")
    for ours, stock in ((started, stock_started), (done, stock_done)):
        assert {k: v for k, v in ours.items() if k not in moments} == {
            k: v for k, v in stock.items() if k not in moments
        }
    assert done["date_created"] == started["date_created"] <= done["date_done"]
    assert done["date_started"] == started["date_started"] is not None
    assert done["status"] == "SUCCESS" and "done" in done["result"]
