"""Optional error reports and cron check-ins with Sentry: on only when ``SENTRY_DSN`` is set.

Every event passes ``before_send`` (and every breadcrumb ``before_breadcrumb``) on its way
out: strings are cleaned by ``proj.redact`` (URL passwords, the NEIS key and any ``KEY=``
parameter) and values stored under a name Django hides in its error pages (``KEY``, ``PASS``,
``TOKEN``, ``SECRET``, ...) are masked whole, wherever they sit: the message, exception
values, stack frames' local variables, request data, breadcrumbs, extra context.

A weekly collection checks in to a cron monitor when the ledger closes its run (the
``run_closed`` signal), not when beat fires it: the monitor says that the week was collected
(``ok``) or was not (``error``: failed schools, or cancelled), and a week that never closes
shows as missed. The monitor's slug is the schedule's name.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.utils.text import slugify

from collector.signals import run_closed

log = logging.getLogger(__name__)

MASK = "[Filtered]"
# Sentry marks a check-in "missed" when none arrives this long after the schedule's time.
# The check-in comes when the run closes, so this is how long a weekly run may take,
# waiting for a quota reset included, before anyone is told.
CHECKIN_MARGIN_MINUTES = 24 * 60
# Sentry's longest monitor slug.
SLUG_MAX = 50


def init(dsn: str, *, environment: str | None = None, transport: Any = None) -> bool:
    """Start Sentry for this process when ``dsn`` is set; True if started.

    ``transport`` replaces the HTTP transport (tests record envelopes with it). The SDK's
    defaults send no personal data (no cookies, users or client addresses).
    """
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        transport=transport,
        before_send=before_send,
        before_breadcrumb=before_breadcrumb,
    )
    run_closed.connect(check_in, dispatch_uid="proj.sentry.check_in")
    return True


@functools.cache
def _cleaners():
    """``proj.redact.redact`` and the names Django's error pages hide (``KEY``, ``PASS``,
    ``TOKEN``, ...). Imported when first needed: ``init`` runs while settings load, before
    the modules that read settings may be imported."""
    from django.views.debug import SafeExceptionReporterFilter

    from proj.redact import redact

    return redact, SafeExceptionReporterFilter.hidden_settings


def scrub(value: Any, name: str = "") -> Any:
    """``value`` with every credential masked: strings through ``proj.redact``, and whatever
    is stored under a hidden name replaced by ``MASK``."""
    redact, hidden = _cleaners()
    if isinstance(value, dict):
        return {key: scrub(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, name) for item in value]
    if name and value not in (None, "") and hidden.search(name):
        return MASK
    return redact(value) if isinstance(value, str) else value


def before_send(event: dict, hint: dict) -> dict:
    return scrub(event)


def before_breadcrumb(crumb: dict, hint: dict) -> dict:
    return scrub(crumb)


def check_in(sender, run, **kwargs) -> None:
    """A closed scheduled run's check-in to the cron monitor of its schedule."""
    from collector.ledger import RunStatus, Trigger

    if run.trigger != Trigger.SCHEDULE:
        return
    schedule = run.schedule()
    if schedule is None:
        log.warning("run %s closed, but its schedule is gone: no check-in", run.pk)
        return
    from sentry_sdk.crons import capture_checkin

    started = run.started_at or run.created_at
    capture_checkin(
        monitor_slug=monitor_slug(schedule),
        status="ok" if run.status == RunStatus.DONE else "error",
        duration=(run.finished_at - started).total_seconds() if run.finished_at else None,
        monitor_config=monitor_config(schedule),
    )


def monitor_slug(schedule) -> str:
    return slugify(schedule.name)[:SLUG_MAX]


def monitor_config(schedule) -> dict | None:
    """The monitor's schedule, from the beat schedule's crontab, so Sentry creates or updates
    the monitor to match what an operator set in admin; None for an interval schedule."""
    crontab = schedule.crontab
    if crontab is None:
        return None
    fields = (
        crontab.minute,
        crontab.hour,
        crontab.day_of_month,
        crontab.month_of_year,
        crontab.day_of_week,
    )
    return {
        "schedule": {"type": "crontab", "value": " ".join(fields)},
        "timezone": str(crontab.timezone),
        "checkin_margin": CHECKIN_MARGIN_MINUTES,
    }
