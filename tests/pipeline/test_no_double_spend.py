"""A school-window an open run is collecting is not collected again by a new run (its
requests would be spent twice) unless asked for with --force."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from collector import pipeline
from collector.ledger import CollectionRun, UnitStatus

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget")]

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)
THREE_WEEKS = (datetime.date(2026, 11, 9), datetime.date(2026, 11, 29))
BACKFILL = ["backfill_timetables", "--level", "middle", "--office", "I10"]


@pytest.fixture
def sim(neis_sim, settings):
    settings.NEIS_BASE_URL, settings.NEIS_API_KEY = neis_sim.url, neis_sim.key
    pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"]).delete()  # sync the registry
    return neis_sim


def _call(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _requests(sim) -> int:
    return sim.control.stats()["requests"]


def test_a_second_backfill_of_an_open_window_spends_no_request(sim):
    window = ["--from", str(THREE_WEEKS[0]), "--to", str(THREE_WEEKS[1])]
    _call(*BACKFILL, *window)  # queued for workers: the run stays open
    first = CollectionRun.objects.get()
    before = _requests(sim)

    with pytest.raises(CommandError) as refused:
        _call(*BACKFILL, *window, "--sync")
    assert str(refused.value).endswith(
        f"{first.units_total} schools skipped: being collected for this window by open run "
        f"{first.pk} (a run spends no request twice; --force collects them again)"
    )
    # A week inside the open run's window is covered by it too.
    with pytest.raises(CommandError, match="being collected for this window by open run"):
        _call(*BACKFILL, "--from", str(MONDAY), "--to", str(FRIDAY), "--sync")
    assert _requests(sim) == before
    assert CollectionRun.objects.count() == 1

    dry = _call(*BACKFILL, *window, "--dry-run")
    assert f"Would collect 0 schools (0 skipped as already collected; {first.units_total}" in dry
    assert "Estimated: 0 NEIS requests" in dry


def test_the_schools_an_open_run_settled_or_does_not_cover_are_collected(sim):
    first = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    done = first.units.order_by("pk")[0]
    done.claim("t")
    done.finish(UnitStatus.NO_DATA)
    # A wider window is not covered by the open run's week: every school is collected.
    wider = pipeline.create_run("middle", *THREE_WEEKS, offices=["I10"])
    assert wider.units_total == first.units_total and wider.busy.schools == 0
    wider.delete()
    # The same window: only what the open run no longer holds open (reprocess all).
    again = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    assert again.units_total == 1 and again.units.get().school_id == done.school_id
    assert (again.busy.schools, again.busy.runs) == (first.units_total - 1, (first.pk,))


def test_force_collects_an_open_windows_schools_again(sim):
    window = ["--from", str(MONDAY), "--to", str(FRIDAY)]
    _call(*BACKFILL, *window)
    first = CollectionRun.objects.get()
    output = _call(*BACKFILL, *window, "--sync", "--force", "--reprocess", "all")
    second = CollectionRun.objects.exclude(pk=first.pk).get()
    assert second.units_total == first.units_total
    assert second.status == "done" and "skipped: being collected" not in output
