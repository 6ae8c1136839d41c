"""Settings come from the environment; a malformed value stops start-up naming the variable."""

import ast
import subprocess

import pytest
from django.core.exceptions import ImproperlyConfigured

from proj import env
from tests.processes import ROOT, run_python


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
    return run_python(code, overrides)


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


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_it_rejects_a_number_that_is_not_finite(value):
    with pytest.raises(ImproperlyConfigured, match="NEIS_MAX_RPS must be a finite number"):
        env.env_float("NEIS_MAX_RPS", 20.0, environ={"NEIS_MAX_RPS": value}, minimum=0.1)


def test_it_rejects_a_number_above_its_maximum():
    with pytest.raises(ImproperlyConfigured, match="NEIS_PAGE_SIZE must be at most 1000, got 5000"):
        env.env_int("NEIS_PAGE_SIZE", 1000, environ={"NEIS_PAGE_SIZE": "5000"}, maximum=1000)
    with pytest.raises(ImproperlyConfigured, match="NEIS_READ_TIMEOUT must be at most 600"):
        env.env_float("NEIS_READ_TIMEOUT", 30, environ={"NEIS_READ_TIMEOUT": "1e6"}, maximum=600)
    assert env.env_int("NEIS_PAGE_SIZE", 1000, environ={"NEIS_PAGE_SIZE": "1000"}, maximum=1000)


def test_it_reads_a_choice_in_any_case():
    levels = ("DEBUG", "INFO", "WARNING")
    assert env.env_choice("LOG_LEVEL", "INFO", levels, environ={"LOG_LEVEL": "debug"}) == "DEBUG"
    assert env.env_choice("LOG_LEVEL", "INFO", levels, environ={}) == "INFO"
    with pytest.raises(ImproperlyConfigured, match="LOG_LEVEL must be one of DEBUG, INFO, WARN"):
        env.env_choice("LOG_LEVEL", "INFO", levels, environ={"LOG_LEVEL": "LOUD"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:notaport/0", "not a valid URL"),
        ("redis://127.0.0.1:99999/0", "not a valid URL"),
        ("redis://[::1/0", "not a valid URL"),
        ("redis://127.0.0.1:6379/zero", "numeric Redis database"),
    ],
)
def test_it_rejects_a_url_its_client_could_not_parse(url, expected):
    with pytest.raises(ImproperlyConfigured, match=f"CELERY_BROKER_URL .*{expected}"):
        env.env_url("CELERY_BROKER_URL", "", {"redis"}, environ={"CELERY_BROKER_URL": url})


def test_it_masks_the_password_of_a_url_it_rejects():
    with pytest.raises(ImproperlyConfigured) as refused:
        env.env_url("X", "", {"redis"}, environ={"X": "redis://:hunter2@host:port/0"})
    assert "hunter2" not in str(refused.value)
    assert "redis://:***@host:port/0" in str(refused.value)


def test_it_bounds_every_number_the_settings_read():
    """Each env_int/env_float call in settings.py has a minimum and a maximum."""
    tree = ast.parse((ROOT / "proj" / "settings.py").read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"env_int", "env_float"}
    ]
    assert len(calls) > 20
    unbounded = [
        ast.literal_eval(call.args[0])
        for call in calls
        if not {"minimum", "maximum"} <= {keyword.arg for keyword in call.keywords}
    ]
    assert unbounded == []


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
            "DEBUG": None,
        }
    )
    assert done.returncode == 0, done.stderr
    assert '"db": "django.db.backends.sqlite3"' in done.stdout
    assert '"debug": true' in done.stdout
    assert '"broker": "filesystem://"' in done.stdout
    assert '"tz": "Asia/Seoul"' in done.stdout
    assert '"use_tz": true' in done.stdout


PROXY_HEADER = (
    "import django, json\n"
    "from django.conf import settings\n"
    "django.setup()\n"
    "print(json.dumps(settings.SECURE_PROXY_SSL_HEADER))\n"
)


@pytest.mark.parametrize(
    ("behind_proxy", "header"), [(None, "null"), ("1", '["HTTP_X_FORWARDED_PROTO", "https"]')]
)
def test_it_trusts_x_forwarded_proto_only_behind_a_proxy(behind_proxy, header):
    done = run_python(PROXY_HEADER, {"BEHIND_PROXY": behind_proxy})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == header


def test_a_client_cannot_claim_https_by_default(rf):
    assert rf.get("/admin/", HTTP_X_FORWARDED_PROTO="https").is_secure() is False


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


