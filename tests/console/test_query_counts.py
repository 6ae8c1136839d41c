"""No page of the console costs a query per row: the query count of each main page is the
same with one row as with many (the bench, bench/bench_console.py, times them at a year)."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from collector import console
from collector.admin_coverage import missing_in_week_sql
from collector.ledger import RunLevel, RunStatus, UnitStatus
from tests.console.conftest import LAST_WEEK, THIS_WEEK, make_run, make_unit
from tests.storage.factories import make_school, postgres

pytestmark = pytest.mark.django_db


def _queries(client, url) -> int:
    client.get(url)  # the session, content types: whatever the first request caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def _grow(schools, runs: int):
    """``runs`` more runs (open and closed) over every school, with failed and deferred units."""
    for n in range(runs):
        status = RunStatus.RUNNING if n % 2 else RunStatus.PARTIAL
        week = THIS_WEEK - datetime.timedelta(weeks=n % 3)
        run = make_run(status=status, week=week, minutes_ago=100 + n)
        for i, school in enumerate(schools.values()):
            state = [UnitStatus.DONE, UnitStatus.FAILED, UnitStatus.DEFERRED, UnitStatus.PENDING]
            make_unit(run, school, state[(i + n) % 4], last_error_code=f"ERROR-{500 + i % 2}")


PAGES = [
    "/admin/collector/collectionrun/",
    "/admin/collector/collectionrun/?status__exact=running",
    "/admin/collector/schoolrun/",
    "/admin/collector/schoolrun/?status__exact=failed",
    f"/admin/collector/schoolrun/?latest_for_week={THIS_WEEK}",
    "/admin/collector/school/",
    f"/admin/collector/school/?missing_in_week={LAST_WEEK}",
    f"/admin/collector/school/?missing_in_week={THIS_WEEK}&level__exact=middle",
    "/admin/collector/coverage/",
    "/admin/collector/coverage/?level=middle",
    "/admin/collector/coverage/?level=middle&office=B10",
    f"/admin/collector/completeness/?week={THIS_WEEK}",
    "/admin/collector/changes/",
    "/metrics",
]


@pytest.mark.parametrize("url", PAGES)
def test_a_pages_query_count_does_not_grow_with_its_rows(admin_client, schools, url):
    _grow(schools, 2)  # an open and a closed run: every kind of query the page makes
    few = _queries(admin_client, url)
    more = {f"X{n}": make_school(f"70300{n:02d}", "B10", "중학교") for n in range(12)}
    _grow({**schools, **more}, 10)
    assert _queries(admin_client, url) == few


def test_a_run_page_costs_the_same_whatever_its_size(admin_client, schools):
    small = make_run()
    make_unit(small, schools["M1"], UnitStatus.FAILED)
    big = make_run()
    for school in schools.values():
        make_unit(big, school, UnitStatus.FAILED)
    url = "/admin/collector/collectionrun/{}/change/"
    assert _queries(admin_client, url.format(big.pk)) == _queries(
        admin_client, url.format(small.pk)
    )


def test_an_unfiltered_ledger_is_counted_from_the_planners_estimate(schools):
    from collector.admin_console import EstimatedCountPaginator
    from collector.ledger import SchoolRun

    run = make_run()
    for school in schools.values():
        make_unit(run, school, UnitStatus.DONE)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE collector_schoolrun")
        # Pretend the table is a year of history: the list must not count it row by row.
        cursor.execute(
            "UPDATE pg_class SET reltuples = 650000 WHERE oid = 'collector_schoolrun'::regclass"
        )
    everything = EstimatedCountPaginator(SchoolRun.objects.order_by("-pk"), 100)
    assert everything.count == 650_000
    filtered = EstimatedCountPaginator(SchoolRun.objects.filter(run=run).order_by("-pk"), 100)
    assert filtered.count == len(schools)


def _plan(sql: str, params) -> list[dict]:
    """Every node of the plan PostgreSQL runs for ``sql``, with its estimated and actual rows."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        found, todo = [], [cursor.fetchone()[0][0]["Plan"]]
    while todo:
        node = todo.pop()
        found.append(node)
        todo += node.get("Plans", [])
    return found


@pytest.mark.skipif(not postgres(), reason="the table of latest units is PostgreSQL's")
@pytest.mark.parametrize(
    "level, office", [(RunLevel.ALL, None), (RunLevel.MIDDLE, None), (RunLevel.MIDDLE, "B10")]
)
def test_the_latest_units_of_weeks_come_from_their_table_not_from_the_ledger(
    schools, level, office
):
    """What made coverage, "latest of a week" and "missing" slow at a year of history: every
    covering run's units read and sorted per week (36,000 a national week). They read the
    weeks' rows of ``LatestUnit`` instead, which ANALYZE estimates well."""
    _grow(schools, 6)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    weeks = [LAST_WEEK - datetime.timedelta(weeks=1), LAST_WEEK, THIS_WEEK]
    sql, params = console.latest_states_sql(console.week_runs(weeks, level), level, office)
    for query, args in [(sql, params), missing_in_week_sql(THIS_WEEK)]:
        nodes = _plan(query, args)
        read = {node["Relation Name"] for node in nodes if "Relation Name" in node}
        assert read <= {"collector_latestunit", "collector_school"}, query
        for node in nodes:
            if node.get("Relation Name") == "collector_latestunit" and node["Actual Rows"]:
                estimate, actual = node["Plan Rows"], node["Actual Rows"] * node["Actual Loops"]
                assert actual / 3 <= estimate <= actual * 3, node
