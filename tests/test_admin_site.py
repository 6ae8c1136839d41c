"""Django admin is the operations console: login required, beat and results admin present."""

import pytest

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
