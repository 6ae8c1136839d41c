"""The operations console: runs, their ledger, collect-now and completeness, staff only.

Dispatch is recorded instead of sent (a real worker is tested in test_runs_with_worker.py);
the request budget lives in a file under a temporary VAR_DIR.
"""

from __future__ import annotations

import datetime
import html
import re
import time

import pytest
from django.contrib import admin
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.utils import timezone

from collector import clock
from collector.ledger import CollectionRun, RunStatus, SchoolRun, Trigger, UnitStatus
from collector.limiter import budget_from_settings
from collector.models import Office, School
from tests.storage.factories import MONDAY, SUNDAY, make_school

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget")]

FRIDAY = MONDAY + datetime.timedelta(days=4)
RUNS = "/admin/collector/collectionrun/"
LEDGER = "/admin/collector/schoolrun/"
SCHOOLS = "/admin/collector/school/"
COMPLETENESS = "/admin/collector/completeness/"
CHECKBOX = admin.helpers.ACTION_CHECKBOX_NAME


@pytest.fixture
def sent(monkeypatch):
    """Unit ids dispatch enqueued, in order."""
    calls = []
    monkeypatch.setattr(
        "collector.pipeline.send_collect", lambda unit_id, expires: calls.append(unit_id)
    )
    return calls


def _run(level, trigger, status, date_from=MONDAY, date_to=SUNDAY, *, minutes_ago):
    run = CollectionRun.objects.create(
        level=level, date_from=date_from, date_to=date_to, trigger=trigger, status=status
    )
    # Explicit creation times: completeness takes each school's latest run.
    created = clock.now() - datetime.timedelta(minutes=minutes_ago)
    CollectionRun.objects.filter(pk=run.pk).update(created_at=created)
    run.refresh_from_db()
    return run


def _unit(run, school, status, code="", error="", **fields):
    unit = SchoolRun.objects.create(
        run=run, school=school, status=status, last_error_code=code, last_error=error, **fields
    )
    run.units_total = run.units.count()
    run.save(update_fields=["units_total"])
    return unit


@pytest.fixture
def world(db):
    """Two offices' schools and four runs, three of them covering the week of MONDAY.

    Middle school M4 failed in run A and was collected by the later run C, so its failure
    no longer counts; run D covers another week.
    """
    s = {
        "E1": make_school("7010001", "B10", "초등학교"),
        "M1": make_school("7010002", "B10", "중학교"),
        "M2": make_school("7010003", "B10", "중학교"),
        "M4": make_school("7010004", "B10", "중학교"),
        "W": make_school("7010009", "B10", "공동실습소"),
        "E2": make_school("7020001", "C10", "초등학교"),
        "E3": make_school("7020003", "C10", "초등학교"),
        "M3": make_school("7020002", "C10", "중학교"),
    }
    a = _run("middle", Trigger.SCHEDULE, RunStatus.PARTIAL, minutes_ago=60)
    b = _run("elementary", Trigger.BACKFILL, RunStatus.RUNNING, minutes_ago=50)
    c = _run("middle", Trigger.ADMIN, RunStatus.DONE, MONDAY, FRIDAY, minutes_ago=40)
    next_monday, next_friday = (day + datetime.timedelta(weeks=1) for day in (MONDAY, FRIDAY))
    d = _run("all", Trigger.COMMAND, RunStatus.CANCELLED, next_monday, next_friday, minutes_ago=30)
    units = {
        "A-M1": _unit(a, s["M1"], UnitStatus.FAILED, "ERROR-300", "required <value> missing"),
        "A-M2": _unit(a, s["M2"], UnitStatus.DEFERRED, "ERROR-337", "daily quota spent"),
        "A-M3": _unit(a, s["M3"], UnitStatus.DONE, rows_fetched=120),
        "A-M4": _unit(a, s["M4"], UnitStatus.FAILED, "ERROR-500", "server fault"),
        "B-E1": _unit(b, s["E1"], UnitStatus.PENDING),
        "B-E2": _unit(b, s["E2"], UnitStatus.FAILED, "ERROR-290", "key refused"),
        "B-E3": _unit(b, s["E3"], UnitStatus.DEFERRED, "ERROR-337", "daily quota spent"),
        "C-M4": _unit(c, s["M4"], UnitStatus.DONE, rows_fetched=100),
        "D-M1": _unit(d, s["M1"], UnitStatus.CANCELLED),
    }
    return {"schools": s, "runs": {"A": a, "B": b, "C": c, "D": d}, "units": units}


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _listed(response) -> set[int]:
    assert response.status_code == 200, response.get("Location")
    return {obj.pk for obj in response.context["cl"].result_list}


