"""A weekly re-run of weeks NEIS has not changed costs no database write."""

from __future__ import annotations

import datetime

import pytest

from collector import pipeline, quota
from collector.models import LessonChange, WindowDigest
from tests.pipeline.truth import expected_lessons, stored_lessons
from tests.storage.factories import row_versions

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget")]

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)


@pytest.fixture
def sim(neis_sim, settings):
    settings.NEIS_BASE_URL = neis_sim.url
    settings.NEIS_API_KEY = neis_sim.key
    return neis_sim


def _collect():
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    return pipeline.run_in_process(run)


def test_it_skips_every_unchanged_school_window_on_a_rerun(sim):
    first = _collect()
    assert first.rows_inserted > 0
    versions, history = row_versions(), LessonChange.objects.count()
    second = _collect()

    assert second.status == "done"
    assert (second.rows_inserted, second.rows_updated, second.rows_removed) == (0, 0, 0)
    assert second.rows_unchanged == first.rows_inserted
    assert row_versions() == versions  # not one lesson rewritten
    assert LessonChange.objects.count() == history
    assert WindowDigest.objects.count() == first.units_done


def test_it_merges_a_window_neis_revised_since(sim):
    codes = None
    first = _collect()
    codes = list(first.units.values_list("school__code", flat=True))
    later = sim.control.now() + datetime.timedelta(days=3)  # past the week's revisions
    sim.control.set_clock(later)
    second = _collect()
    expected = expected_lessons(sim.world, codes, MONDAY, FRIDAY, later)
    assert stored_lessons(codes, MONDAY, FRIDAY) == expected
    assert second.rows_updated + second.rows_inserted + second.rows_removed > 0


def _unit_counts(run):
    fields = ("school_id", "status", "pages", "rows_fetched", "list_total_count", "rows_missing")
    return sorted(run.units.values_list(*fields))


@pytest.fixture
def conversions(monkeypatch):
    """How many rows were converted into records (``client._LessonsOf``: a page at a time,
    or row by row where a page is not all records) since the test began."""
    from collector.neis.client import _LessonsOf

    seen = []
    convert, convert_page = _LessonsOf.__call__, _LessonsOf.page

    def counting(self, row):
        seen.append(1)
        return convert(self, row)

    def counting_page(self, page):
        records = convert_page(self, page)
        if records is not None:  # else each row is converted, and counted, one by one
            seen.extend([1] * len(page))
        return records

    monkeypatch.setattr(_LessonsOf, "__call__", counting)
    monkeypatch.setattr(_LessonsOf, "page", counting_page)
    return seen


def test_it_converts_no_row_of_an_answer_it_merged_before(sim, conversions):
    first = _collect()
    assert conversions
    conversions.clear()
    second = _collect()
    assert conversions == []  # a hash and one look per school: no row became a record
    assert _unit_counts(second) == _unit_counts(first)
    assert (second.rows_fetched, second.rows_unchanged) == (first.rows_fetched, first.rows_inserted)


def test_it_converts_again_once_the_conversion_code_changed(sim, conversions, monkeypatch):
    from collector.neis import client

    first = _collect()
    versions = row_versions()
    monkeypatch.setattr(client, "conversion_fingerprint", lambda: "another version")
    conversions.clear()
    second = _collect()
    assert len(conversions) == first.rows_fetched  # every row converted again, and compared
    assert second.rows_unchanged == first.rows_inserted
    assert row_versions() == versions  # the same records: nothing written
    assert _unit_counts(second) == _unit_counts(first)


def test_it_records_nothing_of_a_known_answer_once_another_attempt_took_the_unit(sim, monkeypatch):
    from collector.ledger import SchoolRun

    _collect()
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    unit = run.units.order_by("pk").first()
    known = pipeline.known_answer

    def taken_over(*args):  # another attempt claims the unit while this one fetched
        SchoolRun.objects.filter(pk=unit.pk).update(claim_token="another attempt")
        return known(*args)

    monkeypatch.setattr(pipeline, "known_answer", taken_over)
    assert pipeline.collect_unit(unit.pk).status == "superseded"
    unit.refresh_from_db()
    assert (unit.status, unit.claim_token) == ("running", "another attempt")
    assert (unit.pages, unit.rows_fetched, unit.rows_unchanged) == (0, 0, 0)


def test_it_retries_an_answer_whose_rows_json_refuses_once_they_are_read(sim, monkeypatch):
    """A page is peeked at while paging; one whose rows json refuses raises when the
    pipeline reads the records of an answer it does not know, and the school is retried."""
    from collector.ledger import SchoolRun
    from collector.models import Lesson
    from collector.neis.client import NeisClient
    from collector.neis.errors import NeisTransientError

    timetable = NeisClient.timetable

    def garbled(self, *args, peek):
        result = timetable(self, *args, peek=True)  # (a window answered before: peeked)

        def refused():
            raise NeisTransientError("BAD-BODY", "misTimetable page 1: HTTP 200, invalid JSON")

        result._unconverted[0][1][0] = refused  # as FetchResult holds a peeked page
        return result

    monkeypatch.setattr(NeisClient, "timetable", garbled)
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    unit = run.units.order_by("pk").first()
    with pytest.raises(pipeline.RetryLater):
        pipeline.collect_unit(unit.pk)
    unit = SchoolRun.objects.get(pk=unit.pk)
    assert (unit.status, unit.retries, unit.last_error_code) == ("pending", 1, "BAD-BODY")
    assert not Lesson.objects.exists()


