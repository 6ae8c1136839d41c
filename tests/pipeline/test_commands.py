"""Operator commands: good input works, bad input says why, exits non-zero, changes nothing."""

from __future__ import annotations

import datetime
import io
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from collector import pipeline
from collector.ledger import CollectionRun, SchoolRun, UnitStatus
from collector.models import Lesson, School
from tests.pipeline.truth import expected_lessons, stored_lessons
from tests.processes import ROOT, child_env

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = pytest.mark.django_db(transaction=True)

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)


@pytest.fixture
def sim(neis_sim, settings, tmp_path):
    settings.NEIS_BASE_URL = neis_sim.url
    settings.NEIS_API_KEY = neis_sim.key
    settings.NEIS_LIMITER_URL = ""
    settings.VAR_DIR = tmp_path
    return neis_sim


def _call(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def _snapshot():
    return (
        CollectionRun.objects.count(),
        SchoolRun.objects.count(),
        Lesson.objects.count(),
        School.objects.count(),
    )


BACKFILL = ["backfill_timetables", "--level", "middle", "--office", "I10"]


def test_it_collects_in_process_equal_to_neis(sim):
    output = _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--sync")
    run = CollectionRun.objects.get()
    codes = list(run.units.values_list("school__code", flat=True))
    expected = expected_lessons(sim.world, codes, MONDAY, FRIDAY, sim.control.now())
    assert stored_lessons(codes, MONDAY, FRIDAY) == expected
    assert f"Run {run.pk}" in output
    assert f"{len(expected):,} inserted" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-13-01", "--to", "2026-11-20"], "is not a date"),
        (["--from", "2026-11-20", "--to", "2026-11-16"], "starts (2026-11-20) after it ends"),
        (["--from", "2026-01-01", "--to", "2026-11-20"], "maximum is 62"),
        (["--from", "2026-11-16", "--to", "2026-11-20", "--office", "Z99"], "unknown office"),
        (["--from", "2026-11-16", "--to", "2026-11-20", "--school", "0000000"], "unknown school"),
    ],
)
def test_it_refuses_bad_input_and_changes_nothing(sim, args, message):
    before = _snapshot()
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _call(*BACKFILL, *args)
    assert _snapshot() == before
    assert sim.control.stats()["requests"] == 0


def test_it_refuses_an_unknown_level():
    done = subprocess.run(
        [sys.executable, "manage.py", "backfill_timetables", "--level", "college",
         "--from", "2026-11-16", "--to", "2026-11-20"],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "invalid choice: 'college'" in done.stderr


def test_it_dry_runs_without_a_request_or_a_write(sim):
    _call("sync_schools", "--office", "I10")
    requests_before = sim.control.stats()["requests"]
    before = _snapshot()
    output = _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--dry-run")
    assert _snapshot() == before
    assert sim.control.stats()["requests"] == requests_before
    schools = School.objects.filter(office_id="I10", level="middle", active=True).count()
    assert f"Would collect {schools} schools" in output
    assert "Nothing was fetched or written." in output


def test_it_enqueues_by_default_and_prints_the_run(sim, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "collector.pipeline.send_collect", lambda unit_id, expires: sent.append(unit_id)
    )
    output = _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY))
    run = CollectionRun.objects.get()
    assert f"Run {run.pk}: {run.units_total} schools, {len(sent)} tasks enqueued" in output
    assert sorted(sent) == sorted(run.units.values_list("pk", flat=True))


def test_it_skips_collected_weeks_unless_told_to_reprocess(sim):
    _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--sync")
    first = CollectionRun.objects.get()
    output = _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--dry-run")
    assert "Would collect 0 schools" in output
    again = _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--sync",
                  "--reprocess", "all")  # fmt: skip
    second = CollectionRun.objects.exclude(pk=first.pk).get()
    assert second.units_total == first.units_total
    assert second.rows_inserted == 0 and second.rows_unchanged > 0
    assert "0 inserted" in again


def test_it_reprocesses_only_failed_schools(sim):
    _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--sync")
    run = CollectionRun.objects.get()
    victim = run.units.filter(status=UnitStatus.DONE).first()
    SchoolRun.objects.filter(pk=victim.pk).update(status=UnitStatus.FAILED)
    output = _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--dry-run",
                   "--reprocess", "failed")  # fmt: skip
    assert "Would collect 1 schools" in output


def test_it_syncs_schools_and_reports_changes(sim):
    output = _call("sync_schools", "--office", "I10")
    added = School.objects.filter(office_id="I10").count()
    assert f"{added} added, 0 changed" in output
    School.objects.filter(office_id="I10").update(name="renamed")
    output = _call("sync_schools", "--office", "I10")
    assert f"0 added, {added} changed" in output


def test_it_refuses_an_unknown_office_when_syncing(sim):
    with pytest.raises(CommandError, match="unknown office code"):
        _call("sync_schools", "--office", "Q99")


def _status(*args):
    done = subprocess.run(
        [sys.executable, "manage.py", "collection_status", *args],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_it_reports_status_with_exit_codes(sim):
    _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--sync")
    run = CollectionRun.objects.get()
    code, output = _status("--run", str(run.pk))
    assert code == 0, output
    assert "Complete." in output
    assert "I10" in output

    unit = run.units.first()
    SchoolRun.objects.filter(pk=unit.pk).update(
        status=UnitStatus.FAILED, last_error_code="ERROR-300", last_error="required value missing"
    )
    code, output = _status("--level", "middle", "--week", "2026-11-18")
    assert code == 4, output
    assert "ERROR-300 required value missing" in output

    SchoolRun.objects.filter(pk=unit.pk).update(status=UnitStatus.DEFERRED)
    code, output = _status("--run", str(run.pk))
    assert code == 3, output
    assert "still open" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "999999"], "no collection run with id 999999"),
        (["--level", "middle", "--week", "soon"], "--week 'soon' is not a date; use YYYY-MM-DD"),
        ([], "give --run ID, or --level L with --week YYYY-MM-DD"),
        (["--level", "high"], "give --run ID, or --level L with --week YYYY-MM-DD"),
        (["--run", "1", "--level", "high"], "give either --run, or --level with --week"),
    ],
)
def test_it_refuses_bad_status_queries(args, message):
    code, output = _status(*args)
    assert code == 1
    assert f"CommandError: {message}" in output.splitlines(), output


def test_pipeline_refuses_a_bad_window():
    with pytest.raises(pipeline.PipelineError):
        pipeline.validate_window(FRIDAY, MONDAY)
