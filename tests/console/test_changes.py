"""Change history in admin (issue 14): a run's "N lessons changed in M schools", a school's
week with its changed cells and their history, and the most changed schools of a week."""

from __future__ import annotations

import dataclasses
import datetime
import html
import re

import pytest
from django.contrib.auth.models import Permission

from collector import storage
from collector.ledger import RunStatus, UnitStatus
from tests.console.conftest import make_run, make_unit
from tests.storage.factories import lesson, make_school

pytestmark = pytest.mark.django_db
CHANGES = "/admin/collector/changes/"
RUNS = "/admin/collector/collectionrun/"
WEEK = datetime.date(2025, 4, 7)  # tests.storage.factories.MONDAY
SUNDAY = WEEK + datetime.timedelta(days=6)


def _text(response) -> str:
    assert response.status_code == 200
    page = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(page))


def _timetable(school):
    return [
        lesson(school, day, 1, "1", period, subject)
        for day in range(5)
        for period, subject in ((1, "-국어"), (2, "-수학"), (3, "영어"))
    ]


@pytest.fixture
def changed(db):
    """Two middle schools of B10 stored by run 1, then run 2 saw M1's Tuesday period 2 swap
    수학 -> 과학 and Friday period 3 vanish, and M2 unchanged."""
    m1 = make_school("7010001", "B10", "중학교")
    m2 = make_school("7010002", "B10", "중학교")
    first = make_run(week=WEEK, status=RunStatus.DONE, minutes_ago=120)
    second = make_run(week=WEEK, status=RunStatus.DONE, minutes_ago=60)
    for school in (m1, m2):
        unit = make_unit(first, school, UnitStatus.DONE)
        observer = storage.Observer(run_id=first.pk, unit_id=unit.pk)
        storage.store_lessons(school, WEEK, SUNDAY, _timetable(school), history=observer)
    records = _timetable(m1)
    records = [
        dataclasses.replace(r, subject_raw="과학", subject="과학")
        if (r.date.weekday(), r.period) == (1, 2)
        else r
        for r in records
        if (r.date.weekday(), r.period) != (4, 3)
    ]
    for school, rows in ((m1, records), (m2, _timetable(m2))):
        unit = make_unit(second, school, UnitStatus.DONE)
        observer = storage.Observer(run_id=second.pk, unit_id=unit.pk)
        storage.store_lessons(school, WEEK, SUNDAY, rows, history=observer)
    return {"m1": m1, "m2": m2, "first": first, "second": second}


def test_a_run_says_how_many_lessons_changed_in_how_many_schools(admin_client, changed):
    text = _text(admin_client.get(f"{RUNS}{changed['second'].pk}/change/"))
    # The swap is one removal and one addition; the Friday lesson one removal.
    assert "3 lessons changed in 1 schools." in text
    assert "7010001 학교7010001 : 3 lessons" in text
    assert "7010002" not in text.split("lessons changed")[1]
    first = _text(admin_client.get(f"{RUNS}{changed['first'].pk}/change/"))
    assert "No lesson changed; 30 lessons stored for the first time." in first


def test_the_run_changes_page_counts_by_kind(admin_client, changed):
    text = _text(admin_client.get(f"{CHANGES}?run={changed['second'].pk}"))
    assert "added 1" in text and "removed 2" in text


def test_a_school_week_highlights_changed_cells_with_their_history(admin_client, changed):
    response = admin_client.get(f"{CHANGES}?school=7010001&week=2025-04-09")
    page = html.unescape(response.content.decode())
    cells = re.findall(r'<td class="changed">(.*?)</td>', page, re.S)
    # Tuesday period 2 (swapped) and Friday period 3 (removed).
    assert len(cells) == 2
    tuesday, friday = cells
    assert tuesday.startswith("과학")
    assert "removed: 수학 → —" in tuesday and "added: — → 과학" in tuesday
    assert "KST" in tuesday
    assert friday.startswith("<span") and "removed: 영어 → —" in friday
    text = _text(response)
    assert "3 changes recorded for this week's lessons" in text


def test_an_unchanged_school_week_has_no_highlight(admin_client, changed):
    page = admin_client.get(f"{CHANGES}?school=7010002&week=2025-04-07").content.decode()
    assert 'class="changed"' not in page and "국어" in page


def test_the_most_changed_view_ranks_schools_by_office_and_level(admin_client, changed):
    text = _text(admin_client.get(f"{CHANGES}?week=2025-04-07"))
    assert "B10 서울특별시교육청 — 3 lessons in 1 school" in text
    assert "7010001 학교7010001 (B10, middle): 3 lessons" in text
    empty = _text(admin_client.get(f"{CHANGES}?week=2025-04-14"))
    assert "No change recorded for this week." in empty


def test_the_change_pages_need_view_permission_on_the_ledger(client, changed, django_user_model):
    user = django_user_model.objects.create_user("clerk", is_staff=True)
    client.force_login(user)
    for url in (CHANGES, f"{CHANGES}?school=7010001", f"{CHANGES}?run={changed['first'].pk}"):
        assert client.get(url).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_schoolrun"))
    for url in (CHANGES, f"{CHANGES}?school=7010001", f"{CHANGES}?run={changed['first'].pk}"):
        assert client.get(url).status_code == 200


@pytest.mark.parametrize("query", ["school=nope", "run=abc", "run=999999", "week=<b>x</b>"])
def test_it_answers_unknown_values_with_a_message(admin_client, changed, query):
    response = admin_client.get(f"{CHANGES}?{query}")
    assert response.status_code == 200
    assert "<b>x</b>" not in response.content.decode()
