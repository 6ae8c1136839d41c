"""Settings, read from the environment in one place.

With nothing set the project runs on a laptop: SQLite and a filesystem broker under ``var/``.
Production points ``DATABASE_URL`` at PostgreSQL and ``CELERY_BROKER_URL`` at Redis or
RabbitMQ. Every variable is listed in README.md and docker/.env.example.
"""

from __future__ import annotations

import zoneinfo
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from collector.clock import Clock
from collector.neis.client import MAX_PAGE_SIZE
from proj.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
# Folders this configuration writes to, each with the variable that names it. Importing the
# settings creates nothing: proj.startup.prepare() makes them once every setting has passed.
LOCAL_FOLDERS: list[tuple[str, Path]] = []

# On by default only on the embedded default (no DATABASE_URL), which is a laptop: anything
# with a real database is a deployment, and Django's debug pages are not for one.
DEBUG = env_bool("DEBUG", not env_str("DATABASE_URL"))

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (DEBUG is off by default once "
            "DATABASE_URL is set; DEBUG=1 for a local run)"
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entries need a scheme (https://host), got {_origin!r}"
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "collector",
    "schedules",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "proj.urls"
# Error pages (DEBUG on) and error reports (DEBUG off) mask URL passwords and the NEIS key.
DEFAULT_EXCEPTION_REPORTER_FILTER = "proj.redact.SafeExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "proj.redact.SafeExceptionReporter"
WSGI_APPLICATION = "proj.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite is the embedded default. WAL lets a web process read while a worker writes, the busy
# timeout makes writers queue instead of failing, and IMMEDIATE transactions take the write lock
# up front so two writers never deadlock upgrading a read lock.
_SQLITE_DEFAULT = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASE_URL = env_url(
    "DATABASE_URL", _SQLITE_DEFAULT, {"sqlite", "postgres", "postgresql", "pgsql"}
)
_db = dj_database_url.parse(
    DATABASE_URL, conn_max_age=env_int("CONN_MAX_AGE", 60, minimum=0, maximum=86_400)
)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] not in ("", ":memory:"):
        _named_by = "DATABASE_URL" if env_str("DATABASE_URL") else "VAR_DIR"
        LOCAL_FOLDERS.append((_named_by, Path(_db["NAME"]).parent))
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
    }
else:
    _db["CONN_HEALTH_CHECKS"] = True
    # A host cut off from the network mid-transaction leaves its session idle in that
    # transaction, holding its locks, until TCP gives up on it (hours): every worker that needs
    # one of those rows (a unit, a new subject) waits as long, and with it the unit's take-over.
    # PostgreSQL ends a session idle in a transaction this long; 0: never. No transaction here
    # waits on anything but the database between its statements.
    DB_IDLE_IN_TRANSACTION_SECONDS = env_int(
        "DB_IDLE_IN_TRANSACTION_SECONDS", 60, minimum=0, maximum=86_400
    )
    _idle = f"-c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_SECONDS * 1000}"
    _options = _db.setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} {_idle}".strip()
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Time -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"


