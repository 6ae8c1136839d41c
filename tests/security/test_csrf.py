"""Every action refuses a POST without the CSRF token, even from a logged-in operator: another
site cannot make an operator's browser start, cancel or retry a collection."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.security.actions import CASES, post_action, snapshot
from tests.security.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", CASES)
def test_it_refuses_an_action_without_a_csrf_token(world, sent, django_user_model, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(django_user_model, "operator"))
    before = snapshot()
    response = post_action(client, CASES[name], world)
    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert snapshot() == before
    assert sent == {"units": [], "tasks": []}


def test_it_accepts_the_same_action_with_its_token(world, sent, django_user_model):
    """The refusal above is the token's doing, not the client's."""
    client = Client(enforce_csrf_checks=True)
    user = make_user(django_user_model, "operator")
    client.force_login(user)
    client.get("/admin/collector/collectionrun/")
    case = CASES["recount"]
    before = snapshot()
    response = client.post(
        case.url,
        {
            "action": case.action,
            "_selected_action": [run.pk for run in case.targets(world)],
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )
    case.allowed(response, world, sent, before, user)
