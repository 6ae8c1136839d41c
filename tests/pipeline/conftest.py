import pytest


@pytest.fixture
def local_budget(settings, tmp_path):
    """The request budget in a lock file of this test's own, not in a shared Redis."""
    settings.NEIS_LIMITER_URL = ""
    settings.VAR_DIR = tmp_path
