"""Linked: a run leads to its ledger, its failed and deferred schools, its schedule and its
changes; a unit to its school, run and task results; a school to its runs and lessons by week.
The ledger filters by run, status, office, level and error code."""

from __future__ import annotations

import html
import re

import pytest
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from collector.ledger import RunStatus, UnitStatus
from schedules.apply import apply_schedules
from tests.console.conftest import THIS_WEEK, make_run, make_unit

pytestmark = pytest.mark.django_db
RUNS = "/admin/collector/collectionrun/"
LEDGER = "/admin/collector/schoolrun/"


def _hrefs(response) -> dict[str, str]:
    """Link text -> href of a page (the first of each text)."""
    page = response.content.decode()
    found = {}
    for href, text in re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', page, re.S):
        found.setdefault(html.unescape(re.sub(r"<[^>]+>", "", text)).strip(), html.unescape(href))
    return found


def _listed(response) -> set[int]:
    assert response.status_code == 200, response.get("Location")
    return {obj.pk for obj in response.context["cl"].result_list}


def test_a_run_links_to_its_ledger_failed_and_deferred_schools(admin_client, open_run):
    run, units = open_run
    other = make_run(status=RunStatus.DONE)
    make_unit(other, units["failed"].school, UnitStatus.FAILED)
    links = _hrefs(admin_client.get(f"{RUNS}{run.pk}/change/"))
    assert _listed(admin_client.get(links["its ledger"])) == {u.pk for u in units.values()}
    assert _listed(admin_client.get(links["failed schools"])) == {units["failed"].pk}
    assert _listed(admin_client.get(links["deferred schools"])) == {units["deferred"].pk}
    assert admin_client.get(links["changes"]).status_code == 200
    assert admin_client.get(links["completeness of its weeks"]).status_code == 200


def test_a_scheduled_run_links_to_its_schedule(admin_client, schools):
    apply_schedules()
    run = make_run(trigger_key="schedule:middle:all:2026-11-09:2026-11-29")
    links = _hrefs(admin_client.get(f"{RUNS}{run.pk}/change/"))
    schedule = PeriodicTask.objects.get(name="collect-middle-weekly")
    assert links["schedule “collect-middle-weekly”"] == (
        f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/"
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("run={run}", ["done1", "done2", "nodata", "deferred", "failed", "running", "pending1"]),
        ("run={run}&status__exact=pending", ["pending1", "pending2"]),
        ("error_code=ERROR-337", ["deferred"]),
        ("error_code=ERROR-300&run={run}", ["failed"]),
        ("school__office__code__exact=C10&run={run}", ["pending1", "pending2"]),
        ("school__level__exact=middle&status__exact=no_data", ["nodata"]),
    ],
)
def test_it_filters_the_ledger_by_run_status_office_level_and_error_code(
    admin_client, open_run, query, expected
):
    run, units = open_run
    if query == "run={run}":
        expected = [*expected, "pending2"]
    response = admin_client.get(f"{LEDGER}?{query.format(run=run.pk)}")
    assert _listed(response) == {units[name].pk for name in expected}


def test_the_error_code_filter_lists_the_codes_the_ledger_holds(admin_client, open_run):
    page = admin_client.get(LEDGER).content.decode()
    assert "?error_code=ERROR-300" in page and "?error_code=ERROR-337" in page


def test_a_bad_run_filter_is_a_bad_lookup(admin_client, open_run):
    response = admin_client.get(f"{LEDGER}?run=abc")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_a_unit_links_to_its_school_run_and_task_results(admin_client, open_run):
    run, units = open_run
    unit = units["failed"]
    unit.task_id = "3f2a9c1e-task"
    unit.save()
    result = TaskResult.objects.create(task_id="3f2a9c1e-task", status="FAILURE")
    response = admin_client.get(f"{LEDGER}{unit.pk}/change/")
    links = _hrefs(response)
    school = f"/admin/collector/school/{unit.school_id}/change/"
    assert links[f"school {unit.school.code}"] == school
    assert links[f"run {run.pk}"] == f"{RUNS}{run.pk}/change/"
    [to_result] = [h for t, h in links.items() if t.startswith("FAILURE at")]
    assert to_result == f"/admin/django_celery_results/taskresult/{result.pk}/change/"
    assert admin_client.get(links["its timetable and changes"]).status_code == 200
    assert unit.pk in _listed(admin_client.get(links["the school's other runs"]))


def test_a_school_shows_its_runs_and_lessons_by_week(admin_client, open_run):
    run, units = open_run
    school = units["done1"].school
    response = admin_client.get(f"/admin/collector/school/{school.pk}/change/")
    page = re.sub(r"\s+", " ", html.unescape(response.content.decode()))
    assert f'href="{RUNS}{run.pk}/change/">run {run.pk}</a>' in page
    assert f"week of {THIS_WEEK}" in page


def test_it_shows_times_with_their_zone(admin_client, open_run):
    run, _ = open_run
    page = html.unescape(admin_client.get(f"{RUNS}{run.pk}/change/").content.decode())
    # Created 30 minutes before the pinned 10:00 KST.
    assert re.search(r"2026-11-21 09:30:\d\d KST", page)
