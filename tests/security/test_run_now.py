"""Run now on a schedule: first what it would cost, like collect now, retry and cancel."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.admin.models import LogEntry

from collector import clock, pipeline
from collector.ledger import CollectionRun, Trigger
from tests.security.actions import CASES, post_action, snapshot
from tests.security.conftest import SCHEDULES

pytestmark = pytest.mark.django_db


def _confirm_page(client, world, *names):
    case = CASES["schedule run, step 1"]
    data = {"action": "run_tasks", "_selected_action": [world[name].pk for name in names]}
    response = client.post(case.url, data)
    assert response.status_code == 200
    assert response.templates[0].name == "admin/collector/confirm_action.html"
    return response


def test_it_says_what_a_weekly_schedule_would_cost_before_sending_it(login, world, sent):
    client = login("operator")
    before = snapshot()
    response = _confirm_page(client, world, "weekly", "watchdog")
    date_from, date_to = clock.school_weeks_window(weeks_before=1, weeks_after=1)
    plan = pipeline.plan(["elementary"], date_from, date_to, reprocess=pipeline.Reprocess.ALL)
    assert (plan.schools, plan.requests) == (2, 4)
    summary = response.context["summary"][0]
    assert summary == (
        "Send 2 tasks now, outside their schedule: 2 schools to collect and about 4 NEIS "
        "requests, counted against the key's daily quota."
    )
    rows = {row[0]: row for row in response.context["rows"]}
    assert rows["collect-elementary-weekly"][2:5] == [f"{date_from} – {date_to}", "2", "4"]
    assert rows["collection-watchdog"][3:] == ["0", "0", "no NEIS request"]
    assert response.context["button"] == "Yes, run 2 schedules now"
    # Nothing sent, nothing logged until confirmed.
    assert snapshot() == before
    assert sent == {"units": [], "tasks": []}


def test_it_says_when_the_window_was_already_started(login, world, sent):
    date_from, date_to = clock.school_weeks_window(weeks_before=1, weeks_after=1)
    run = CollectionRun.objects.create(
        level="elementary",
        date_from=date_from,
        date_to=date_to,
        trigger=Trigger.SCHEDULE,
        trigger_key=pipeline.schedule_key("elementary", (), date_from, date_to),
    )
    response = _confirm_page(login("operator"), world, "weekly")
    (row,) = response.context["rows"]
    assert row[3:] == ["0", "0", f"already started as run {run.pk}: it will be refused"]


def test_it_says_a_schedule_with_bad_arguments_would_be_refused(login, world, sent):
    world["weekly"].kwargs = '{"level": "college"}'
    world["weekly"].save()
    response = _confirm_page(login("operator"), world, "weekly")
    (row,) = response.context["rows"]
    assert row[5].startswith("would be refused: ")
    assert "college" in row[5]


def test_it_records_the_estimate_it_confirmed(login, world, sent, django_user_model):
    client = login("operator")
    response = post_action(client, CASES["schedule run, step 2"], world)
    assert response.status_code == 302 and response["Location"] == SCHEDULES
    (entry,) = LogEntry.objects.filter(object_id=str(world["weekly"].pk))
    assert entry.user.username == "operator"
    assert entry.get_change_message() == (
        "Ran now: sent collector.start_scheduled_run (2 schools, about 4 NEIS requests)"
    )
    assert sent["tasks"] == ["collector.start_scheduled_run"]


@pytest.mark.usefixtures("local_budget", "fresh_caps")
def test_it_says_what_the_refresh_would_cover_of_what_the_day_leaves(login, world, sent, settings):
    settings.NEIS_DAILY_QUOTA, settings.NEIS_QUOTA_MARGIN_PERCENT = 3, 0
    world["weekly"].task = "collector.start_refresh"
    world["weekly"].kwargs = '{"level": "elementary", "weeks_before": 0, "weeks_after": 1}'
    world["weekly"].save()
    response = _confirm_page(login("operator"), world, "weekly")
    (row,) = response.context["rows"]
    monday = clock.monday_of(clock.today())
    sunday = monday + datetime.timedelta(days=13)
    # Run B's two waiting schools still need 2 of the 3 requests: one school-week fits.
    assert row[2:] == [
        f"{monday} – {sunday}",
        "1",
        "1",
        "short of a full refresh: 1 of 4 school-weeks fit what the day leaves, the current "
        "week's first",
    ]
    assert sent == {"units": [], "tasks": []}
