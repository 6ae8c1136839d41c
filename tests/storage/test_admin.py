"""Admin: schools and lessons searchable and filterable, lessons read-only, no full scans."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from collector.models import Lesson
from collector.storage import store_lessons
from tests.storage.factories import MONDAY, SUNDAY, make_school, postgres, week

pytestmark = pytest.mark.django_db

LESSONS = "/admin/collector/lesson/"
LESSON_PAGES = [
    LESSONS,
    LESSONS + "?q=7010057",
    LESSONS + "?q=학교7010",
    LESSONS + "?school__office__code__exact=B10",
    LESSONS + "?school__level__exact=elementary",
    LESSONS + "?date__gte=2025-04-07&date__lt=2025-04-08",
    LESSONS + "?p=2",
]


@pytest.fixture
def lessons(db):
    for code, office in (("7010057", "B10"), ("9010001", "C10")):
        school = make_school(code, office)
        store_lessons(school, MONDAY, SUNDAY, week(school, days=5, classes=6))
    return Lesson.objects.order_by("pk")


@pytest.mark.parametrize("page", LESSON_PAGES)
def test_it_lists_searches_and_filters_lessons(admin_client, lessons, page):
    response = admin_client.get(page)
    assert response.status_code == 200
    if "q=" in page or "office" in page:
        assert b"9010001" not in response.content
        assert b"7010057" in response.content


def test_it_shows_a_lesson_read_only(admin_client, lessons):
    pk, grade = lessons.values_list("pk", "grade").first()
    response = admin_client.get(f"{LESSONS}{pk}/change/")
    assert response.status_code == 200
    assert b'name="_save"' not in response.content
    assert admin_client.get(LESSONS + "add/").status_code == 403
    assert admin_client.post(f"{LESSONS}{pk}/delete/").status_code == 403
    assert admin_client.post(f"{LESSONS}{pk}/change/", {"grade": 9}).status_code == 403
    assert lessons.get(pk=pk).grade == grade


@pytest.mark.parametrize(
    "page",
    [
        "/admin/collector/school/",
        "/admin/collector/school/?q=7010",
        "/admin/collector/school/?office__code__exact=C10&level__exact=elementary&active__exact=1",
        "/admin/collector/office/",
        "/admin/collector/subject/?q=수학",
    ],
)
def test_it_lists_schools_offices_and_subjects(admin_client, lessons, page):
    assert admin_client.get(page).status_code == 200


def lesson_queries(admin_client, pages) -> list[tuple[str, int | None]]:
    """(SQL, matches counted on that page) of every query that reads lessons."""
    queries = []
    for page in pages:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(page)
        assert response.status_code == 200
        cl = response.context.get("cl")
        count = cl.result_count if cl else None
        queries += [(q["sql"], count) for q in captured if '"collector_lesson"' in q["sql"]]
    return queries


def test_it_never_reads_lessons_without_a_limit(admin_client, lessons):
    pk = lessons.first().pk
    queries = lesson_queries(admin_client, [*LESSON_PAGES, f"{LESSONS}{pk}/change/"])
    assert queries
    # Admin fetches a result unsliced only when it has counted one page or less of it.
    unlimited = [sql for sql, count in queries if "LIMIT" not in sql and not count <= 100]
    assert not unlimited


def test_it_caps_the_lesson_count(admin_client, lessons, monkeypatch):
    monkeypatch.setattr("collector.admin.LessonPaginator.limit", 150)
    response = admin_client.get(LESSONS)
    assert response.context["cl"].result_count == 150 < lessons.count()


@pytest.mark.skipif(not postgres(), reason="PostgreSQL plans")
def test_it_has_an_index_path_for_every_lesson_query(admin_client, lessons):
    pk = lessons.first().pk
    queries = lesson_queries(admin_client, [*LESSON_PAGES, f"{LESSONS}{pk}/change/"])
    with connection.cursor() as cursor:
        # With sequential scans priced out, a plan that still has one has no other way.
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql, _ in queries:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on collector_lesson" not in plan, (sql, plan)
