"""What ``create_run`` refuses, for every caller (commands, tasks, admin): before any request
is made or any row written, and never as a "done" run with no school."""

from __future__ import annotations

import datetime

import pytest

from collector import pipeline
from collector.ledger import CollectionRun, SchoolRun
from collector.tasks import start_run
from tests.storage.factories import MONDAY, SUNDAY, make_school

pytestmark = pytest.mark.django_db


class NoRequests:
    """A NEIS client that fails the test if the pipeline asks it anything."""

    keyless = False

    def schools(self, **query):
        raise AssertionError(f"a request was made: schoolInfo {query}")

    def timetable(self, *args, **options):
        raise AssertionError(f"a request was made: timetable {args}")


@pytest.fixture
def schools():
    make_school("7010001", "B10", "중학교")
    make_school("7010002", "B10", "초등학교")
    make_school("7530001", "J10", "중학교")


def _refused(message, level="middle", **options):
    options.setdefault("client", NoRequests())
    with pytest.raises(pipeline.PipelineError) as caught:
        pipeline.create_run(level, MONDAY, SUNDAY, **options)
    assert str(caught.value) == message
    assert CollectionRun.objects.count() == SchoolRun.objects.count() == 0


def test_it_refuses_an_unknown_office_without_asking_neis(schools):
    known = (
        "B10, C10, D10, E10, F10, G10, H10, I10, J10, K10, M10, N10, P10, Q10, R10, S10, T10, V10"
    )
    _refused(
        f"unknown office code(s): B1O, X99; known: {known}",
        offices=["X99", "B1O"],
        refresh_registry=True,
    )


def test_it_refuses_a_school_of_another_level(schools):
    _refused(
        "school(s) not of level middle: 7010002 is elementary",
        school_codes=["7010001", "7010002"],
    )


def test_it_refuses_an_unknown_school(schools):
    _refused(
        "unknown school code(s): 9999999 (run sync_schools if the registry is out of date)",
        school_codes=["9999999"],
    )


def test_it_refuses_a_school_outside_the_offices_asked_for(schools):
    _refused(
        "school(s) outside office(s) B10: 7530001",
        offices=["B10"],
        school_codes=["7530001"],
    )


def test_it_refuses_a_run_that_would_select_no_school(schools):
    _refused(
        "nothing to collect: the registry has no active special schools of B10 (run sync_schools)",
        level="special",
        offices=["B10"],
        refresh_registry=False,
    )


def test_it_refuses_a_run_with_every_school_already_collected(schools):
    first = pipeline.create_run("middle", MONDAY, SUNDAY, offices=["B10"], client=NoRequests())
    first.units.update(status="done")
    with pytest.raises(pipeline.PipelineError) as caught:
        pipeline.create_run(
            "middle", MONDAY, SUNDAY, offices=["B10"], reprocess=pipeline.Reprocess.NONE
        )
    assert str(caught.value) == (
        "nothing to collect: no active middle schools of B10 is left to collect for this "
        "window with --reprocess none (use --reprocess all to collect them again)"
    )
    assert CollectionRun.objects.count() == 1


@pytest.mark.parametrize(
    ("level", "days", "message"),
    [
        ("college", 7, "unknown level 'college'; choose one of all, elementary, middle, "
         "high, special"),
        ("middle", 63, "the window is 63 days long; the maximum is 62 (NEIS_MAX_WINDOW_DAYS); "
         "split it into several runs"),
    ],
)  # fmt: skip
def test_it_refuses_a_bad_level_or_window(schools, level, days, message):
    with pytest.raises(pipeline.PipelineError) as caught:
        pipeline.create_run(
            level, MONDAY, MONDAY + datetime.timedelta(days=days - 1), client=NoRequests()
        )
    assert str(caught.value) == message
    assert CollectionRun.objects.count() == 0


def test_it_refuses_a_typo_sent_through_the_start_run_task(schools):
    """What `celery call collector.start_run` or an edited schedule would send."""
    result = start_run.apply(args=["middle", str(MONDAY), str(SUNDAY)], kwargs={"offices": ["B01"]})
    assert result.failed()
    assert isinstance(result.result, pipeline.PipelineError)
    assert str(result.result).startswith("unknown office code(s): B01; known: B10")
    assert CollectionRun.objects.count() == 0
