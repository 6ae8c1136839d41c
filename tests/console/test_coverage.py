"""Completeness by school and week: every active school of the registry counts, a school no
run covered is "never attempted" and missing, and "collect what is missing or failed" goes
through collect now's confirmation."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.contrib.auth.models import Permission

from collector import console
from collector.ledger import CollectionRun, RunStatus, UnitStatus
from collector.models import School
from tests.console.conftest import LAST_WEEK, THIS_WEEK, make_run, make_unit
from tests.storage.factories import make_school

pytestmark = pytest.mark.django_db
COVERAGE = "/admin/collector/coverage/"
SCHOOLS = "/admin/collector/school/"


@pytest.fixture
def history(schools):
    """Last week: M1 failed in an older run and was done in a newer one, M2 failed, M3 no
    data, M4 deferred, M5's only unit was cancelled; M6-M8 never attempted. This week: the
    open run (conftest's M-schools) is absent here; only M1 runs."""
    s = schools
    older = make_run(week=LAST_WEEK, status=RunStatus.PARTIAL, minutes_ago=600)
    newer = make_run(week=LAST_WEEK, status=RunStatus.PARTIAL, minutes_ago=300)
    make_unit(older, s["M1"], UnitStatus.FAILED)
    make_unit(newer, s["M1"], UnitStatus.DONE)
    make_unit(newer, s["M2"], UnitStatus.FAILED)
    make_unit(newer, s["M3"], UnitStatus.NO_DATA)
    make_unit(newer, s["M4"], UnitStatus.DEFERRED)
    make_unit(newer, s["M5"], UnitStatus.CANCELLED)
    now = make_run(week=THIS_WEEK, minutes_ago=5)
    make_unit(now, s["M1"], UnitStatus.RUNNING)
    # An inactive school and an elementary one never count for middle schools.
    gone = make_school("7010099", "B10", "중학교")
    School.objects.filter(pk=gone.pk).update(active=False)
    make_school("7010098", "B10", "초등학교")
    return s


def test_it_takes_each_schools_latest_unit_and_counts_the_never_attempted(history):
    found = console.coverage("middle", [LAST_WEEK, THIS_WEEK], office="B10")
    s = history
    assert found.registry == {"B10": 6}
    assert {school_id: weeks[LAST_WEEK] for school_id, weeks in found.cells.items()} == {
        s["M1"].pk: "done",
        s["M2"].pk: "failed",
        s["M3"].pk: "no_data",
        s["M4"].pk: "deferred",
    }
    assert found.cell("B10", LAST_WEEK) == {
        "counts": {
            "done": 1,
            "partial": 0,  # no calendar stored: nothing can be called partial
            "no_data": 1,
            "deferred": 1,
            "failed": 1,
            "running": 0,
            "never": 2,  # M5 (cancelled only) and M6
        },
        "total": 6,
        "complete": 2,
        "missing": 3,
        "pct": pytest.approx(100 * 2 / 6),
    }
    assert found.cell("B10", THIS_WEEK)["counts"]["running"] == 1
    national = console.coverage("middle", [LAST_WEEK, THIS_WEEK])
    assert national.registry == {"B10": 6, "C10": 2}
    assert national.cell(None, LAST_WEEK)["counts"]["never"] == 4
    assert national.counts[("B10", LAST_WEEK)] == found.counts[("B10", LAST_WEEK)]


def test_it_draws_offices_with_names_and_a_national_total(admin_client, history):
    response = admin_client.get(f"{COVERAGE}?level=middle&from={LAST_WEEK}&to={THIS_WEEK}")
    assert response.status_code == 200
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))
    assert "B10 서울특별시교육청" in text
    assert "national total 25.0% 2 / 8 5 missing" in text
    assert "Against the whole active registry: 8 active schools of level middle" in text


def test_it_draws_one_cell_per_school_and_week_for_an_office(admin_client, history):
    url = f"{COVERAGE}?level=middle&office=B10&from={LAST_WEEK}&to={THIS_WEEK}"
    page = admin_client.get(url).content.decode()
    cells = re.findall(r'<td class="cell (\w+)"', page)
    assert len(cells) == 6 * 2
    assert sorted(cells[0::2]) == ["deferred", "done", "failed", "never", "never", "no_data"]
    assert sorted(cells[1::2]) == ["never"] * 5 + ["running"]


