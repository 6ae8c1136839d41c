"""Django admin is the operations console: login required, beat and results admin present,
beat's actions behind permissions and in the admin log."""

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from schedules.apply import apply_schedules

pytestmark = pytest.mark.django_db


def test_it_requires_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/django_celery_beat/periodictask/",
        "/admin/django_celery_beat/crontabschedule/",
        "/admin/django_celery_results/taskresult/",
    ],
)
def test_it_shows_the_celery_admin_to_staff(admin_client, path):
    assert admin_client.get(path).status_code == 200


def test_it_refuses_the_celery_admin_to_anonymous_users(client):
    response = client.get("/admin/django_celery_results/taskresult/")
    assert response.status_code == 302


def test_it_keeps_the_stock_schedule_admin_behind_permissions():
    registered = admin.site._registry[PeriodicTask]
    assert isinstance(registered, PeriodicTaskAdmin)
    actions = {name: getattr(type(registered), name) for name in registered.actions}
    assert {name: action.allowed_permissions for name, action in actions.items()} == {
        "enable_tasks": ["change"],
        "disable_tasks": ["change"],
        "toggle_tasks": ["change"],
        "run_tasks": ["run"],
    }


def test_it_logs_a_schedule_switched_from_admin(admin_client, admin_user):
    apply_schedules()
    task = PeriodicTask.objects.get(name="collection-watchdog")
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "disable_tasks", "_selected_action": [task.pk]},
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.enabled is False
    [entry] = LogEntry.objects.filter(object_id=str(task.pk))
    assert (entry.user, entry.get_change_message()) == (admin_user, "Disabled")


def test_it_answers_a_schedule_drill_down_past_year_9999_as_a_bad_lookup(admin_client):
    response = admin_client.get("/admin/django_celery_beat/periodictask/?start_time__year=9999")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
