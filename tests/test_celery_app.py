"""The Celery app takes its configuration from Django settings and finds every app's tasks."""

from django.conf import settings

from proj.celery import app


def test_it_reads_celery_settings_from_django():
    conf = app.conf
    assert conf.broker_url == settings.CELERY_BROKER_URL
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.result_backend == "django-db"
    assert conf.beat_scheduler == "schedules.scheduler:GuardedDatabaseScheduler"
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.worker_send_task_events is True
    assert conf.timezone == settings.TIME_ZONE == "Asia/Seoul"


def test_it_schedules_from_the_database():
    from celery.utils.imports import symbol_by_name
    from django_celery_beat.schedulers import DatabaseScheduler

    assert issubclass(symbol_by_name(app.conf.beat_scheduler), DatabaseScheduler)


def test_it_reuses_database_connections_across_tasks():
    from celery.fixups.django import DjangoWorkerFixup

    # The fix-up reads this under its old upper-case name; without it every task reconnects.
    assert DjangoWorkerFixup(app).db_reuse_max == settings.CELERY_DB_REUSE_MAX > 0


def test_it_autodiscovers_the_project_tasks():
    app.loader.import_default_modules()
    assert "proj.ping" in app.tasks
