import os

import pytest


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each pytest session its own test database.

    Several sessions on one machine (a developer's run beside CI, or parallel agents) would
    otherwise share ``test_<name>``, and each one drops it on start.
    """
    from pytest_django.fixtures import _set_suffix_to_test_databases

    _set_suffix_to_test_databases(os.environ.get("TEST_DB_SUFFIX") or f"p{os.getpid()}")
