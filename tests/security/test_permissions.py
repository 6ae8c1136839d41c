"""Least privilege in admin: who may see each page and use each action, for every role.

Every custom page and every action that changes or enqueues anything is checked for the four
roles (conftest.py). Allowed: the page answers, or the action does what it says. Denied: login
or 403, or the action is not offered, and then nothing changed in the database and nothing was
sent to the broker.
"""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from tests.security.actions import CASES, CHECKBOX, offered, post_action, snapshot
from tests.security.conftest import (
    COMPLETENESS,
    LEDGER,
    ROLES,
    RUNS,
    SCHEDULES,
    SCHOOLS,
    make_user,
    permissions,
)

pytestmark = pytest.mark.django_db


# Pages


PAGES = {
    "admin index": "/admin/",
    "run list": RUNS,
    "run detail": RUNS + "{A}/change/",
    "run history": RUNS + "{A}/history/",
    "ledger list": LEDGER,
    "ledger detail": LEDGER + "{unit}/change/",
    "school list": SCHOOLS,
    "completeness": COMPLETENESS,
    "completeness by school week": "/admin/collector/coverage/",
    "timetable changes": "/admin/collector/changes/",
    "a school's week of changes": "/admin/collector/changes/?school=7010002",
    "a run's changes": "/admin/collector/changes/?run={A}",
    "worker heartbeats": "/admin/collector/workerheartbeat/",
    "schedule list": SCHEDULES,
}
# What each role gets: the login page, 403, or the page.
SEES = {"anonymous": "login", "staff": 403, "viewer": 200, "operator": 200}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_it_shows_each_page_to_readers_only(login, world, sent, role, page):
    url = PAGES[page].format(A=world["runs"]["A"].pk, unit=world["units"]["A-M1"].pk)
    response = login(role).get(url)
    expected = SEES[role]
    if page == "admin index" and role == "staff":
        expected = 200  # the index itself, listing nothing
    if expected == "login":
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")
    else:
        assert response.status_code == expected
    assert sent == {"units": [], "tasks": []}


# Actions


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", CASES)
def test_it_lets_only_the_operator_act(login, world, sent, django_user_model, role, name):
    case = CASES[name]
    client = login(role)
    before = snapshot()
    response = post_action(client, case, world)
    if role == "operator":
        user = django_user_model.objects.get(username="operator")
        case.allowed(response, world, sent, before, user)
        assert case.action in offered(client, case.url)
        return
    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")
    elif role == "staff":
        assert response.status_code == 403
    else:
        # Not offered. Posted anyway, it is no action: the list again (a reader has no action
        # at all, so the POST is just the list), or "No action selected." and back to it.
        assert case.action not in offered(client, case.url)
        if response.status_code == 302:
            assert response["Location"] == case.url
            messages = [str(m) for m in get_messages(response.wsgi_request)]
            assert messages == ["No action selected."]
        else:
            assert response.status_code == 200
            # The change list (the run list's extends it with the console's banner).
            assert "admin/change_list.html" in [t.name for t in response.templates]
    assert snapshot() == before
    assert sent == {"units": [], "tasks": []}


def test_it_offers_a_reader_no_action_at_all(login, world, sent):
    client = login("viewer")
    for url in (RUNS, SCHOOLS, SCHEDULES):
        assert offered(client, url) == set(), url


def test_it_needs_start_collection_as_well_to_run_a_schedule(
    client, world, sent, django_user_model
):
    """Changing schedules is not starting collections: run now asks for both."""
    user = make_user(django_user_model, "viewer")
    user.user_permissions.add(*permissions(("django_celery_beat", "change_periodictask")))
    client.force_login(user)
    choices = offered(client, SCHEDULES)
    assert {"enable_tasks", "disable_tasks", "toggle_tasks"} <= choices
    assert "run_tasks" not in choices
    before = snapshot()
    response = post_action(client, CASES["schedule run, step 2"], world)
    assert response.status_code == 302
    assert snapshot() == before and sent == {"units": [], "tasks": []}


@pytest.mark.parametrize(
    ("codename", "action"),
    [
        ("start_collection", "collect_now"),
        ("cancel_run", "cancel_runs"),
        ("retry_run", "retry_failed_schools"),
        ("recount_run", "refresh_counts"),
    ],
)
def test_it_offers_each_action_for_its_own_permission(
    client, world, sent, django_user_model, codename, action
):
    user = make_user(django_user_model, "viewer")
    user.user_permissions.add(*permissions(("collector", codename)))
    client.force_login(user)
    assert offered(client, RUNS) | offered(client, SCHOOLS) == {action}


def test_it_never_acts_on_a_get(login, world, sent):
    client = login("operator")
    before = snapshot()
    for case in CASES.values():
        query = {"action": case.action, CHECKBOX: [o.pk for o in case.targets(world)]}
        response = client.get(case.url, {**query, **case.data})
        assert response.status_code in (200, 302)
    assert snapshot() == before
    assert sent == {"units": [], "tasks": []}


@pytest.mark.parametrize("model", ["run", "unit"])
def test_it_deletes_no_run_or_ledger_unit_even_for_a_superuser(
    client, world, sent, django_user_model, model
):
    """The ledger is the audit trail: no delete action, no delete page, no cascade from a run."""
    admin = django_user_model.objects.create_superuser("root", password="unused")
    client.force_login(admin)
    url, obj = {
        "run": (RUNS, world["runs"]["A"]),
        "unit": (LEDGER, world["units"]["A-M1"]),
    }[model]
    assert "delete_selected" not in offered(client, url)
    before = snapshot()
    response = client.post(url, {"action": "delete_selected", CHECKBOX: [obj.pk], "post": "yes"})
    assert response.status_code in (200, 302)
    assert client.get(f"{url}{obj.pk}/delete/").status_code == 403
    assert client.post(f"{url}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    assert b"deletelink" not in client.get(f"{url}{obj.pk}/change/").content
    assert snapshot() == before
