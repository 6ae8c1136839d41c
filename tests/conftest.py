import os

import pytest

from tests.loopback import LOOPBACK_NEIS_URL

pytest_plugins = ["tests.loopback_plugin"]


def pytest_configure(config):
    # A bare `pytest` must not point the client at the real hub. pytest-django has loaded the
    # settings before any conftest, so the default goes into both the loaded settings and the
    # environment that child processes inherit.
    if "NEIS_BASE_URL" not in os.environ:
        from django.conf import settings

        os.environ["NEIS_BASE_URL"] = settings.NEIS_BASE_URL = LOOPBACK_NEIS_URL


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each pytest session its own test database.

    Several sessions on one machine (a developer's run beside CI, or parallel agents) would
    otherwise share ``test_<name>``, and each one drops it on start.
    """
    from pytest_django.fixtures import _set_suffix_to_test_databases

    _set_suffix_to_test_databases(os.environ.get("TEST_DB_SUFFIX") or f"p{os.getpid()}")


@pytest.fixture(autouse=True)
def seeded_offices(request):
    """The offices migration 0002 seeds, in every test that uses the database.

    The office table is the one list of offices, and the pipeline refuses any other code.
    Transactional tests empty every table after they run, seeds included, so put them back.
    """
    if request.node.get_closest_marker("django_db") is None:
        return
    import importlib

    from django.apps import apps

    seed = importlib.import_module("collector.migrations.0002_offices")
    seed.add_offices(apps, None)


@pytest.fixture
def local_budget(settings, tmp_path):
    """The request budget in a lock file of this test's own, not in a shared Redis."""
    settings.NEIS_LIMITER_URL = ""
    settings.VAR_DIR = tmp_path


@pytest.fixture
def fresh_caps():
    """Each key's planned budget read afresh from the database: ``quota.planned_caps`` keeps
    it for a minute per process, which would carry one test's caps into the next."""
    from collector import quota

    quota.forget_cached_caps()
    yield
    quota.forget_cached_caps()
