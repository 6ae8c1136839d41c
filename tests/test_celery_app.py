"""The Celery app takes its configuration from Django settings and finds every app's tasks."""

import json

from django.conf import settings

from proj.celery import app
from schedules.definitions import SCHEDULES
from tests.processes import run_python


def test_it_reads_celery_settings_from_django():
    conf = app.conf
    assert conf.broker_url == settings.CELERY_BROKER_URL
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.result_backend == "proj.results:DatabaseBackend"  # django-db, riding out restarts
    assert conf.beat_scheduler == "schedules.scheduler:GuardedDatabaseScheduler"
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.worker_send_task_events is False  # CELERY_TASK_EVENTS; Flower turns them on
    assert conf.timezone == settings.TIME_ZONE == "Asia/Seoul"


def test_it_schedules_from_the_database():
    from celery.utils.imports import symbol_by_name
    from django_celery_beat.schedulers import DatabaseScheduler

    assert issubclass(symbol_by_name(app.conf.beat_scheduler), DatabaseScheduler)


def test_it_reuses_database_connections_across_tasks():
    from celery.fixups.django import DjangoWorkerFixup

    # The fix-up reads this under its old upper-case name; without it every task reconnects.
    assert DjangoWorkerFixup(app).db_reuse_max == settings.CELERY_DB_REUSE_MAX > 0


# What a worker does at start-up, in a fresh interpreter: no test has imported anything yet.
REGISTERED = """
import json
from django.conf import settings
settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "tests.celery_probe"]
from proj.celery import app
app.loader.import_default_modules()
print(json.dumps(sorted(app.tasks)))
"""


def test_it_autodiscovers_the_project_tasks():
    done = run_python(REGISTERED, timeout=120)
    assert done.returncode == 0, done.stderr
    registered = set(json.loads(done.stdout.splitlines()[-1]))
    collector = {
        "collector.collect_school",
        "collector.start_run",
        "collector.start_scheduled_run",
        "collector.resume_deferred",
        "collector.watchdog",
        "collector.sync_schools",
        "collector.refresh_calendars",
    }
    assert collector - registered == set()
    assert {schedule.task for schedule in SCHEDULES} - registered == set()
    # The control: autodiscovery imports `tasks` modules only, so this module's task is found
    # and its sibling's is not; the names above are there because autodiscovery found them.
    assert "tests.celery_probe.in_tasks_module" in registered
    assert "tests.celery_probe.in_other_module" not in registered


def test_retry_countdowns_are_whole_seconds_on_quorum_queues(settings):
    """Celery's native delayed delivery (quorum queues) refuses a countdown under a second:
    the retry would never be sent and its message would be dropped."""
    from kombu.transport.native_delayed_delivery import calculate_routing_key

    from collector.tasks import broker_countdown

    settings.BROKER_KIND, settings.BROKER_QUORUM_QUEUES = "amqp", True
    assert [broker_countdown(s) for s in (0, 0.2, 1.0, 2.01)] == [0, 1.0, 1.0, 3.0]
    assert calculate_routing_key(int(broker_countdown(0.2)), "neis")
    settings.BROKER_KIND, settings.BROKER_QUORUM_QUEUES = "redis", False
    assert broker_countdown(0.2) == 0.2  # elsewhere the countdown is kept as drawn


def test_a_worker_child_leaves_what_it_inherited_out_of_garbage_collection():
    """A prefork child freezes the objects it was forked with and collects its young
    generation less often (``proj.celery.settle_child_heap``); new garbage is still found."""
    code = """
import gc, weakref
import django
django.setup()
from celery import signals
from proj.celery import CHILD_GC_THRESHOLD, app
before = gc.get_threshold()
assert gc.get_freeze_count() == 0
signals.worker_process_init.send(sender="test@host")
assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()
assert gc.get_threshold() == (CHILD_GC_THRESHOLD, *before[1:]), gc.get_threshold()

class Node: pass
node = Node(); node.self = node
alive = weakref.ref(node)
del node
gc.collect()
assert alive() is None
print("ok")
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