def _zone(name: str, value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{name} is not a known time zone: {value!r}") from None
    return value


TIME_ZONE = _zone("TIME_ZONE", env_str("TIME_ZONE", "Asia/Seoul"))
# Stored datetimes are always aware; NEIS dates are interpreted in Asia/Seoul by the client.
USE_TZ = True
USE_I18N = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Security (production, DEBUG off) -------------------------------------------------------
# X-Forwarded-Proto is trusted only when a proxy in front sets it (dropping any a client sent):
# without one, any client could claim its plain-HTTP request was HTTPS.
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int(
    "SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0, maximum=63_072_000
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Celery ---------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# The embedded default broker is kombu's filesystem transport: no server, safe for one worker
# and one beat on a laptop.
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL",
    "filesystem://",
    {"filesystem", "redis", "rediss", "amqp", "amqps", "pyamqp"},
)
BROKER_KIND = {"rediss": "redis", "amqps": "amqp", "pyamqp": "amqp"}.get(
    urlsplit(CELERY_BROKER_URL).scheme, urlsplit(CELERY_BROKER_URL).scheme
)
# Longest any task may run; the broker must not redeliver a message before this passes.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600, minimum=2, maximum=86_400)
# The soft limit raises inside the task first, so it can record why it stopped.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540, minimum=1, maximum=86_400)
# Redis redelivers unacked messages after this; it must exceed the hard limit and any countdown.
BROKER_VISIBILITY_TIMEOUT = env_int(
    "BROKER_VISIBILITY_TIMEOUT", 3600, minimum=5, maximum=7 * 86_400
)
if BROKER_KIND == "filesystem":
    _spool = VAR_DIR / "broker"
    # kombu does not create its folders; a fresh checkout has none.
    LOCAL_FOLDERS += [("VAR_DIR", _spool / folder) for folder in ("out", "processed", "control")]
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_spool / "out"),
        "data_folder_out": str(_spool / "out"),
        "processed_folder": str(_spool / "processed"),
        "store_processed": False,
        "control_folder": str(_spool / "control"),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": BROKER_VISIBILITY_TIMEOUT,
        # kombu sweeps for messages whose visibility ran out every 10 s but scans Redis only at
        # every 10th sweep, so a message a dead worker held came back up to 100 s after its
        # timeout. One small sorted-set read per worker every 10 s is nothing; the wait is not.
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
# Retry connecting at start-up, so a worker that starts before its broker waits instead of dying.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# JSON only: task arguments are plain ids and dates, and pickle would run whatever arrives.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Results land in django-celery-results so operators see them in admin; they expire after a week.
CELERY_RESULT_BACKEND = "proj.results:DatabaseBackend"
# Storing a result retries on a fresh connection for up to five minutes (proj/results.py),
# at least every second (10 ms doubling to 1 s, jittered), so a database outage does not fail
# a task before or after its body runs, and the task goes on within a second of its return.
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS = 1000
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = timedelta(
    days=env_int("CELERY_RESULT_EXPIRES_DAYS", 7, minimum=1, maximum=3650)
)
# Units of closed runs whose window ended longer ago are pruned (collector/retention.py). At
# least ten weeks: the coverage grid looks eight weeks back, and a run's window ends up to two
# weeks after the week it covers.
LEDGER_RETENTION_DAYS = env_int("LEDGER_RETENTION_DAYS", 400, minimum=70, maximum=3650)
# Schedules live in the database (schedules app) and are editable in admin; the guarded
# DatabaseScheduler lets only one beat send, however many are started.
CELERY_BEAT_SCHEDULER = "schedules.scheduler:GuardedDatabaseScheduler"
# Save "last run" after every send, so a beat taking over from a killed one repeats nothing.
CELERY_BEAT_SYNC_EVERY = 1
CELERY_TIMEZONE = _zone("CELERY_TIMEZONE", env_str("CELERY_TIMEZONE", TIME_ZONE))
CELERY_ENABLE_UTC = True
# Our tasks are idempotent: ack after the work, take one message at a time, and hand a message
# back if the worker dies, so a killed worker loses nothing.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Recycle children so a slow leak (large pages, parser caches) cannot grow without bound.
CELERY_WORKER_MAX_TASKS_PER_CHILD = env_int(
    "CELERY_WORKER_MAX_TASKS_PER_CHILD", 2000, minimum=1, maximum=10_000_000
)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env_int(  # KiB, up to 64 GiB
    "CELERY_WORKER_MAX_MEMORY_PER_CHILD", 512_000, minimum=10_000, maximum=64 * 1024 * 1024
)
# A worker with nothing to do whose queues have held messages this long, none of them taken,
# reconnects to the broker: its consumer stopped after a broker restart (collector.broker).
# 0: never.
WORKER_STALL_SECONDS = env_int("WORKER_STALL_SECONDS", 60, minimum=0, maximum=86_400)
# Task events (sent, received, started, succeeded), which Flower and `celery events` show.
# Off unless asked: on a Redis broker each is a PUBLISH, measured at 43% of a worker's main
# process and a tenth of its CPU in all on an unchanged re-run. Flower turns them on in the
# running workers by itself (its enable_events option, on by default); `celery -A proj
# control enable_events` does the same for `celery events`.
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_TASK_EVENTS", False)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
CELERY_TASK_TRACK_STARTED = True
# Celery's Django fix-up closes the DB connection around every task unless this is set;
# reusing it was measured at nearly twice the throughput of reconnecting per task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0, maximum=1_000_000)
# HTTP-bound collection has its own queue so that slow NEIS calls never starve the rest.
# Both queues are declared, so a plain `celery -A proj worker` consumes both; production runs
# a `-Q neis` and a `-Q default` worker (docker/compose.yml).
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = {"default": {}, "neis": {}}
# RabbitMQ: quorum queues (replicated, written to disk, the queue type RabbitMQ 4 recommends).
# Opt-in, because RabbitMQ refuses to declare an existing classic queue again as a quorum one:
# switch on a fresh vhost (docker/compose.yml's rabbitmq profile does). Topic exchanges, so that
# a retry's countdown waits in RabbitMQ (Celery's native delayed delivery) rather than in a
# worker's memory; Celery sees the quorum queues and turns global QoS off, which they refuse.
BROKER_QUORUM_QUEUES = env_bool("BROKER_QUORUM_QUEUES", False)
if BROKER_KIND == "amqp" and BROKER_QUORUM_QUEUES:
    CELERY_TASK_QUEUES = {
        name: {
            "exchange": name,
            "exchange_type": "topic",
            "routing_key": name,
            "queue_arguments": {"x-queue-type": "quorum"},
        }
        for name in CELERY_TASK_QUEUES
    }
    CELERY_WORKER_DETECT_QUORUM_QUEUES = True
