"""A real worker process runs a real task and its result lands in django-celery-results."""

import contextlib
import json
import subprocess
import sys
import uuid

import pytest
from django_celery_results.models import TaskResult

from proj.celery import app, ping
from tests.processes import AMQP_URL, REDIS_URL, ROOT, celery_worker, child_env, wait_until
from tests.stalling_app import STALLED

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _result_of(task_id):
    return TaskResult.objects.filter(task_id=task_id, status="SUCCESS").first()


@pytest.mark.parametrize("broker_url", [REDIS_URL, AMQP_URL], ids=["redis", "rabbitmq"])
def test_it_runs_a_task_on_a_real_worker(tmp_path, broker_url):
    marker = uuid.uuid4().hex
    with celery_worker(tmp_path, {"CELERY_BROKER_URL": broker_url}, queues="default"):
        with app.connection_for_write(broker_url) as conn:
            sent = ping.apply_async(args=[marker], connection=conn)
        stored = wait_until(lambda: _result_of(sent.id), timeout=60)

    assert json.loads(stored.result)["pong"] == marker
    assert stored.task_name == "proj.ping"


def test_it_runs_a_task_on_the_embedded_default(tmp_path):
    """No DATABASE_URL, no CELERY_BROKER_URL: SQLite and the filesystem broker under VAR_DIR."""
    env = child_env({"DATABASE_URL": None, "CELERY_BROKER_URL": None, "VAR_DIR": str(tmp_path)})
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    marker = uuid.uuid4().hex
    sender = f"""
import django, json
django.setup()
from proj.celery import ping
from django_celery_results.models import TaskResult
result = ping.delay({marker!r})
value = result.get(timeout=60)
row = TaskResult.objects.get(task_id=result.id)
print(json.dumps({{"value": value["pong"], "status": row.status, "engine": row._state.db}}))
"""
    with celery_worker(
        tmp_path,
        {"DATABASE_URL": None, "CELERY_BROKER_URL": None, "VAR_DIR": str(tmp_path)},
        queues="default",
    ):
        done = subprocess.run(
            [sys.executable, "-c", sender],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"value": marker, "status": "SUCCESS", "engine": "default"}
    assert (tmp_path / "db.sqlite3").exists()
    assert (tmp_path / "broker").is_dir()


def test_it_runs_a_task_sent_with_the_celery_cli(tmp_path):
    marker = uuid.uuid4().hex
    env = child_env({"CELERY_BROKER_URL": REDIS_URL})
    with celery_worker(tmp_path, {"CELERY_BROKER_URL": REDIS_URL}, queues="default"):
        sent = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "proj", "call", "proj.ping",
             "--args", json.dumps([marker]), "--countdown", "1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        task_id = sent.stdout.strip().splitlines()[-1]
        stored = wait_until(lambda: _result_of(task_id), timeout=60)
    assert json.loads(stored.result)["pong"] == marker


@contextlib.contextmanager
def _stopped_consumer(tmp_path, broker_url: str, stall_seconds: int):
    """A worker of ``tests.stalling_app`` on ``broker_url`` once its consumer has stopped
    taking messages, and the ping it was then sent."""
    env = {"CELERY_BROKER_URL": broker_url, "WORKER_STALL_SECONDS": str(stall_seconds)}
    with app.connection_for_write(broker_url) as conn:
        conn.default_channel.queue_purge("default")
    with celery_worker(tmp_path, env, queues="default", app="tests.stalling_app") as worker:
        wait_until(lambda: STALLED in worker.output(), timeout=10)
        with app.connection_for_write(broker_url) as conn:
            sent = ping.apply_async(args=["late"], connection=conn)
        try:
            yield worker, sent
        finally:
            with app.connection_for_write(broker_url) as conn:
                conn.default_channel.queue_purge("default")


@pytest.mark.parametrize("broker_url", [REDIS_URL, AMQP_URL], ids=["redis", "rabbitmq"])
def test_a_worker_whose_consumer_stops_taking_messages_reconnects(tmp_path, broker_url):
    """``collector.broker.StallGuard``: a consumer that stopped taking messages while they
    wait (``tests.stalling_app`` cancels its consumption once ready) is noticed and
    reconnected; the task waiting meanwhile then runs."""
    with _stopped_consumer(tmp_path, broker_url, 3) as (worker, sent):
        stored = wait_until(lambda: _result_of(sent.id), timeout=60)
        log = worker.output()
    assert json.loads(stored.result)["pong"] == "late"
    assert "while 1 waited in its queues and it had nothing to do: reconnecting" in log


def test_a_stopped_consumer_takes_nothing_without_the_guard(tmp_path):
    """The fault of the test above is real: with the guard off, the task is never taken."""
    with _stopped_consumer(tmp_path, REDIS_URL, 0) as (worker, sent):
        with pytest.raises(TimeoutError):
            wait_until(lambda: _result_of(sent.id), timeout=10)
        assert "reconnecting to the broker" not in worker.output()
