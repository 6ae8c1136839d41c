"""/metrics in Prometheus' text format, from the ledger, behind an optional token; and
check_freshness, which fails when a level's week is not complete by its deadline."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from collector import workers
from collector.ledger import RunStatus, UnitStatus
from collector.models import School
from tests.console.conftest import LAST_WEEK, THIS_WEEK, make_run, make_unit

pytestmark = pytest.mark.django_db


def _metrics(client, **headers) -> dict[str, str]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    found = {}
    for line in response.content.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = value
    return found


def test_it_serves_the_ledger_as_prometheus_metrics(client, open_run):
    run, _ = open_run
    closed = make_run(status=RunStatus.DONE, week=LAST_WEEK, requests=40)
    assert closed.requests == 40
    workers.beat("w@h", ["neis"])
    found = _metrics(client)
    assert found['neis_open_runs{level="middle"}'] == "1"
    assert found['neis_open_runs{level="high"}'] == "0"
    assert found['neis_open_run_units{state="done"}'] == "2"
    assert found['neis_open_run_units{state="pending"}'] == "2"
    assert found['neis_open_run_units{state="deferred"}'] == "1"
    assert found["neis_requests_total"] == "45"  # 40 closed + 5 live
    assert found['neis_workers_alive{queue="neis"}'] == "1"
    assert found['neis_workers_alive{queue="default"}'] == "0"
    # Middle: 3 of 8 done or no data this week; none of the last weeks complete.
    assert found['neis_week_complete_ratio{level="middle"}'] == "0.3750"
    assert found['neis_newest_complete_week_age_seconds{level="middle"}'] == "+Inf"
    assert "neis_lessons_stored_estimated" in found
    page = client.get("/metrics").content.decode()
    for name in ("neis_open_runs", "neis_newest_complete_week_age_seconds"):
        assert f"# TYPE {name} gauge" in page


def test_it_ages_the_newest_complete_week(client, schools):
    run = make_run(status=RunStatus.DONE, week=LAST_WEEK)
    for school in schools.values():
        make_unit(run, school, UnitStatus.DONE)
    found = _metrics(client)
    # Last Monday 00:00 KST to the pinned Saturday 10:00 KST: 12 days and 10 hours.
    age = float(found['neis_newest_complete_week_age_seconds{level="middle"}'])
    assert age == pytest.approx((12 * 24 + 10) * 3600, abs=120)
    # Elementary has no active school: every week is trivially complete.
    assert found['neis_week_complete_ratio{level="elementary"}'] == "1.0000"


def test_it_wants_the_token_when_one_is_set(client, settings, db):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 403
    assert _metrics(client, HTTP_AUTHORIZATION="Bearer s3cret")


def test_its_query_count_does_not_grow_with_runs(client, schools, django_assert_max_num_queries):
    for n in range(6):
        run = make_run(minutes_ago=n)
        make_unit(run, schools["M1"], UnitStatus.DONE)
    with django_assert_max_num_queries(10):
        client.get("/metrics")


def _freshness(*args):
    from io import StringIO

    out = StringIO()
    call_command("check_freshness", *args, stdout=out)
    return out.getvalue()


def test_check_freshness_passes_when_the_due_week_is_complete(schools):
    run = make_run(status=RunStatus.DONE, week=LAST_WEEK)
    for school in schools.values():
        make_unit(run, school, UnitStatus.DONE)
    # Due 132 h after Monday: this week's deadline (Sat 12:00) is still ahead at Sat 10:00,
    # so last week is the one checked.
    out = _freshness("--deadline-hours", "132", "--level", "middle")
    assert "middle: complete (8 of 8 schools)" in out
    assert f"School week of {LAST_WEEK} (due 2026-11-14 12:00 KST)" in out


def test_check_freshness_fails_when_a_level_is_not_complete(schools):
    run = make_run(status=RunStatus.PARTIAL, week=THIS_WEEK)
    for name, school in schools.items():
        make_unit(run, school, UnitStatus.FAILED if name == "M1" else UnitStatus.DONE)
    with pytest.raises(CommandError) as raised:
        _freshness("--deadline-hours", "120", "--level", "middle")
    assert raised.value.returncode == 2
    assert f"School week of {THIS_WEEK}" in str(raised.value) and "middle" in str(raised.value)


def test_check_freshness_counts_never_attempted_schools_as_missing(schools):
    run = make_run(status=RunStatus.DONE, week=THIS_WEEK)
    for name, school in schools.items():
        if name != "M8":
            make_unit(run, school, UnitStatus.DONE)
    with pytest.raises(CommandError, match="middle not complete"):
        _freshness("--deadline-hours", "0", "--level", "middle")
    School.objects.filter(pk=schools["M8"].pk).update(active=False)
    assert "middle: complete (7 of 7 schools)" in _freshness("--deadline-hours", "0")


def test_check_freshness_refuses_a_negative_deadline(db):
    with pytest.raises(CommandError, match="must not be negative"):
        _freshness("--deadline-hours", "-1")
