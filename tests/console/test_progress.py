"""Live truth: an open run's counts come from the ledger at every moment, a closed run's from
its stored counts, and the pages that show an open run refresh themselves."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from collector import console
from collector.ledger import CollectionRun, RunStatus, SchoolRun, UnitStatus
from tests.console.conftest import make_run, make_unit

pytestmark = pytest.mark.django_db
RUNS = "/admin/collector/collectionrun/"


def _row(page: str, run_id: int) -> str:
    rows = re.findall(r"<tr>.*?</tr>", page, re.S)
    [row] = [r for r in rows if f"/collectionrun/{run_id}/change/" in r]
    return row


def test_it_counts_an_open_run_from_the_ledger_not_its_stored_fields(open_run):
    run, _ = open_run
    assert (run.units_done, run.units_failed) == (0, 0)  # written only at close
    progress = console.progress([run])[run.pk]
    assert progress.live
    assert {s["status"]: s["n"] for s in progress.segments()} == {
        "done": 2,
        "no_data": 1,
        "deferred": 1,
        "failed": 1,
        "running": 1,
        "pending": 2,
    }
    assert (progress.total, progress.settled, progress.open) == (8, 4, 3)
    assert progress.counts["rows_fetched"] == 2000 and progress.counts["requests"] == 5


def test_it_shows_live_counts_in_the_run_list(admin_client, open_run):
    run, units = open_run
    page = admin_client.get(RUNS).content.decode()
    cells = re.findall(r"<td[^>]*>(.*?)</td>", _row(page, run.pk), re.S)
    # status, progress (with the counts by state), level, window, trigger, lessons, requests
    assert "4 / 8 (live)" in cells[2]
    assert "2 done · 1 no data · 1 deferred · 1 failed · 1 running · 2 pending" in cells[2]
    assert cells[6:8] == ["2,000", "5"]
    # A unit finishing changes the list at the next look, with nothing written to the run.
    SchoolRun.objects.filter(pk=units["running"].pk).update(
        status=UnitStatus.DONE, rows_fetched=1000
    )
    page = admin_client.get(RUNS).content.decode()
    cells = re.findall(r"<td[^>]*>(.*?)</td>", _row(page, run.pk), re.S)
    assert "3 done ·" in cells[2] and cells[6] == "3,000"


def test_it_shows_a_closed_runs_stored_counts(admin_client, schools):
    run = make_run(
        status=RunStatus.PARTIAL,
        units_total=3,
        units_done=2,
        units_failed=1,
        rows_fetched=12345,
        requests=7,
    )
    # The ledger disagrees (say, rows were archived): a closed run shows what it closed with.
    make_unit(run, schools["M1"], UnitStatus.DONE)
    page = admin_client.get(RUNS).content.decode()
    cells = re.findall(r"<td[^>]*>(.*?)</td>", _row(page, run.pk), re.S)
    assert "3 / 3<" in cells[2] and "(live)" not in cells[2]
    assert ">2 done · 1 failed<" in cells[2]
    assert cells[6:8] == ["12,345", "7"]


def test_it_counts_every_open_run_of_a_page_in_one_query(admin_client, schools):
    for n in range(5):
        run = make_run(minutes_ago=n)
        make_unit(run, schools["M1"], UnitStatus.DONE)
    runs = list(CollectionRun.objects.all())
    with CaptureQueriesContext(connection) as queries:
        console.progress(runs)
    assert len(queries) == 1


def test_it_shows_progress_elapsed_and_an_estimated_finish_on_the_run_page(admin_client, open_run):
    run, _ = open_run
    response = admin_client.get(f"{RUNS}{run.pk}/change/")
    page = re.sub(r"\s+", " ", response.content.decode())
    assert "4 of 8 schools settled (50%)" in page
    assert "2,000 lessons so far" in page and "5 NEIS requests" in page
    assert "running for 30 min" in page
    # 4 settled in 30 minutes, 3 open: about 22 minutes more, from 10:00 KST.
    assert re.search(r"Expected to finish about 2026-11-21 10:2[23] KST \(in 22 min", page)
    assert 'class="seg done" style="width: 25.00%"' in page
    assert "KST" in page and 'Updated <span id="console-age">0</span> s ago' in page
    assert '<meta http-equiv="refresh" content="15">' in page


def test_it_does_not_refresh_a_page_of_closed_runs(admin_client, schools):
    run = make_run(status=RunStatus.DONE, units_total=1, units_done=1)
    assert b'http-equiv="refresh"' not in admin_client.get(RUNS).content
    assert b'http-equiv="refresh"' not in admin_client.get(f"{RUNS}{run.pk}/change/").content


def test_it_refreshes_the_run_list_while_a_run_is_open(admin_client, open_run):
    assert b'http-equiv="refresh"' in admin_client.get(RUNS).content
