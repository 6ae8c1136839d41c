"""What NEIS or a URL supplies is shown as text on every custom page, never as markup.

School names and error messages come from NEIS and the week comes from the query string:
none of them may reach a page as a live ``<script>``.
"""

from __future__ import annotations

import pytest
from django.utils.html import escape

from collector.ledger import SchoolRun
from collector.models import School
from tests.security.actions import CHECKBOX, WINDOW
from tests.security.conftest import COMPLETENESS, LEDGER, RUNS, SCHOOLS

pytestmark = pytest.mark.django_db

NAME = '<script>alert("school")</script>'
ERROR = '<script>alert("error")</script>'
WEEK = '<script>alert("week")</script>'


@pytest.fixture
def hostile(world):
    """World whose failed school is named, and failed, with a script."""
    unit = world["units"]["A-M1"]
    School.objects.filter(pk=unit.school_id).update(name=NAME)
    SchoolRun.objects.filter(pk=unit.pk).update(last_error=ERROR, last_error_code="ERROR-300")
    return world


def _pages(client, world):
    """Every custom page, and the stock ones that show NEIS text, as an operator sees them."""
    a, b = world["runs"]["A"], world["runs"]["B"]
    schools = [s.pk for s in world["schools"].values()]
    runs = [a.pk, b.pk]
    yield "run detail", client.get(f"{RUNS}{a.pk}/change/"), [NAME, ERROR]
    yield "ledger list", client.get(LEDGER), [NAME]
    yield "school list", client.get(SCHOOLS), [NAME]
    step1 = client.post(SCHOOLS, {"action": "collect_now", CHECKBOX: schools})
    yield "collect now", step1, [NAME]
    apply = {"action": "collect_now", CHECKBOX: schools, "apply": "1", **WINDOW, "planned": ""}
    yield "collect now, window changed", client.post(SCHOOLS, apply), [NAME]
    retry = client.post(RUNS, {"action": "retry_failed_schools", CHECKBOX: runs})
    yield "retry confirmation", retry, [NAME, ERROR]
    yield "cancel confirmation", client.post(RUNS, {"action": "cancel_runs", CHECKBOX: runs}), []
    yield "completeness", client.get(COMPLETENESS, {"week": WEEK}), [WEEK]


def test_it_escapes_neis_text_and_query_values_on_every_page(login, hostile, sent):
    client = login("operator")
    for page, response, shown in _pages(client, hostile):
        assert response.status_code == 200, page
        content = response.content.decode()
        assert "<script>alert(" not in content, page
        for text in shown:
            assert escape(text) in content, (page, text)
    assert sent == {"units": [], "tasks": []}