def test_its_default_range_is_the_last_eight_weeks_this_one_and_the_next_two(admin_client, history):
    response = admin_client.get(COVERAGE)
    weeks = [column["week"] for column in response.context["columns"]]
    assert weeks[0] == THIS_WEEK - datetime.timedelta(weeks=8)
    assert weeks[-1] == THIS_WEEK + datetime.timedelta(weeks=2)
    assert len(weeks) == 11


def test_it_lists_the_missing_or_failed_schools_of_a_week(admin_client, history):
    response = admin_client.get(
        f"{SCHOOLS}?missing_in_week={LAST_WEEK}&level__exact=middle&office__code__exact=B10"
    )
    listed = {school.code for school in response.context["cl"].result_list}
    assert listed == {"7010002", "7010005", "7010006"}  # failed, cancelled only, never


def test_it_collects_what_is_missing_through_collect_nows_confirmation(admin_client, history, sent):
    url = f"{COVERAGE}?level=middle&office=B10&from={LAST_WEEK}&to={LAST_WEEK}"
    page = html.unescape(admin_client.get(url).content.decode())
    form_re = r'<form class="collect" method="post" action="([^"]+)">(.*?)</form>'
    [form] = re.findall(form_re, page, re.S)
    action, body = form
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', body))
    fields.pop("csrfmiddlewaretoken", None)
    before = CollectionRun.objects.count()
    first = admin_client.post(action, fields)
    assert first.status_code == 200
    assert first.templates[0].name == "admin/collector/collect_now.html"
    text = re.sub(r"\s+", " ", html.unescape(first.content.decode()))
    assert "Collect the timetables of 3 selected schools" in text
    assert f"From {LAST_WEEK} to {LAST_WEEK + datetime.timedelta(days=6)}: 1 run, 3 schools" in text
    assert CollectionRun.objects.count() == before and sent == []
    # Confirmed: one run of exactly the missing schools.
    window = f"{LAST_WEEK}/{LAST_WEEK + datetime.timedelta(days=6)}"
    confirmed = admin_client.post(action, {**fields, "apply": "1", "planned": window})
    assert confirmed.status_code == 302
    run = CollectionRun.objects.order_by("-pk").first()
    assert set(run.units.values_list("school__code", flat=True)) == {
        "7010002",
        "7010005",
        "7010006",
    }
    assert len(sent) == 3


def test_it_offers_the_collect_button_only_with_start_collection(
    client, history, django_user_model
):
    user = django_user_model.objects.create_user("reader", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)
    url = f"{COVERAGE}?level=middle&office=B10&from={LAST_WEEK}&to={LAST_WEEK}"
    assert 'class="collect"' not in client.get(url).content.decode()
    user.user_permissions.add(Permission.objects.get(codename="start_collection"))
    assert 'class="collect"' in client.get(url).content.decode()


def test_it_needs_view_permission_on_the_ledger(client, history, django_user_model):
    user = django_user_model.objects.create_user("clerk", is_staff=True)
    client.force_login(user)
    assert client.get(COVERAGE).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_schoolrun"))
    assert client.get(COVERAGE).status_code == 200


def test_it_is_linked_from_the_admin_index(admin_client, history):
    assert b'href="/admin/collector/coverage/"' in admin_client.get("/admin/").content


@pytest.mark.parametrize("value", ["soon", "9999-12-31", "<b>x</b>"])
def test_it_ignores_a_week_it_cannot_read(admin_client, history, value):
    response = admin_client.get(COVERAGE, {"from": value})
    assert response.status_code == 200
    assert "<b>x</b>" not in response.content.decode()


@pytest.mark.parametrize("office", ["", "B10"])
def test_it_draws_weeks_no_run_covers(admin_client, schools, office):
    response = admin_client.get(
        COVERAGE, {"level": "middle", "office": office, "from": "2020-01-06"}
    )
    assert response.status_code == 200
    assert response.context["columns"][0]["total"]["counts"]["never"] == (6 if office else 8)
