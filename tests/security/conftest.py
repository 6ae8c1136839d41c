"""Roles, a small world of runs and schedules, and a record of everything sent, for the
security tests.

The four roles are what an operations team hands out: nobody logged in, a staff account with
no permission, a reader (view permission on every model), and an operator (a reader who may
also start, cancel, retry and recount collections and change the schedules).
"""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Permission
from django_celery_beat.models import PeriodicTask

from collector import clock
from collector.ledger import CollectionRun, RunStatus, SchoolRun, Trigger, UnitStatus
from schedules.apply import apply_schedules
from tests.storage.factories import MONDAY, SUNDAY, make_school

ROLES = ("anonymous", "staff", "viewer", "operator")
OPERATOR_PERMISSIONS = [
    ("collector", "start_collection"),
    ("collector", "cancel_run"),
    ("collector", "retry_run"),
    ("collector", "recount_run"),
    ("django_celery_beat", "change_periodictask"),
]
RUNS = "/admin/collector/collectionrun/"
LEDGER = "/admin/collector/schoolrun/"
SCHOOLS = "/admin/collector/school/"
COMPLETENESS = "/admin/collector/completeness/"
SCHEDULES = "/admin/django_celery_beat/periodictask/"


def permissions(*pairs):
    found = [
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in pairs
    ]
    assert len(found) == len(pairs)
    return found


def make_user(django_user_model, role: str):
    """A staff user of ``role`` (not for "anonymous")."""
    user = django_user_model.objects.create_user(role, password="unused", is_staff=True)
    if role in ("viewer", "operator"):
        user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    if role == "operator":
        user.user_permissions.add(*permissions(*OPERATOR_PERMISSIONS))
    return user


@pytest.fixture
def login(client, django_user_model):
    """``login(role)``: the test client, logged in as a new user of that role."""

    def log_in(role: str):
        if role != "anonymous":
            client.force_login(make_user(django_user_model, role))
        return client

    return log_in


@pytest.fixture
def sent(monkeypatch, settings, tmp_path):
    """Everything that would leave for the broker: collect messages by unit id (the pipeline's
    ``send_collect``) and any other task by name (Celery's ``send_task``, which
    django-celery-beat's "run" uses). The request budget is a lock file of this test's own."""
    settings.NEIS_LIMITER_URL = ""
    settings.VAR_DIR = tmp_path
    record = {"units": [], "tasks": []}
    monkeypatch.setattr(
        "collector.pipeline.send_collect", lambda unit_id, expires: record["units"].append(unit_id)
    )
    from proj.celery import app

    monkeypatch.setattr(app, "send_task", lambda name, *a, **kw: record["tasks"].append(name))
    return record


def _run(level, status, *, minutes_ago, **fields):
    run = CollectionRun.objects.create(
        level=level, date_from=MONDAY, date_to=SUNDAY, trigger=Trigger.SCHEDULE, status=status
    )
    created = clock.now() - datetime.timedelta(minutes=minutes_ago)
    CollectionRun.objects.filter(pk=run.pk).update(created_at=created, **fields)
    run.refresh_from_db()
    return run


@pytest.fixture
def world(db):
    """Schools, two runs and the code's schedules, each with something an action would change.

    Run A (partial) has two failed schools to retry, and stale counts to recount; run B is
    running with two waiting schools to cancel. The weekly elementary schedule is disabled.
    """
    schools = {
        "M1": make_school("7010002", "B10", "중학교"),
        "M2": make_school("7010003", "B10", "중학교"),
        "E1": make_school("7020001", "C10", "초등학교"),
        "E2": make_school("7020002", "C10", "초등학교"),
    }
    a = _run("middle", RunStatus.PARTIAL, minutes_ago=60, units_total=2, units_done=9)
    b = _run("elementary", RunStatus.RUNNING, minutes_ago=30, units_total=2)
    units = {
        "A-M1": SchoolRun.objects.create(run=a, school=schools["M1"], status=UnitStatus.FAILED),
        "A-M2": SchoolRun.objects.create(run=a, school=schools["M2"], status=UnitStatus.FAILED),
        "B-E1": SchoolRun.objects.create(run=b, school=schools["E1"], status=UnitStatus.PENDING),
        "B-E2": SchoolRun.objects.create(run=b, school=schools["E2"], status=UnitStatus.DEFERRED),
    }
    apply_schedules()
    PeriodicTask.objects.filter(name="collect-elementary-weekly").update(enabled=False)
    return {
        "schools": schools,
        "runs": {"A": a, "B": b},
        "units": units,
        "weekly": PeriodicTask.objects.get(name="collect-elementary-weekly"),
        "watchdog": PeriodicTask.objects.get(name="collection-watchdog"),
    }