def _act(client, url, action, objects, **data):
    return client.post(url, {"action": action, CHECKBOX: [o.pk for o in objects], **data})


# Runs


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "ABCD"),
        ("?level__exact=middle", "AC"),
        ("?level__exact=all", "D"),
        ("?status__exact=partial", "A"),
        ("?status__exact=running", "B"),
        ("?trigger__exact=admin", "C"),
        ("?trigger__exact=backfill&level__exact=elementary", "B"),
        ("?trigger__exact=schedule&status__exact=done", ""),
    ],
)
def test_it_lists_and_filters_runs(admin_client, world, query, expected):
    response = admin_client.get(RUNS + query)
    assert _listed(response) == {world["runs"][name].pk for name in expected}


def test_it_drills_runs_down_by_creation_date(admin_client, world):
    runs = world["runs"].values()
    year = timezone.localtime(world["runs"]["A"].created_at).year
    response = admin_client.get(f"{RUNS}?created_at__year={year}")
    expected = {r.pk for r in runs if timezone.localtime(r.created_at).year == year}
    assert world["runs"]["A"].pk in expected
    assert _listed(response) == expected


def test_it_shows_a_runs_failed_and_deferred_schools_with_reasons(admin_client, world):
    run = world["runs"]["A"]
    response = admin_client.get(f"{RUNS}{run.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    table = re.search(r"<table><tr><th>status</th>.*?</table>", page, re.S).group(0)
    rows = re.findall(
        r"<tr><td>(.*?)</td><td>(.*?)</td><td>\d+</td><td>(.*?)</td><td>(.*?)</td>", table
    )
    assert rows == [
        ("Deferred (quota)", "7010003 학교7010003", "ERROR-337", "daily quota spent"),
        ("Failed", "7010002 학교7010002", "ERROR-300", "required &lt;value&gt; missing"),
        ("Failed", "7010004 학교7010004", "ERROR-500", "server fault"),
    ]
    assert "7020002" not in table  # M3 is done


@pytest.mark.parametrize(
    "query",
    [
        "?created_at__year=9999",
        "?created_at__year=9999&created_at__month=12",
        "?created_at__year=9999&created_at__month=12&created_at__day=31",
        "?created_at__year=10000",
    ],
)
def test_it_answers_a_drill_down_past_year_9999_as_a_bad_lookup(admin_client, world, query):
    response = admin_client.get(RUNS + query)
    assert response.status_code == 302 and response["Location"] == RUNS + "?e=1"


def test_it_says_when_a_run_has_no_problem_schools(admin_client, world):
    response = admin_client.get(f"{RUNS}{world['runs']['C'].pk}/change/")
    assert response.status_code == 200
    assert "<th>reason</th>" not in response.content.decode()


def test_it_cannot_add_runs_by_hand(admin_client, world):
    assert admin_client.get(RUNS + "add/").status_code == 403
    assert admin_client.get(LEDGER + "add/").status_code == 403


# The ledger


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["A-M1", "A-M2", "A-M3", "A-M4", "B-E1", "B-E2", "B-E3", "C-M4", "D-M1"]),
        ("?status__exact=failed", ["A-M1", "A-M4", "B-E2"]),
        ("?status__exact=deferred", ["A-M2", "B-E3"]),
        ("?school__level__exact=elementary", ["B-E1", "B-E2", "B-E3"]),
        ("?school__office__code__exact=C10", ["A-M3", "B-E2", "B-E3"]),
        ("?run__trigger__exact=admin", ["C-M4"]),
        ("?status__exact=failed&school__office__code__exact=B10", ["A-M1", "A-M4"]),
        ("?q=7010004", ["A-M4", "C-M4"]),
        ("?q=학교7020", ["A-M3", "B-E2", "B-E3"]),
        ("?q=7020&status__exact=deferred", ["B-E3"]),
    ],
)
def test_it_lists_filters_and_searches_the_ledger(admin_client, world, query, expected):
    response = admin_client.get(LEDGER + query)
    assert _listed(response) == {world["units"][name].pk for name in expected}


