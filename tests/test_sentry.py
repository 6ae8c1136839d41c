"""Optional Sentry: off unless SENTRY_DSN is set; weekly runs check in when the ledger closes
them; no event carries a credential. Envelopes go to a recording transport, never a network."""

from __future__ import annotations

import datetime
import json
import logging

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from collector import clock, pipeline
from collector.ledger import CollectionRun, RunStatus, SchoolRun, Trigger, UnitStatus
from collector.signals import run_closed
from proj import sentry
from schedules.apply import apply_schedules
from tests.processes import run_python
from tests.storage.factories import MONDAY, SUNDAY, make_school

DSN = "https://0123456789abcdef@sentry.invalid/1"
NEIS_KEY = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
DB_PASSWORD = "hunter2-db-password"


class RecordingTransport(Transport):
    """Keeps every envelope the SDK would send."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    def items(self, kind: str) -> list[dict]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.headers.get("type") == kind
        ]

    def raw(self) -> str:
        return "".join(envelope.serialize().decode("utf-8") for envelope in self.envelopes)


@pytest.fixture
def recorded():
    transport = RecordingTransport()
    assert sentry.init(DSN, transport=transport)
    yield transport
    run_closed.disconnect(dispatch_uid="proj.sentry.check_in")
    sentry_sdk.get_global_scope().set_client(None)  # off again for the tests that follow


def _scheduled_run(level="middle", *, failed=False, hours=2):
    apply_schedules()
    school = make_school("7010002", "B10", "중학교")
    run = CollectionRun.objects.create(
        level=level,
        date_from=MONDAY,
        date_to=SUNDAY,
        trigger=Trigger.SCHEDULE,
        trigger_key=pipeline.schedule_key(level, (), MONDAY, SUNDAY),
    )
    CollectionRun.objects.filter(pk=run.pk).update(
        created_at=clock.now() - datetime.timedelta(hours=hours)
    )
    run.refresh_from_db()
    status = UnitStatus.FAILED if failed else UnitStatus.DONE
    SchoolRun.objects.create(run=run, school=school, status=status)
    return run


def test_it_stays_off_without_a_dsn():
    sentry_sdk.get_global_scope().set_client(None)
    assert sentry.init("") is False
    assert not sentry_sdk.get_client().is_active()


def test_the_settings_start_it_only_when_sentry_dsn_is_set():
    code = (
        "import django, sentry_sdk\n"
        "django.setup()\n"
        "client = sentry_sdk.get_client()\n"
        "print(client.is_active(), client.options['before_send'] is not None)\n"
    )
    for dsn, expected in ((None, "False False"), (DSN, "True True")):
        done = run_python(code, {"SENTRY_DSN": dsn})
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected


@pytest.mark.django_db
def test_a_weekly_run_checks_in_when_the_ledger_closes_it(
    recorded, django_capture_on_commit_callbacks
):
    run = _scheduled_run()
    with django_capture_on_commit_callbacks(execute=True):
        run.start()  # beat fired it: no check-in yet
    assert recorded.items("check_in") == []
    run.started_at = clock.now() - datetime.timedelta(hours=2)
    run.save(update_fields=["started_at"])
    with django_capture_on_commit_callbacks() as callbacks:
        assert run.close_if_complete()
    assert recorded.items("check_in") == [], "sent before the close was committed"
    for callback in callbacks:
        callback()
    (check_in,) = recorded.items("check_in")
    assert check_in["monitor_slug"] == "collect-middle-weekly"
    assert check_in["status"] == "ok"
    assert check_in["duration"] == pytest.approx(2 * 3600, abs=5)
    assert check_in["monitor_config"]["schedule"] == {"type": "crontab", "value": "0 5 * * 6"}
    assert check_in["monitor_config"]["timezone"] == "Asia/Seoul"


@pytest.mark.django_db
def test_a_run_with_failed_schools_checks_in_as_an_error(
    recorded, django_capture_on_commit_callbacks
):
    run = _scheduled_run(failed=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert run.close_if_complete()
    assert run.status == RunStatus.PARTIAL
    assert [c["status"] for c in recorded.items("check_in")] == ["error"]


@pytest.mark.django_db
def test_a_cancelled_weekly_run_checks_in_as_an_error(recorded, django_capture_on_commit_callbacks):
    run = _scheduled_run()
    SchoolRun.objects.filter(run=run).update(status=UnitStatus.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        run.cancel()
        run.cancel()  # already closed: no second check-in
    assert [c["status"] for c in recorded.items("check_in")] == ["error"]


@pytest.mark.django_db
def test_a_run_started_by_hand_does_not_check_in(recorded, django_capture_on_commit_callbacks):
    run = _scheduled_run()
    CollectionRun.objects.filter(pk=run.pk).update(trigger=Trigger.ADMIN, trigger_key=None)
    run.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        assert run.close_if_complete()
    assert recorded.items("check_in") == []


def _fail_with_secrets():
    key = NEIS_KEY  # noqa: F841 (a local variable the event's stack frame shows)
    database = f"postgres://neis:{DB_PASSWORD}@db:5432/neis"
    url = f"https://open.example/hub/hisTimetable?KEY={NEIS_KEY}&Type=json"
    raise RuntimeError(f"cannot store {url} in {database}")


@pytest.mark.django_db
def test_events_carry_no_neis_key_or_password(recorded, settings):
    settings.NEIS_API_KEY = NEIS_KEY
    logger = logging.getLogger("collector.pipeline")
    logger.warning("fetching with %s", NEIS_KEY)  # a breadcrumb
    try:
        _fail_with_secrets()
    except RuntimeError:
        sentry_sdk.capture_exception()
    logger.error("database at postgres://neis:%s@db/neis is down", DB_PASSWORD)
    sentry_sdk.flush()
    events = recorded.items("event")
    assert len(events) == 2
    raw = recorded.raw()
    assert NEIS_KEY not in raw
    assert DB_PASSWORD not in raw
    # What is left is still useful: the error, the frame, masked values in place.
    (exception,) = events[0]["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert "KEY=***" in exception["value"] and "neis:***@db" in exception["value"]
    frame = exception["stacktrace"]["frames"][-1]
    assert frame["function"] == "_fail_with_secrets"
    assert frame["vars"]["key"] == sentry.MASK
    assert json.dumps(events[1]["logentry"]).count("***") >= 1
    crumbs = [c["message"] for c in events[1]["breadcrumbs"]["values"] if c.get("message")]
    assert "fetching with ***" in crumbs