def test_it_spends_a_handful_of_statements_on_an_unchanged_school_window(sim):
    """Issue 16: an unchanged school-week costs no database write but the unit's own."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _collect()
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    unit = run.units.order_by("pk").first()
    # The keys' planned caps are read once a minute per process (quota.planned_caps), not per
    # unit: read them now, so that a slow machine's minute does not end inside the count.
    quota.forget_cached_caps()
    quota.planned_caps()
    with CaptureQueriesContext(connection) as queries:
        assert pipeline.collect_unit(unit.pk).status == "done"
    statements = [query["sql"].split()[0].upper() for query in queries.captured_queries]
    work = [verb for verb in statements if verb not in ("SAVEPOINT", "RELEASE")]
    # The unit claimed and read with its school and run; the school's lock, its window
    # digest; the unit's counts, its weeks counted already; a unit of the run still open.
    # No lesson, digest or history written, and no write to the run.
    assert work == ["UPDATE", "SELECT", "SELECT", "UPDATE", "SELECT", "SELECT"], [
        query["sql"].strip()[:70] for query in queries.captured_queries
    ]


def test_a_first_load_decodes_its_pages_as_they_come_and_a_rerun_peeks(sim, monkeypatch):
    """A unit whose window has no digest yet will be converted whatever NEIS answers: its
    pages are decoded as they come (``SchoolRun.take`` says ``window_answered``), not first
    peeked at; the units of a re-run of the same window peek, as the digest may match."""
    from django.db import connection

    from collector.ledger import SchoolRun
    from collector.neis import parse

    if connection.vendor != "postgresql":
        pytest.skip("only take's one statement on PostgreSQL finds the window's digest")
    peeks = []
    peek = parse.peek_envelope
    monkeypatch.setattr(parse, "peek_envelope", lambda *a, **k: peeks.append(1) or peek(*a, **k))
    first = _collect()
    assert first.rows_inserted > 0 and not peeks
    second = _collect()
    assert len(peeks) >= second.units_done > 0
    assert second.rows_unchanged == first.rows_inserted

    # Another window of the same schools has no digest of its own.
    run = pipeline.create_run(
        "middle", MONDAY, FRIDAY - datetime.timedelta(days=1), offices=["I10"]
    )
    unit, claimed = SchoolRun.take(run.units.order_by("pk").first().pk)
    assert claimed and unit.window_answered is False
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    unit, claimed = SchoolRun.take(run.units.order_by("pk").first().pk)
    assert claimed and unit.window_answered is True


@pytest.mark.django_db(transaction=True)  # (each unit's transaction its own, not a savepoint)
def test_a_first_load_stores_in_one_transaction_without_savepoints_of_its_own(sim, monkeypatch):
    """The pipeline's store and recount take no savepoint inside the unit's transaction (two
    round trips each), and a failure inside the store still rolls back everything the unit
    wrote: its lessons, its digest and its counts."""
    from django.db import OperationalError, connection
    from django.test.utils import CaptureQueriesContext

    from collector import storage
    from collector.ledger import SchoolRun
    from collector.models import Lesson

    storage.ensure_partitions(MONDAY, FRIDAY)  # (created and remembered once committed)
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    first, second = run.units.order_by("pk")[:2]
    quota.forget_cached_caps()
    quota.planned_caps()
    with CaptureQueriesContext(connection) as queries:
        assert pipeline.collect_unit(first.pk).status == "done"
    statements = [query["sql"][:60] for query in queries.captured_queries]
    assert not [sql for sql in statements if sql.startswith("SAVEPOINT")], statements
    # The window had no digest when the unit was taken: none is looked for (nor the school's
    # lock taken for the look; the store takes it).
    assert not [sql for sql in statements if "pg_advisory_xact_lock" in sql], statements
    assert not [sql for sql in statements if "FROM collector_windowdigest d" in sql], statements
    assert Lesson.objects.filter(school_id=first.school_id).exists()

    def database_away(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(storage, "_remember_digest", database_away)  # after the COPY
    with pytest.raises(OperationalError):
        pipeline.collect_unit(second.pk)
    assert not Lesson.objects.filter(school_id=second.school_id).exists()
    assert not WindowDigest.objects.filter(school_id=second.school_id).exists()
    unit = SchoolRun.objects.get(pk=second.pk)
    assert (unit.status, unit.rows_fetched) == ("running", 0)  # left to the watchdog