def test_it_finds_a_runs_schools_by_run_id(admin_client, world):
    run = world["runs"]["B"]
    listed = _listed(admin_client.get(f"{LEDGER}?q={run.pk}"))
    # The term also matches school codes that contain it; nothing else.
    expected = set(SchoolRun.objects.filter(run=run).values_list("pk", flat=True)) | set(
        SchoolRun.objects.filter(school__code__contains=str(run.pk)).values_list("pk", flat=True)
    )
    assert listed == expected
    assert set(run.units.values_list("pk", flat=True)) <= listed


def test_it_shows_a_ledger_row_read_only(admin_client, world):
    unit = world["units"]["A-M1"]
    response = admin_client.get(f"{LEDGER}{unit.pk}/change/")
    assert response.status_code == 200
    assert b"ERROR-300" in response.content
    assert b'name="_save"' not in response.content
    assert admin_client.post(f"{LEDGER}{unit.pk}/change/", {"status": "done"}).status_code == 403
    unit.refresh_from_db()
    assert unit.status == UnitStatus.FAILED


# Run actions: retry and cancel ask first, then act on a POST that confirms


def _confirm(client, url, action, objects, **data):
    return _act(client, url, action, objects, confirm="yes", **data)


def _history(client, obj) -> list[tuple[str, str]]:
    """(user, message) of the admin log entries of ``obj``, oldest first."""
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
    ).order_by("action_time", "pk")
    return [(e.user.get_username(), e.get_change_message()) for e in entries]


