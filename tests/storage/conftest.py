"""Fixtures for the storage tests, and the ``method`` parameter.

Every lesson test takes ``method`` and so runs once per write path the database has: on
PostgreSQL both ``copy`` and ``orm``, on SQLite ``orm`` only. The suite runs on both databases
(bin/test runs tests/storage a second time on SQLite).
"""

from __future__ import annotations

import pytest

from collector.models import School
from tests.storage.factories import make_school, postgres


def pytest_generate_tests(metafunc):
    if "method" in metafunc.fixturenames:
        metafunc.parametrize("method", ["copy", "orm"] if postgres() else ["orm"])


@pytest.fixture
def school(db) -> School:
    return make_school()
