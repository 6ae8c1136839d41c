"""Settings come from the environment; a malformed value stops start-up naming the variable."""

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from proj import env
from tests.processes import ROOT, child_env


def _load_settings(overrides):
    """Import the settings module in a fresh interpreter with ``overrides`` in the env."""
    code = (
        "import django, json\n"
        "from django.conf import settings\n"
        "django.setup()\n"
        "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'],"
        " 'broker': settings.CELERY_BROKER_URL, 'debug': settings.DEBUG,"
        " 'tz': settings.TIME_ZONE, 'key': bool(settings.NEIS_API_KEY),"
        " 'hosts': settings.ALLOWED_HOSTS, 'use_tz': settings.USE_TZ,"
        " 'limiter': settings.NEIS_LIMITER_URL}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=child_env(overrides),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_reads_booleans():
    assert env.env_bool("X", environ={"X": "yes"}) is True
    assert env.env_bool("X", environ={"X": "0"}) is False
    assert env.env_bool("X", True, environ={}) is True


def test_it_rejects_a_malformed_boolean_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be a boolean"):
        env.env_bool("DEBUG", environ={"DEBUG": "maybe"})


def test_it_rejects_a_malformed_integer_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="NEIS_PAGE_SIZE must be an integer"):
        env.env_int("NEIS_PAGE_SIZE", 1000, environ={"NEIS_PAGE_SIZE": "lots"})
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env.env_int("NEIS_PAGE_SIZE", 1000, environ={"NEIS_PAGE_SIZE": "0"}, minimum=1)


def test_it_rejects_a_url_with_the_wrong_scheme():
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL must be a URL"):
        env.env_url("CELERY_BROKER_URL", "", {"redis"}, environ={"CELERY_BROKER_URL": "sqs://x"})


def test_it_reads_a_secret_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("0123abcd\n")
    assert env.env_secret("NEIS_API_KEY", environ={"NEIS_API_KEY_FILE": str(secret)}) == "0123abcd"


def test_it_names_an_unreadable_secret_file(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="NEIS_API_KEY_FILE"):
        env.env_secret("NEIS_API_KEY", environ={"NEIS_API_KEY_FILE": str(tmp_path / "nope")})


def test_it_defaults_to_sqlite_and_a_serverless_broker(tmp_path):
    done = _load_settings(
        {
            "DATABASE_URL": None,
            "CELERY_BROKER_URL": None,
            "VAR_DIR": str(tmp_path),
            "TIME_ZONE": None,
        }
    )
    assert done.returncode == 0, done.stderr
    assert '"db": "django.db.backends.sqlite3"' in done.stdout
    assert '"broker": "filesystem://"' in done.stdout
    assert '"tz": "Asia/Seoul"' in done.stdout
    assert '"use_tz": true' in done.stdout


def test_it_uses_postgres_and_redis_from_the_environment():
    done = _load_settings(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "ALLOWED_HOSTS": "a.example, b.example",
        }
    )
    assert done.returncode == 0, done.stderr
    assert '"db": "django.db.backends.postgresql"' in done.stdout
    assert '"limiter": "redis://127.0.0.1:6379/0"' in done.stdout
    assert '"hosts": ["a.example", "b.example"]' in done.stdout


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DEBUG": "perhaps"}, "DEBUG"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL"),
        ({"CELERY_BROKER_URL": "redis://"}, "CELERY_BROKER_URL"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE"),
        ({"NEIS_MAX_RPS": "fast"}, "NEIS_MAX_RPS"),
        ({"NEIS_BASE_URL": "ftp://open.neis.go.kr"}, "NEIS_BASE_URL"),
        ({"DEBUG": "0", "SECRET_KEY": None, "SECRET_KEY_FILE": None}, "SECRET_KEY"),
    ],
)
def test_it_stops_start_up_naming_the_bad_variable(overrides, named):
    done = _load_settings(overrides)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert named in done.stderr.strip().splitlines()[-1]