def _page(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def test_it_shows_what_a_retry_will_do_before_doing_it(admin_client, world, sent):
    a, c = world["runs"]["A"], world["runs"]["C"]
    response = _act(admin_client, RUNS + "?level__exact=middle", "retry_failed_schools", [a, c])
    assert response.status_code == 200
    assert response.templates[0].name == "admin/collector/confirm_action.html"
    page = _page(response)
    # Run A collected no school with requests counted: plan() estimates one page per school.
    assert "Put 2 failed schools of 1 run back in the queue: about 2 NEIS requests" in page
    assert "1 other selected run: no failed school, or cancelled" in page
    assert f"run {a.pk}: 7010002 학교7010002 — ERROR-300 required <value> missing" in page
    assert "<value>" not in response.content.decode()  # escaped
    for run in (a, c):
        assert f'name="{CHECKBOX}" value="{run.pk}"' in page
    assert 'name="confirm" value="yes"' in page and 'value="Yes, retry 2 schools"' in page
    # Cancel goes back to the list as it was filtered.
    assert 'href="/admin/collector/collectionrun/?level__exact=middle" class="button cancel' in page
    assert sent == []
    assert set(a.units.values_list("status", flat=True)) == {"failed", "deferred", "done"}
    assert _history(admin_client, a) == []


def test_it_estimates_a_retry_from_the_runs_collected_schools(admin_client, world, sent):
    a = world["runs"]["A"]
    SchoolRun.objects.filter(pk=world["units"]["A-M3"].pk).update(requests=3)
    page = _page(_act(admin_client, RUNS, "retry_failed_schools", [a]))
    assert "Put 2 failed schools of 1 run back in the queue: about 6 NEIS requests" in page


def test_it_retries_failed_schools(admin_client, world, sent, admin_user):
    a, c = world["runs"]["A"], world["runs"]["C"]
    failed = [world["units"]["A-M1"].pk, world["units"]["A-M4"].pk]
    response = _confirm(admin_client, RUNS, "retry_failed_schools", [a, c])
    assert response.status_code == 302
    assert sorted(sent) == sorted(failed)
    assert set(SchoolRun.objects.filter(pk__in=failed).values_list("status", flat=True)) == {
        UnitStatus.PENDING
    }
    a.refresh_from_db()
    assert a.status == RunStatus.RUNNING and a.finished_at is None
    assert SchoolRun.objects.get(pk=world["units"]["A-M3"].pk).status == UnitStatus.DONE
    assert _messages(response) == [f"Re-queued 2 failed schools (run {a.pk}: 2)."]
    assert _history(admin_client, a) == [("admin", "Retried 2 failed schools: 2 re-queued")]
    assert _history(admin_client, c) == []


def test_it_says_one_school_in_the_singular(admin_client, world, sent):
    b = world["runs"]["B"]
    page = _page(_act(admin_client, RUNS, "retry_failed_schools", [b]))
    assert "Put 1 failed school of 1 run back in the queue: about 1 NEIS request," in page
    response = _confirm(admin_client, RUNS, "retry_failed_schools", [b])
    assert _messages(response) == [f"Re-queued 1 failed school (run {b.pk}: 1)."]


def test_it_says_when_there_was_nothing_to_retry(admin_client, world, sent):
    c, d = world["runs"]["C"], world["runs"]["D"]
    SchoolRun.objects.filter(pk=world["units"]["D-M1"].pk).update(status=UnitStatus.FAILED)
    # Run C has no failed school; run D is cancelled, and a cancelled run stays cancelled.
    response = _act(admin_client, RUNS, "retry_failed_schools", [c, d])
    assert response.status_code == 302
    assert sent == []
    assert _messages(response) == [
        "Nothing to retry: 2 selected runs without failed schools to retry "
        "(a cancelled run stays cancelled)."
    ]
    assert SchoolRun.objects.get(pk=world["units"]["D-M1"].pk).status == UnitStatus.FAILED


def test_it_says_retried_schools_wait_for_the_quota(admin_client, world, sent):
    budget_from_settings().block_until(time.time() + 3600)
    a = world["runs"]["A"]
    response = _confirm(admin_client, RUNS, "retry_failed_schools", [a])
    assert sent == []
    failed = [world["units"]["A-M1"].pk, world["units"]["A-M4"].pk]
    assert set(SchoolRun.objects.filter(pk__in=failed).values_list("status", flat=True)) == {
        UnitStatus.DEFERRED
    }
    assert _messages(response) == [
        f"Re-queued 0 failed schools (run {a.pk}: 0); 2 more deferred until the NEIS quota resets."
    ]
    assert _history(admin_client, a) == [
        (
            "admin",
            "Retried 2 failed schools: 0 re-queued, 2 deferred until the NEIS quota resets",
        )
    ]


def test_it_says_retried_schools_failed_again_when_neis_refuses_the_key(admin_client, world, sent):
    budget_from_settings().reject("ERROR-290", "invalid key")
    a = world["runs"]["A"]
    response = _confirm(admin_client, RUNS, "retry_failed_schools", [a])
    assert sent == []
    failed = [world["units"]["A-M1"].pk, world["units"]["A-M4"].pk]
    assert set(SchoolRun.objects.filter(pk__in=failed).values_list("status", flat=True)) == {
        UnitStatus.FAILED
    }
    assert _messages(response) == [
        f"Re-queued 0 failed schools (run {a.pk}: 0); 2 failed again at once "
        "(the runs' failed schools say why)."
    ]
    assert _history(admin_client, a) == [
        ("admin", "Retried 2 failed schools: 0 re-queued, 2 failed again at once")
    ]


def test_it_shows_what_a_cancel_will_do_before_doing_it(admin_client, world, sent):
    b, c = world["runs"]["B"], world["runs"]["C"]
    SchoolRun.objects.filter(pk=world["units"]["B-E1"].pk).update(status=UnitStatus.RUNNING)
    response = _act(admin_client, RUNS, "cancel_runs", [b, c])
    assert response.status_code == 200
    page = _page(response)
    assert (
        "Cancel 1 run: 1 school waiting to be collected (pending or deferred) will be cancelled "
        "and not collected by this run." in page
    )
    assert "Schools being collected now finish their attempt: 1." in page
    assert "1 selected run already finished: left as is." in page
    assert 'value="Yes, cancel 1 run"' in page
    b.refresh_from_db()
    assert b.status == RunStatus.RUNNING
    assert _history(admin_client, b) == []


def test_it_cancels_open_runs_and_leaves_finished_ones(admin_client, world, sent):
    b, c = world["runs"]["B"], world["runs"]["C"]
    response = _confirm(admin_client, RUNS, "cancel_runs", [b, c])
    assert response.status_code == 302
    b.refresh_from_db()
    c.refresh_from_db()
    assert b.status == RunStatus.CANCELLED and b.finished_at is not None
    assert c.status == RunStatus.DONE
    units = dict(b.units.values_list("school__code", "status"))
    # Pending and deferred units are cancelled; a failed one keeps its outcome.
    assert units == {
        "7010001": UnitStatus.CANCELLED,
        "7020003": UnitStatus.CANCELLED,
        "7020001": UnitStatus.FAILED,
    }
    assert b.units_failed == 1 and b.units_deferred == 0
    assert _messages(response) == [
        "Cancelled 1 run (2 open schools cancelled); 1 finished run left as it was."
    ]
    assert sent == []
    assert _history(admin_client, b) == [("admin", "Cancelled: 2 open schools cancelled")]
    assert _history(admin_client, c) == []


def test_it_says_when_there_was_nothing_to_cancel(admin_client, world, sent):
    c, d = world["runs"]["C"], world["runs"]["D"]
    response = _act(admin_client, RUNS, "cancel_runs", [c, d])
    assert response.status_code == 302
    assert _messages(response) == ["Nothing to cancel: 2 selected runs already finished."]


def test_it_shows_who_cancelled_a_run_on_its_history_page(admin_client, world, sent):
    b = world["runs"]["B"]
    _confirm(admin_client, RUNS, "cancel_runs", [b])
    page = _page(admin_client.get(f"{RUNS}{b.pk}/history/"))
    assert "admin" in page and "Cancelled: 2 open schools cancelled" in page


def test_it_cancels_every_run_selected_across_pages(admin_client, world, sent, monkeypatch):
    monkeypatch.setattr("collector.admin.CollectionRunAdmin.list_per_page", 1)
    a, b = world["runs"]["A"], world["runs"]["B"]
    CollectionRun.objects.filter(pk=a.pk).update(status=RunStatus.RUNNING)
    query = "?status__exact=running"
    first = _act(admin_client, RUNS + query, "cancel_runs", [b], select_across="1")
    page = _page(first)
    assert "Cancel 2 runs: 3 schools waiting" in page
    assert 'name="select_across" value="1"' in page
    response = _confirm(admin_client, RUNS + query, "cancel_runs", [b], select_across="1")
    assert response.status_code == 302
    assert set(
        CollectionRun.objects.filter(pk__in=[a.pk, b.pk]).values_list("status", flat=True)
    ) == {RunStatus.CANCELLED}


def test_it_recounts_a_runs_ledger(admin_client, world):
    a, c = world["runs"]["A"], world["runs"]["C"]
    CollectionRun.objects.filter(pk=a.pk).update(units_done=9, units_failed=0, rows_fetched=0)
    CollectionRun.objects.filter(pk=c.pk).update(units_done=1, rows_fetched=100)
    response = _act(admin_client, RUNS, "refresh_counts", [a, c])
    assert response.status_code == 302
    a.refresh_from_db()
    assert (a.units_total, a.units_done, a.units_deferred, a.units_failed) == (4, 1, 1, 2)
    assert a.rows_fetched == 120
    assert _messages(response) == ["Recounted 2 runs; 1 run had stale counts."]
    assert _history(admin_client, a) == [
        ("admin", "Recounted: done 9 → 1, deferred 0 → 1, failed 0 → 2, rows fetched 0 → 120")
    ]
    assert _history(admin_client, c) == [("admin", "Recounted: no change")]


# Collect now: choose a window, see what it starts, then start it


def _collect_now(client, schools, **data):
    return _act(client, SCHOOLS, "collect_now", schools, **data)


def _collect_now_confirmed(client, schools, date_from, date_to, url=SCHOOLS, **data):
    """The second step as the page posts it: the window, the window estimated, and apply."""
    window = {"date_from": date_from, "date_to": date_to, "planned": f"{date_from}/{date_to}"}
    return _act(client, url, "collect_now", schools, apply="1", **window, **data)


def test_it_asks_for_a_window_before_collecting(admin_client, world, sent):
    schools = [world["schools"][name] for name in ("M1", "E2", "W")]
    before = CollectionRun.objects.count()
    response = _collect_now(admin_client, schools)
    assert response.status_code == 200
    assert response.templates[0].name == "admin/collector/collect_now.html"
    page = _page(response)
    assert "7010002 학교7010002 (middle)" in page and "7020001 학교7020001 (elementary)" in page
    assert 'name="date_from"' in page and 'name="apply"' in page
    for school in schools:
        assert f'name="{CHECKBOX}" value="{school.pk}"' in page
    # The estimate is for the window in the form: the pinned clock's school week.
    assert 'name="date_from" value="2026-11-16"' in page
    assert 'name="planned" value="2026-11-16/2026-11-22"' in page
    assert (
        "From 2026-11-16 to 2026-11-22: 2 runs, 2 schools, about 2 NEIS requests "
        "(counted against the key's daily quota) and 1,160 lessons." in page
    )
    assert "1 selected school not collected (inactive, or of a kind without timetables)" in page
    assert 'href="/admin/collector/school/" class="button cancel-link"' in page
    assert CollectionRun.objects.count() == before and sent == []


def test_it_estimates_the_window_asked_for(admin_client, world, sent):
    schools = [world["schools"]["M1"]]
    window = {"date_from": "2025-04-14", "date_to": "2025-05-04", "estimate": "1"}
    page = _page(_collect_now(admin_client, schools, **window))
    assert "From 2025-04-14 to 2025-05-04: 1 run, 1 school, about 2 NEIS requests" in page
    assert 'name="planned" value="2025-04-14/2025-05-04"' in page
    assert CollectionRun.objects.filter(trigger=Trigger.ADMIN).count() == 1  # run C only


def test_it_starts_nothing_for_a_window_it_has_not_estimated(admin_client, world, sent):
    before = CollectionRun.objects.count()
    data = {"date_from": "2025-04-14", "date_to": "2025-04-20", "planned": "2025-04-07/2025-04-13"}
    response = _collect_now(admin_client, [world["schools"]["M1"]], apply="1", **data)
    assert response.status_code == 200
    page = _page(response)
    assert "The window is not the one estimated" in page
    assert 'name="planned" value="2025-04-14/2025-04-20"' in page
    assert CollectionRun.objects.count() == before and sent == []


def test_it_collects_now_one_run_per_level(admin_client, world, sent):
    s = world["schools"]
    before = set(CollectionRun.objects.values_list("pk", flat=True))
    schools = [s["M1"], s["M3"], s["E2"], s["W"]]
    response = _collect_now_confirmed(admin_client, schools, "2025-04-14", "2025-04-20")
    assert response.status_code == 302
    runs = CollectionRun.objects.exclude(pk__in=before).order_by("level")
    assert [(r.level, r.trigger, r.requested_by) for r in runs] == [
        ("elementary", Trigger.ADMIN, "admin"),
        ("middle", Trigger.ADMIN, "admin"),
    ]
    elementary, middle = runs
    assert {r.date_from for r in runs} == {datetime.date(2025, 4, 14)}
    assert {r.date_to for r in runs} == {datetime.date(2025, 4, 20)}
    assert set(middle.units.values_list("school__code", flat=True)) == {"7010002", "7020002"}
    assert set(elementary.units.values_list("school__code", flat=True)) == {"7020001"}
    new_units = SchoolRun.objects.filter(run__in=runs)
    assert sorted(sent) == sorted(new_units.values_list("pk", flat=True))
    assert {r.status for r in runs} == {RunStatus.RUNNING}
    assert _messages(response) == [
        f"Started run {elementary.pk} (elementary: 1 school queued), "
        f"run {middle.pk} (middle: 2 schools queued); "
        "1 selected school not collected (inactive, or of a kind without timetables) skipped.",
        # No worker has written a heartbeat in this test: the operator is told at once.
        "No worker consumes “neis” and “default”: queued schools wait until one starts "
        "(celery -A proj worker -Q neis,default). No heartbeat in the last 45 s; see Worker "
        "heartbeats.",
    ]
    # Each run's History says who started it.
    entries = LogEntry.objects.filter(object_id__in=[str(r.pk) for r in runs])
    assert {(e.action_flag, e.user.get_username(), e.object_id) for e in entries} == {
        (ADDITION, "admin", str(elementary.pk)),
        (ADDITION, "admin", str(middle.pk)),
    }
    assert _history(admin_client, middle) == [
        ("admin", "Started by collect now: 2 schools, 2025-04-14 to 2025-04-20")
    ]


def test_it_collects_every_school_selected_across_pages(admin_client, world, sent, monkeypatch):
    monkeypatch.setattr("collector.admin.SchoolAdmin.list_per_page", 2)
    middle = School.objects.filter(level="middle").order_by("code")
    first_page = list(middle[:2])
    url = SCHOOLS + "?level__exact=middle"
    response = _act(admin_client, url, "collect_now", first_page, select_across="1")
    assert response.status_code == 200
    page = _page(response)
    assert f"Collect the timetables of {middle.count()} selected schools" in page
    assert f"{middle.count()} schools, about {middle.count()} NEIS requests" in page
    # The form carries the whole selection to the second step.
    assert 'name="select_across" value="1"' in page
    before = set(CollectionRun.objects.values_list("pk", flat=True))
    response = _collect_now_confirmed(
        admin_client, first_page, "2025-04-14", "2025-04-20", url=url, select_across="1"
    )
    assert response.status_code == 302
    run = CollectionRun.objects.exclude(pk__in=before).get()
    assert set(run.units.values_list("school_id", flat=True)) == {m.pk for m in middle}
    assert len(sent) == middle.count()


@pytest.mark.parametrize(
    ("window", "error"),
    [
        ({"date_from": "2025-04-20", "date_to": "2025-04-14"}, "after it ends"),
        ({"date_from": "2025-01-01", "date_to": "2025-04-20"}, "the maximum is 62"),
        ({"date_from": "2025-13-01", "date_to": "2025-04-20"}, "Enter a valid date."),
        ({"date_from": "2025-04-14"}, "This field is required."),
    ],
)
def test_it_refuses_a_bad_window_and_creates_nothing(admin_client, world, sent, window, error):
    before = (CollectionRun.objects.count(), SchoolRun.objects.count())
    planned = f"{window.get('date_from')}/{window.get('date_to')}"
    response = _collect_now(
        admin_client, [world["schools"]["M1"]], apply="1", planned=planned, **window
    )
    assert response.status_code == 200
    assert error in html.unescape(response.content.decode())
    assert 'class="errorlist' in response.content.decode()
    assert 'name="apply"' not in response.content.decode()
    assert (CollectionRun.objects.count(), SchoolRun.objects.count()) == before
    assert sent == []


# Completeness


def _offices(response) -> dict[str, dict]:
    """Counts by status of the offices that have schools in the week; every office is drawn."""
    assert response.status_code == 200
    offices = response.context["offices"]
    assert [o["code"] for o in offices] == list(Office.objects.values_list("code", flat=True))
    return {
        o["code"]: {s["status"]: s["n"] for s in o["segments"] if s["n"]} | {"total": o["total"]}
        for o in offices
        if o["total"]
    }


def test_it_draws_completeness_by_office(admin_client, world):
    response = admin_client.get(f"{COMPLETENESS}?level=middle&week=2025-04-09")
    # Each school once, by its latest covering run: M4 counts as done (run C), not failed.
    assert _offices(response) == {
        "B10": {"done": 1, "deferred": 1, "failed": 1, "total": 3},
        "C10": {"done": 1, "total": 1},
    }
    assert response.context["week"] == MONDAY
    assert response.context["runs"] == 3
    page = re.sub(r"\s+", " ", response.content.decode())
    assert 'class="seg failed" style="width: 33.33%" title="Failed: 1"' in page
    assert 'class="seg done" style="width: 100.00%" title="Done: 1"' in page
    assert "<td>Done 1, Deferred (quota) 1, Failed 1 <a href=" in page
    assert "<td>Done 1 </td>" in page
    assert page.count("failing schools</a>") == 1


def test_it_counts_every_level_and_skips_cancelled_units(admin_client, world):
    response = admin_client.get(f"{COMPLETENESS}?week=2025-04-07")
    assert response.context["level"] == "all"
    assert _offices(response) == {
        "B10": {"done": 1, "deferred": 1, "failed": 1, "pending": 1, "total": 4},
        "C10": {"done": 1, "deferred": 1, "failed": 1, "total": 3},
    }
    # Run D's week: its only unit is cancelled.
    later = admin_client.get(f"{COMPLETENESS}?week=2025-04-14")
    assert _offices(later) == {}
    assert later.context["runs"] == 1


def test_it_falls_back_on_a_bad_level_or_week(admin_client, world):
    response = admin_client.get(f"{COMPLETENESS}?level=college&week=soon")
    assert response.status_code == 200
    assert response.context["level"] == "all"
    # The pinned clock's week (Saturday 2026-11-21), whatever today's date is.
    assert response.context["week"] == datetime.date(2026, 11, 16) == clock.monday_of(clock.today())


def test_it_shows_completeness_only_to_who_may_read_the_ledger(client, world, django_user_model):
    user = django_user_model.objects.create_user("clerk", is_staff=True)
    client.force_login(user)
    assert client.get(COMPLETENESS).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_schoolrun"))
    assert client.get(COMPLETENESS).status_code == 200


def test_it_says_why_it_fell_back_from_a_week_that_is_not_a_date(admin_client, world):
    response = admin_client.get(f"{COMPLETENESS}?week=<b>soon</b>")
    assert response.context["week"] == clock.monday_of(clock.today())
    assert "“&lt;b&gt;soon&lt;/b&gt;” is not a date (YYYY-MM-DD): showing this week." in (
        response.content.decode()
    )


@pytest.mark.parametrize("week", ["9999-12-31", "9999-12-27", "0001-01-01", "0001-01-07"])
def test_it_refuses_weeks_it_cannot_draw_with_a_message(admin_client, world, week):
    response = admin_client.get(f"{COMPLETENESS}?week={week}")
    assert response.status_code == 200
    assert response.context["week"] == clock.monday_of(clock.today())
    assert _messages(response) == [
        f"The week of {week} is out of range (weeks from 0001-01-08 to 9999-12-20): "
        "showing this week."
    ]


@pytest.mark.parametrize(
    ("week", "links"), [("0001-01-08", ["next week"]), ("9999-12-24", ["previous week"])]
)
def test_it_links_no_week_past_the_first_or_last(admin_client, world, week, links):
    response = admin_client.get(f"{COMPLETENESS}?week={week}")
    assert response.status_code == 200
    assert response.context["week"] == clock.monday_of(datetime.date.fromisoformat(week))
    assert _messages(response) == []
    page = html.unescape(response.content.decode())
    assert [link for link in ("previous week", "next week") if link in page] == links


@pytest.mark.parametrize(
    ("level", "office", "expected"),
    [
        ("middle", "B10", ["A-M1"]),
        ("all", "B10", ["A-M1"]),
        ("all", "C10", ["B-E2"]),
        ("elementary", "C10", ["B-E2"]),
    ],
)
def test_it_links_to_exactly_the_failing_schools(admin_client, world, level, office, expected):
    response = admin_client.get(f"{COMPLETENESS}?level={level}&week=2025-04-09")
    [link] = [o["failed_link"] for o in response.context["offices"] if o["code"] == office]
    assert html.escape(link) in response.content.decode()
    assert _listed(admin_client.get(link)) == {world["units"][name].pk for name in expected}


def test_it_filters_the_ledger_to_each_schools_latest_unit_of_a_week(admin_client, world):
    u = world["units"]
    response = admin_client.get(f"{LEDGER}?latest_for_week=2025-04-10")
    expected = ["A-M1", "A-M2", "A-M3", "B-E1", "B-E2", "B-E3", "C-M4"]
    assert _listed(response) == {u[name].pk for name in expected}
    assert b"week of 2025-04-07" in response.content  # the chosen week shows in the sidebar
    bad = admin_client.get(f"{LEDGER}?latest_for_week=soon")
    assert bad.status_code == 302 and bad["Location"].endswith("?e=1")


def test_it_links_nothing_where_nothing_fails(admin_client, world):
    response = admin_client.get(f"{COMPLETENESS}?level=middle&week=2025-04-09")
    links = {o["code"]: o["failed_link"] for o in response.context["offices"]}
    assert links["C10"] == ""


# Staff only


@pytest.mark.parametrize(
    "page",
    [
        RUNS,
        RUNS + "?level__exact=middle",
        "{RUNS}{A}/change/",
        LEDGER,
        LEDGER + "?q=7010",
        "{LEDGER}{unit}/change/",
        LEDGER + "?latest_for_week=2025-04-07",
        SCHOOLS,
        COMPLETENESS,
        COMPLETENESS + "?level=middle&week=2025-04-09",
    ],
)
def test_it_refuses_pages_to_anonymous_users(client, world, page):
    page = page.format(
        RUNS=RUNS, LEDGER=LEDGER, A=world["runs"]["A"].pk, unit=world["units"]["A-M1"].pk
    )
    response = client.get(page)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize(
    ("url", "action", "data"),
    [
        (RUNS, "retry_failed_schools", {}),
        (RUNS, "cancel_runs", {}),
        (RUNS, "refresh_counts", {}),
        (SCHOOLS, "collect_now", {}),
        (
            SCHOOLS,
            "collect_now",
            {"apply": "1", "date_from": "2025-04-14", "date_to": "2025-04-20"},
        ),
    ],
)
def test_it_refuses_actions_to_anonymous_users(client, world, sent, url, action, data):
    before = (
        list(CollectionRun.objects.order_by("pk").values_list("pk", "status", "units_done")),
        list(SchoolRun.objects.order_by("pk").values_list("pk", "status")),
    )
    objects = world["runs"].values() if url == RUNS else world["schools"].values()
    response = _act(client, url, action, objects, **data)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")
    after = (
        list(CollectionRun.objects.order_by("pk").values_list("pk", "status", "units_done")),
        list(SchoolRun.objects.order_by("pk").values_list("pk", "status")),
    )
    assert after == before
    assert sent == []
