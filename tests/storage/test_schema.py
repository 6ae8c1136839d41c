"""Models and migrations agree, and PostgreSQL gets the partitioned lesson table."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from tests.storage.factories import requires_postgres

pytestmark = pytest.mark.django_db


def test_it_has_migrations_for_every_model_change():
    # Exits non-zero (SystemExit) when a model differs from its migrations.
    call_command("makemigrations", "collector", "--check", "--dry-run", verbosity=0)


@requires_postgres
def test_it_partitions_lessons_by_month_with_the_natural_key_unique():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_partkeydef('collector_lesson'::regclass), "
            "pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'collector_lesson_natural_key'"
        )
        partition_key, natural_key = cursor.fetchone()
    assert partition_key == "RANGE (date)"
    assert natural_key == (
        "UNIQUE (school_id, date, grade, class_name, period, day_night, track, department, "
        "course, classroom, subject_id)"
    )
