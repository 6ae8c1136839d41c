"""The console as people use it, in a browser: an operator and a reader log in and walk from
the run list to a run with failures, its failed schools, a retry (confirmed), completeness,
collecting what is missing (confirmed), and the schedules."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth.models import Permission

from collector import clock
from collector.ledger import CollectionRun, RunStatus, SchoolRun, Trigger, UnitStatus
from schedules.apply import apply_schedules
from tests.security.conftest import OPERATOR_PERMISSIONS, permissions
from tests.storage.factories import make_school

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "walk-the-console-1"
LAST_WEEK = datetime.date(2026, 11, 9)


@pytest.fixture
def world(settings, tmp_path, monkeypatch):
    """A partial run of last week with two failed middle schools, a third never attempted,
    and the project's schedules; messages to the broker are recorded, not sent."""
    settings.NEIS_LIMITER_URL = ""
    settings.VAR_DIR = tmp_path
    sent = []
    monkeypatch.setattr(
        "collector.pipeline.send_collect", lambda unit_id, expires: sent.append(unit_id)
    )
    schools = [make_school(f"70100{n:02d}", "B10", "중학교") for n in range(1, 5)]
    run = CollectionRun.objects.create(
        level="middle",
        date_from=LAST_WEEK,
        date_to=LAST_WEEK + datetime.timedelta(days=6),
        trigger=Trigger.SCHEDULE,
        status=RunStatus.PARTIAL,
        units_total=3,
        units_done=1,
        units_failed=2,
        started_at=clock.now() - datetime.timedelta(hours=2),
        finished_at=clock.now() - datetime.timedelta(hours=1),
    )
    SchoolRun.objects.create(run=run, school=schools[0], status=UnitStatus.DONE)
    for school in schools[1:3]:
        SchoolRun.objects.create(
            run=run,
            school=school,
            status=UnitStatus.FAILED,
            last_error_code="ERROR-500",
            last_error="ERROR-500: server fault",
        )
    apply_schedules()
    return {"run": run, "schools": schools, "sent": sent}


def _user(django_user_model, role: str):
    user = django_user_model.objects.create_user(role, password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    if role == "operator":
        user.user_permissions.add(*permissions(*OPERATOR_PERMISSIONS))
    return user


def _log_in(page, live_server, username):
    page.goto(f"{live_server.url}/admin/login/?next=/admin/collector/collectionrun/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/collector/collectionrun/$"))


def _to_failed_schools(page, run):
    page.click(f"a[href='/admin/collector/collectionrun/{run.pk}/change/']")
    assert "1 done" in page.inner_text("body").replace(",", "") or page.locator(".bar").count()
    page.click("text=failed schools")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert "ERROR-500" in page.inner_text("#result_list")


def test_an_operator_walks_from_a_failed_run_to_collecting_what_is_missing(
    page, live_server, world, django_user_model
):
    _user(django_user_model, "operator")
    run = world["run"]
    _log_in(page, live_server, "operator")
    assert page.locator("#no-worker-banner").is_visible()  # no worker in this test
    _to_failed_schools(page, run)
    # Retry: the run list's action asks first, then re-queues the two failed schools.
    page.goto(f"{live_server.url}/admin/collector/collectionrun/")
    page.check(f"input.action-select[value='{run.pk}']")
    page.select_option("select[name=action]", "retry_failed_schools")
    page.click("button[name=index]")
    assert "Put 2 failed schools of 1 run back in the queue" in page.inner_text("#content")
    assert world["sent"] == []
    page.click("input[value='Yes, retry 2 schools']")
    assert "Re-queued 2 failed schools" in page.inner_text(".messagelist")
    assert len(world["sent"]) == 2
    # Completeness of last week: the never-attempted school is missing; collect it.
    page.goto(f"{live_server.url}/admin/")
    page.click("#console-links >> text=Completeness by school week")
    page.select_option("select[name=level]", "middle")
    page.select_option("select[name=office]", "B10")
    page.fill("input[name=from]", "2026-11-09")
    page.fill("input[name=to]", "2026-11-09")
    page.click("input[value=Show]")
    assert page.locator("td.cell.never").count() == 1
    page.click("form.collect input[type=submit]")
    body = page.inner_text("#content")
    assert "Collect the timetables of 1 selected school" in body
    assert "From 2026-11-09 to 2026-11-15: 1 run, 1 school" in body
    page.click("input[name=apply]")
    assert re.search(
        r"Started run \d+ \(middle: 1 school queued\)", page.inner_text(".messagelist")
    )
    assert len(world["sent"]) == 3
    # The schedules.
    page.goto(f"{live_server.url}/admin/")
    page.click("#console-links a:text-is('Schedules')")  # not the quota plan's words
    # Read once the page has loaded (its load event): under load, one CI run read a table
    # without the row looked for.
    page.wait_for_url(re.compile(r"/admin/django_celery_beat/periodictask/$"))
    assert "collect-middle-weekly" in page.inner_text("#result_list")


def test_a_reader_walks_the_same_pages_and_can_change_nothing(
    page, live_server, world, django_user_model
):
    _user(django_user_model, "viewer")
    run = world["run"]
    _log_in(page, live_server, "viewer")
    assert page.locator("select[name=action]").count() == 0
    _to_failed_schools(page, run)
    page.goto(f"{live_server.url}/admin/collector/coverage/?level=middle&office=B10")
    assert page.locator("#coverage").is_visible()
    assert page.locator("form.collect").count() == 0
    page.goto(f"{live_server.url}/admin/django_celery_beat/periodictask/")
    assert "collect-middle-weekly" in page.inner_text("#result_list")
    assert page.locator("select[name=action]").count() == 0
    assert world["sent"] == []
    assert SchoolRun.objects.filter(status=UnitStatus.FAILED).count() == 2