CELERY_TASK_ROUTES = {"collector.collect_school": {"queue": "neis"}}

# --- NEIS -----------------------------------------------------------------------------------
NEIS_REAL_HOST = "open.neis.go.kr"
NEIS_BASE_URL = env_url("NEIS_BASE_URL", f"https://{NEIS_REAL_HOST}", {"http", "https"}).rstrip("/")
# Several keys, each with its own daily quota: NEIS_API_KEYS (comma-separated), or
# NEIS_API_KEY_FILE holding one key a line (# starts a comment), or the one NEIS_API_KEY.
# NEIS_API_KEY is the first of them (collector/limiter.py api_keys() spreads work over all).
NEIS_API_KEYS = tuple(env_list("NEIS_API_KEYS", []))
if not NEIS_API_KEYS and env_str("NEIS_API_KEY"):
    NEIS_API_KEYS = (env_str("NEIS_API_KEY"),)
elif not NEIS_API_KEYS:
    NEIS_API_KEYS = tuple(
        line.strip()
        for line in env_secret("NEIS_API_KEY").splitlines()
        if line.strip() and not line.strip().startswith("#")
    )
# The key rides in every URL; a stray space or newline from a copy-paste would make every
# request "invalid key" (ERROR-290), failing every school of a run.
for _number, _key in enumerate(NEIS_API_KEYS, 1):
    if any(char.isspace() or not char.isprintable() for char in _key):
        raise ImproperlyConfigured(
            f"NEIS key {_number} (NEIS_API_KEYS, NEIS_API_KEY or its file) holds spaces or "
            "control characters"
        )
if len(set(NEIS_API_KEYS)) != len(NEIS_API_KEYS):
    raise ImproperlyConfigured("a NEIS key is listed twice (NEIS_API_KEYS or NEIS_API_KEY_FILE)")
NEIS_API_KEY = NEIS_API_KEYS[0] if NEIS_API_KEYS else ""
# Seconds. A timeout of nan or inf would wait forever on a hung NEIS.
NEIS_CONNECT_TIMEOUT = env_float("NEIS_CONNECT_TIMEOUT", 5.0, minimum=0.1, maximum=60)
NEIS_READ_TIMEOUT = env_float("NEIS_READ_TIMEOUT", 30.0, minimum=0.1, maximum=600)
# A whole request, however slowly the body trickles in, and the most bytes one answer may
# hold (as sent and inflated): a 1000-row page is under 1 MB.
NEIS_REQUEST_DEADLINE = env_float("NEIS_REQUEST_DEADLINE", 60.0, minimum=1, maximum=600)
NEIS_MAX_BODY_BYTES = env_int("NEIS_MAX_BODY_BYTES", 16 * 2**20, minimum=2**20, maximum=256 * 2**20)
NEIS_PAGE_SIZE = env_int("NEIS_PAGE_SIZE", MAX_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
# Academic years before this are served by the *Timetablebgs archive services; 0 means
# "the current academic year minus one", the rule the portal follows since 4th-gen NEIS.
NEIS_ARCHIVE_BEFORE_AY = env_int("NEIS_ARCHIVE_BEFORE_AY", 0, minimum=0, maximum=2100)
if 0 < NEIS_ARCHIVE_BEFORE_AY < 2000:
    raise ImproperlyConfigured(
        f"NEIS_ARCHIVE_BEFORE_AY must be 0 or a year from 2000, got {NEIS_ARCHIVE_BEFORE_AY}"
    )
# The daily quota resets at this hour, Asia/Seoul.
NEIS_QUOTA_RESET_HOUR = env_int("NEIS_QUOTA_RESET_HOUR", 0, minimum=0, maximum=23)
# NEIS does not publish its daily quota per key. Plans use the lowest cap observed in the last
# two weeks (the count at a day's first ERROR-337, collector/quota.py), this until one is
# observed, less a safety margin (percent) for requests other tools make with the same key.
NEIS_DAILY_QUOTA = env_int("NEIS_DAILY_QUOTA", 10_000, minimum=1, maximum=10_000_000)
NEIS_QUOTA_MARGIN_PERCENT = env_int("NEIS_QUOTA_MARGIN_PERCENT", 5, minimum=0, maximum=90)
# One request budget per key across every worker: requests per second and requests in flight.
NEIS_MAX_RPS = env_float("NEIS_MAX_RPS", 20.0, minimum=0.1, maximum=1000)
NEIS_MAX_CONCURRENCY = env_int("NEIS_MAX_CONCURRENCY", 4, minimum=1, maximum=256)
# Where the shared budget lives: Redis when one is configured, else a lock file under var/.
NEIS_LIMITER_URL = env_url(
    "NEIS_LIMITER_URL",
    CELERY_BROKER_URL if BROKER_KIND == "redis" else "",
    {"redis", "rediss"},
)
# Longest date window one run may ask for; longer backfills are split into several runs.
NEIS_MAX_WINDOW_DAYS = env_int("NEIS_MAX_WINDOW_DAYS", 62, minimum=1, maximum=366)
# A run refreshes the school registry first when the newest sighting is older than this.
NEIS_REGISTRY_MAX_AGE_HOURS = env_int("NEIS_REGISTRY_MAX_AGE_HOURS", 24, minimum=0, maximum=8760)
# A queued collect task not started within this many hours expires; the watchdog re-sends it.
NEIS_TASK_EXPIRES_HOURS = env_int("NEIS_TASK_EXPIRES_HOURS", 6, minimum=1, maximum=720)
# Transient NEIS failures retry this many times, waiting a random time up to
# BASE * 2**retry seconds, capped at MAX (collector/retry.py; the tasks and --sync share it).
NEIS_MAX_RETRIES = env_int("NEIS_MAX_RETRIES", 6, minimum=0, maximum=100)
NEIS_RETRY_BACKOFF_BASE = env_float("NEIS_RETRY_BACKOFF_BASE", 1.0, minimum=0.001, maximum=3600)
NEIS_RETRY_BACKOFF_MAX = env_int("NEIS_RETRY_BACKOFF_MAX", 300, minimum=1, maximum=86_400)
if NEIS_RETRY_BACKOFF_BASE > NEIS_RETRY_BACKOFF_MAX:
    raise ImproperlyConfigured(
        f"NEIS_RETRY_BACKOFF_BASE ({NEIS_RETRY_BACKOFF_BASE}) must not exceed "
        f"NEIS_RETRY_BACKOFF_MAX ({NEIS_RETRY_BACKOFF_MAX})"
    )
# A retry waits in Redis as an unacknowledged message: one longer than the visibility timeout
# would be handed to a second worker and run twice.
if BROKER_KIND == "redis" and NEIS_RETRY_BACKOFF_MAX >= BROKER_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        f"NEIS_RETRY_BACKOFF_MAX ({NEIS_RETRY_BACKOFF_MAX}s) must be below "
        f"BROKER_VISIBILITY_TIMEOUT ({BROKER_VISIBILITY_TIMEOUT}s)"
    )