def test_it_bounds_how_long_postgresql_keeps_a_session_idle_in_a_transaction():
    code = (
        "import django\nfrom django.conf import settings\ndjango.setup()\n"
        "print(settings.DATABASES['default']['OPTIONS']['options'])\n"
    )
    url = "postgres://postgres@127.0.0.1:5432/x"
    done = run_python(code, {"DATABASE_URL": url, "DB_IDLE_IN_TRANSACTION_SECONDS": "7"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "-c idle_in_transaction_session_timeout=7000"
    # Options the URL carries are kept beside it.
    done = run_python(code, {"DATABASE_URL": f"{url}?options=-c%20statement_timeout%3D5000"})
    assert done.returncode == 0, done.stderr
    options = "-c statement_timeout=5000 -c idle_in_transaction_session_timeout=60000"
    assert done.stdout.strip() == options


def test_it_turns_debug_off_by_default_once_a_database_is_set():
    done = _load_settings(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x",
            "DEBUG": None,
            "SECRET_KEY": "k7#Qv9!zR2@xW5$mN8^bT1&cY4*hJ6(pL3)dF0-sG9+eA2=uI7",
        }
    )
    assert done.returncode == 0, done.stderr
    assert '"debug": false' in done.stdout


def test_it_asks_for_a_secret_key_when_debug_defaults_to_off():
    done = _load_settings(
        {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x", "DEBUG": None, "SECRET_KEY": None}
    )
    assert done.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in done.stderr


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
        # Each of these passed start-up before, and either disabled what it limits (nan and inf
        # pass every range check) or failed in the middle of a command.
        ({"NEIS_MAX_RPS": "nan"}, "NEIS_MAX_RPS"),
        ({"NEIS_MAX_RPS": "inf"}, "NEIS_MAX_RPS"),
        ({"NEIS_READ_TIMEOUT": "nan"}, "NEIS_READ_TIMEOUT"),
        ({"NEIS_CONNECT_TIMEOUT": "inf"}, "NEIS_CONNECT_TIMEOUT"),
        ({"NEIS_RETRY_BACKOFF_BASE": "nan"}, "NEIS_RETRY_BACKOFF_BASE"),
        ({"NEIS_PAGE_SIZE": "5000"}, "NEIS_PAGE_SIZE"),
        ({"NEIS_QUOTA_RESET_HOUR": "25"}, "NEIS_QUOTA_RESET_HOUR"),
        ({"NEIS_MAX_WINDOW_DAYS": "100000"}, "NEIS_MAX_WINDOW_DAYS"),
        ({"NEIS_ARCHIVE_BEFORE_AY": "25"}, "NEIS_ARCHIVE_BEFORE_AY"),
        ({"NEIS_TASK_EXPIRES_HOURS": "99999999999"}, "NEIS_TASK_EXPIRES_HOURS"),
        ({"CELERY_RESULT_EXPIRES_DAYS": "99999999999"}, "CELERY_RESULT_EXPIRES_DAYS"),
        ({"NEIS_RETRY_BACKOFF_BASE": "600"}, "NEIS_RETRY_BACKOFF_BASE"),
        (
            {"NEIS_RETRY_BACKOFF_MAX": "7200", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"},
            "NEIS_RETRY_BACKOFF_MAX",
        ),
        ({"NEIS_API_KEY": "abc def"}, "NEIS_API_KEY"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"CELERY_TIMEZONE": "Mars/Olympus"}, "CELERY_TIMEZONE"),
        ({"CSRF_TRUSTED_ORIGINS": "timetables.example.org"}, "CSRF_TRUSTED_ORIGINS"),
        ({"CELERY_BROKER_URL": "redis://127.0.0.1:notaport/0"}, "CELERY_BROKER_URL"),
        ({"NEIS_LIMITER_URL": "redis://127.0.0.1:6379/zero"}, "NEIS_LIMITER_URL"),
    ],
    ids=lambda value: (
        ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value
    ),
)
def test_it_stops_start_up_naming_the_bad_variable(overrides, named):
    done = _load_settings(overrides)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert named in done.stderr.strip().splitlines()[-1]


def _keys(overrides) -> subprocess.CompletedProcess:
    code = (
        "import django\n"
        "from django.conf import settings\n"
        "django.setup()\n"
        "keys = settings.NEIS_API_KEYS\n"
        "print(len(keys), keys.index(settings.NEIS_API_KEY) if keys else -1)\n"
    )
    return run_python(code, overrides)


@pytest.mark.parametrize(
    "overrides, found",
    [
        ({"NEIS_API_KEYS": "aaa1, bbb2,ccc3"}, "3 0"),
        ({"NEIS_API_KEY": "aaa1"}, "1 0"),
        ({}, "0 -1"),
    ],
)
def test_it_reads_several_keys_and_keeps_the_first_as_neis_api_key(overrides, found):
    done = _keys({"NEIS_API_KEY": "", "NEIS_API_KEYS": "", **overrides})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == found


def test_it_reads_one_key_a_line_from_the_key_file(tmp_path):
    secret = tmp_path / "keys"
    secret.write_text("# production keys\naaa1\n\nbbb2\n", encoding="utf-8")
    done = _keys({"NEIS_API_KEY": "", "NEIS_API_KEYS": "", "NEIS_API_KEY_FILE": str(secret)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 0"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"NEIS_API_KEYS": "aaa1,aaa1"}, "a NEIS key is listed twice"),
        ({"NEIS_API_KEYS": "aaa1,b\x07b"}, "NEIS key 2 (NEIS_API_KEYS"),
        ({"NEIS_API_KEY": "abc def"}, "NEIS key 1 (NEIS_API_KEYS, NEIS_API_KEY"),
    ],
)
def test_it_refuses_a_key_list_with_a_bad_or_repeated_key(overrides, message):
    done = _keys({"NEIS_API_KEY": "", "NEIS_API_KEYS": "", **overrides})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert message in last
    assert "aaa1" not in done.stderr and "b\x07b" not in done.stderr
