"""System checks that stop configurations which cannot work before anything runs."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.compatibility)
def check_time_zones(app_configs, **kwargs):
    if settings.CELERY_TIMEZONE != settings.TIME_ZONE:
        return [
            Error(
                f"CELERY_TIMEZONE ({settings.CELERY_TIMEZONE}) differs from TIME_ZONE "
                f"({settings.TIME_ZONE}).",
                hint="Weekly schedules would fire at a different hour than admin shows; "
                "unset CELERY_TIMEZONE or make the two agree.",
                id="collector.E001",
            )
        ]
    return []


@register(Tags.database)
def check_production_database(app_configs, **kwargs):
    engine = settings.DATABASES["default"]["ENGINE"]
    if not settings.DEBUG and engine.endswith("sqlite3"):
        return [
            Error(
                "DEBUG is off but the database is SQLite.",
                hint="A production collection stores ~20 million rows a week; set DATABASE_URL "
                "to PostgreSQL (postgres://user@host:5432/name).",
                id="collector.E002",
            )
        ]
    return []


@register()
def check_neis_key(app_configs, **kwargs):
    host = urlsplit(settings.NEIS_BASE_URL).hostname or ""
    if host != settings.NEIS_REAL_HOST or settings.NEIS_API_KEY:
        return []
    message = "NEIS_BASE_URL points at the real NEIS hub but NEIS_API_KEY is not set."
    hint = (
        "Without a key NEIS serves 5 rows per query, which cannot collect a timetable; set "
        "NEIS_API_KEY (or NEIS_API_KEY_FILE), or point NEIS_BASE_URL at the simulator."
    )
    if settings.DEBUG:
        return [Warning(message, hint=hint, id="collector.W003")]
    return [Error(message, hint=hint, id="collector.E003")]


@register(Tags.security, deploy=True)
def check_neis_transport(app_configs, **kwargs):
    """The key rides in the query string: over plain http anyone on the path can read it.

    Only a simulator on this machine, in development (DEBUG on), may take a key over http. In
    production even loopback is refused, since a plain-http listener there is usually a proxy
    forwarding elsewhere; a deliberate local TLS sidecar can silence collector.E007.
    """
    url = urlsplit(settings.NEIS_BASE_URL)
    if url.scheme.lower() != "http" or not settings.NEIS_API_KEY:
        return []
    if settings.DEBUG and _is_loopback(url.hostname or ""):
        return []
    return [
        Error(
            "NEIS_BASE_URL is plain http:// but NEIS_API_KEY is set.",
            hint="NEIS takes the key in the query string, so every request would show it to "
            "the network; use https://open.neis.go.kr (the simulator on 127.0.0.1 is allowed "
            "with DEBUG on).",
            id="collector.E007",
        )
    ]


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register()
def check_celery_limits(app_configs, **kwargs):
    errors = []
    soft, hard = settings.CELERY_TASK_SOFT_TIME_LIMIT, settings.CELERY_TASK_TIME_LIMIT
    if soft >= hard:
        errors.append(
            Error(
                f"CELERY_TASK_SOFT_TIME_LIMIT ({soft}s) must be below CELERY_TASK_TIME_LIMIT "
                f"({hard}s).",
                hint="The soft limit lets a task record why it stopped before it is killed.",
                id="collector.E004",
            )
        )
    if settings.BROKER_KIND == "redis" and hard >= settings.BROKER_VISIBILITY_TIMEOUT:
        errors.append(
            Error(
                f"CELERY_TASK_TIME_LIMIT ({hard}s) must be below BROKER_VISIBILITY_TIMEOUT "
                f"({settings.BROKER_VISIBILITY_TIMEOUT}s).",
                hint="Redis hands an unacknowledged message to another worker after the "
                "visibility timeout, so a long task would run twice.",
                id="collector.E005",
            )
        )
    deadline, read = settings.NEIS_REQUEST_DEADLINE, settings.NEIS_READ_TIMEOUT
    if not read <= deadline < soft:
        errors.append(
            Error(
                f"NEIS_REQUEST_DEADLINE ({deadline}s) must be at least NEIS_READ_TIMEOUT "
                f"({read}s) and below CELERY_TASK_SOFT_TIME_LIMIT ({soft}s).",
                hint="A request that may outlast its task is cut off by the time limit instead "
                "of failing as a NEIS error the task can retry.",
                id="collector.E008",
            )
        )
    if not settings.DEBUG and settings.BROKER_KIND == "filesystem":
        errors.append(
            Warning(
                "DEBUG is off but the Celery broker is the embedded filesystem transport.",
                hint="It serves one machine only; set CELERY_BROKER_URL to redis:// or amqp://.",
                id="collector.W006",
            )
        )
    return errors