# A claimed unit's lease: the attempt renews it every third of this while it works, so a unit
# whose worker died is taken back within this many seconds (plus the watchdog's minute).
NEIS_LEASE_SECONDS = env_int("NEIS_LEASE_SECONDS", 60, minimum=3, maximum=3600)
# Pins the collector's clock (collector/clock.py) for tests and replays:
# "2026-11-21T10:00:00+09:00@1764400000" is that moment at that real Unix time, running on.
# Empty: the real clock.
NEIS_CLOCK = env_str("NEIS_CLOCK", "")
try:
    Clock.parse(NEIS_CLOCK) if NEIS_CLOCK else None
except ValueError as _exc:
    raise ImproperlyConfigured(f"NEIS_CLOCK: {_exc}") from None
# Outages (collector/retry.py, collector/limiter.py). A school failing transiently is retried
# until its first failure in a row is this old, however many tries that takes: long enough to
# outlast a NEIS maintenance window. 0 leaves NEIS_MAX_RETRIES alone to decide.
NEIS_RETRY_WINDOW_SECONDS = env_int(
    "NEIS_RETRY_WINDOW_SECONDS", 3 * 3600, minimum=0, maximum=7 * 24 * 3600
)
# The circuit breaker: this many transient failures of one key within a minute, none answered,
# mean NEIS itself is down. The run then waits as a whole (units deferred as NEIS-DOWN) while
# one request every NEIS_BREAKER_PROBE_SECONDS probes it; the first answer resumes the run.
NEIS_BREAKER_FAILURES = env_int("NEIS_BREAKER_FAILURES", 10, minimum=1, maximum=100_000)
NEIS_BREAKER_PROBE_SECONDS = env_int("NEIS_BREAKER_PROBE_SECONDS", 60, minimum=1, maximum=86_400)

# --- Console -------------------------------------------------------------------------------
# /metrics (Prometheus) answers only requests with "Authorization: Bearer <token>" when set.
METRICS_TOKEN = env_secret("METRICS_TOKEN")

# --- Sentry (optional) ------------------------------------------------------------------------
# Errors and the weekly runs' cron check-ins go to Sentry only when set (proj/sentry.py: every
# event is cleaned of credentials first). Started here, so web, workers and beat all have it.
SENTRY_DSN = env_url("SENTRY_DSN", "", {"http", "https"})
if SENTRY_DSN:
    from proj import sentry

    sentry.init(SENTRY_DSN)

# --- Logging --------------------------------------------------------------------------------
# Checked here: logging.config would refuse an unknown level only inside django.setup().
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_key": {"()": "collector.neis.redact.RedactKeyFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["redact_key"],
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # urllib3 logs every URL it opens at DEBUG, key included; keep it quiet regardless.
        "urllib3": {"level": "WARNING"},
    },
}
