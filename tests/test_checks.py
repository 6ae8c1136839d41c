"""System checks refuse configurations that cannot work."""

import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from collector import checks
from tests.processes import ROOT, child_env

REAL_HUB = "https://open.neis.go.kr"


def _ids(messages):
    return [message.id for message in messages]


def test_it_passes_the_test_configuration():
    call_command("check", fail_level="ERROR")


@override_settings(CELERY_TIMEZONE="UTC")
def test_it_refuses_disagreeing_time_zones():
    assert _ids(checks.check_time_zones(None)) == ["collector.E001"]
    with pytest.raises(SystemCheckError, match="collector.E001"):
        call_command("check")


@override_settings(DEBUG=False)
def test_it_refuses_production_on_sqlite(monkeypatch, settings):
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.sqlite3")
    assert _ids(checks.check_production_database(None)) == ["collector.E002"]


@override_settings(DEBUG=False, NEIS_BASE_URL=REAL_HUB, NEIS_API_KEY="")
def test_it_refuses_the_real_hub_without_a_key_in_production():
    assert _ids(checks.check_neis_key(None)) == ["collector.E003"]


@override_settings(DEBUG=True, NEIS_BASE_URL=REAL_HUB, NEIS_API_KEY="")
def test_it_warns_about_the_real_hub_without_a_key_in_development():
    assert _ids(checks.check_neis_key(None)) == ["collector.W003"]


@override_settings(NEIS_BASE_URL="http://127.0.0.1:8080", NEIS_API_KEY="")
def test_it_allows_the_simulator_without_a_key():
    assert checks.check_neis_key(None) == []


KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("debug", "url", "key", "ids"),
    [
        (False, "http://neis.example.org", KEY, ["collector.E007"]),
        (True, "http://neis.example.org", KEY, ["collector.E007"]),
        (False, "http://127.0.0.1:8080", KEY, ["collector.E007"]),
        (False, "http://localhost:8080", KEY, ["collector.E007"]),
        (True, "http://127.0.0.1:8080", KEY, []),
        (True, "http://localhost:8080", KEY, []),
        (True, "http://[::1]:8080", KEY, []),
        (False, "http://neis.example.org", "", []),  # keyless: nothing to give away
        (False, REAL_HUB, KEY, []),
        (False, "HTTP://open.neis.go.kr", KEY, ["collector.E007"]),
    ],
)
def test_it_refuses_a_key_sent_over_plain_http(debug, url, key, ids):
    with override_settings(DEBUG=debug, NEIS_BASE_URL=url, NEIS_API_KEY=key):
        assert _ids(checks.check_neis_transport(None)) == ids


def test_it_fails_check_deploy_for_a_key_over_plain_http():
    done = _check_deploy(NEIS_BASE_URL="http://neis.example.org")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "collector.E007" in done.stderr
    assert "NEIS_BASE_URL is plain http://" in done.stderr
    assert KEY not in done.stdout + done.stderr


@override_settings(CELERY_TASK_SOFT_TIME_LIMIT=600, CELERY_TASK_TIME_LIMIT=600)
def test_it_refuses_a_soft_limit_not_below_the_hard_limit():
    assert "collector.E004" in _ids(checks.check_celery_limits(None))


@override_settings(BROKER_KIND="redis", CELERY_TASK_TIME_LIMIT=4000, BROKER_VISIBILITY_TIMEOUT=3600)
def test_it_refuses_a_hard_limit_beyond_the_visibility_timeout():
    assert "collector.E005" in _ids(checks.check_celery_limits(None))


@pytest.mark.parametrize(("deadline", "read"), [(10.0, 30.0), (540.0, 30.0)])
def test_it_refuses_a_request_deadline_outside_the_read_timeout_and_the_soft_limit(
    settings, deadline, read
):
    settings.NEIS_REQUEST_DEADLINE, settings.NEIS_READ_TIMEOUT = deadline, read
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 540
    assert "collector.E008" in _ids(checks.check_celery_limits(None))
    settings.NEIS_REQUEST_DEADLINE = 60.0
    assert "collector.E008" not in _ids(checks.check_celery_limits(None))


def _check_deploy(**overrides: str) -> subprocess.CompletedProcess:
    """``manage.py check --deploy`` in a production-like environment, with ``overrides``."""
    env = child_env(
        {
            "DEBUG": "0",
            "SECRET_KEY": "k7#Qv9!zR2@xW5$mN8^bT1&cY4*hJ6(pL3)dF0-sG9+eA2=uI7",
            "ALLOWED_HOSTS": "timetables.example.org",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "NEIS_BASE_URL": REAL_HUB,  # checks never connect; production talks https
            "NEIS_API_KEY": KEY,
            **overrides,
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_is_clean_under_a_production_like_environment():
    done = _check_deploy()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout
