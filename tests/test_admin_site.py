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


def test_it_offers_no_view_site_link_to_a_page_that_does_not_exist(admin_client, client):
    assert client.get("/").status_code == 404  # nothing is served outside admin
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    assert response.context["site_url"] is None
    assert b"View site" not in response.content


def test_it_warns_that_a_shared_crontab_moves_every_schedule_using_it(admin_client):
    apply_schedules()
    weekly = PeriodicTask.objects.get(name="collect-middle-weekly")
    PeriodicTask.objects.filter(name="collect-high-weekly").update(crontab=weekly.crontab)
    # The pencil next to a schedule's crontab opens this page in a popup.
    url = f"/admin/django_celery_beat/crontabschedule/{weekly.crontab_id}/change/"
    response = admin_client.get(url, {"_to_field": "id", "_popup": "1"})
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [
        "This crontab is shared by 2 schedules (collect-high-weekly, collect-middle-weekly): a "
        "change here changes when every one of them runs. To change one schedule alone, give "
        "it a crontab of its own on its page."
    ]
    assert "collect-high-weekly" in response.content.decode()
    alone = PeriodicTask.objects.get(name="collect-elementary-weekly").crontab_id
    response = admin_client.get(f"/admin/django_celery_beat/crontabschedule/{alone}/change/")
    assert [str(m) for m in response.context["messages"]] == []
