"""No secret on an error page: Django's debug page lists every setting and the local variables
of every frame, and the error report sent with DEBUG off holds the same."""

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import path

from proj import redact

DB_PASSWORD = "db-pw-1d8f"
BROKER_PASSWORD = "broker-pw-7c2e"
LIMITER_PASSWORD = "limiter-pw-93ab"
NEIS_KEY = "neiskey5b1c0e7a9d24f6"
SECOND_KEY = "neiskey2c9a1f03e6b7d8"  # several keys (NEIS_API_KEYS): the second is as secret
SECRETS = (DB_PASSWORD, BROKER_PASSWORD, LIMITER_PASSWORD, NEIS_KEY, SECOND_KEY)

DEPLOYED = {
    "DATABASE_URL": f"postgres://neis:{DB_PASSWORD}@db:5432/neis",
    "CELERY_BROKER_URL": f"redis://:{BROKER_PASSWORD}@redis:6379/0",
    "NEIS_LIMITER_URL": f"redis://default:{LIMITER_PASSWORD}@redis:6379/1",
    "NEIS_API_KEY": NEIS_KEY,
    "NEIS_API_KEYS": f"{NEIS_KEY},{SECOND_KEY}",
}
# The same as settings: NEIS_API_KEYS is a tuple there.
SETTINGS = {**DEPLOYED, "NEIS_API_KEYS": (NEIS_KEY, SECOND_KEY)}


def boom(request):
    # What a failing view holds: URLs with passwords, a NEIS request URL, the key in a dict.
    broker = settings.CELERY_BROKER_URL
    limiter = settings.NEIS_LIMITER_URL
    neis_url = f"https://open.neis.go.kr/hub/misTimetable?KEY={settings.NEIS_API_KEY}&pIndex=1"
    params = {"KEY": settings.NEIS_API_KEY, "pSize": 1000, "other": settings.NEIS_API_KEYS[1]}
    try:
        raise OSError(f"Error 111 connecting to {limiter}")
    except OSError as exc:
        raise ConnectionError(f"cannot send to {broker} for {neis_url} with {params}") from exc


urlpatterns = [path("boom/", boom)]


@pytest.fixture
def debug_page_client():
    with override_settings(ROOT_URLCONF=__name__, DEBUG=True, **SETTINGS):
        yield Client(raise_request_exception=False)


def _assert_clean(body):
    for secret in SECRETS:
        assert secret not in body


@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_the_debug_page_shows_no_password_and_no_key(debug_page_client, accept):
    # runserver puts the whole environment into request.META; so does this request.
    response = debug_page_client.get("/boom/", HTTP_ACCEPT=accept, **DEPLOYED)
    body = response.content.decode()

    assert response.status_code == 500
    assert "ConnectionError" in body
    assert "DATABASE_URL" in body and "CELERY_BROKER_URL" in body  # listed, masked
    assert "redis://:***@redis:6379/0" in body
    _assert_clean(body)


@override_settings(**SETTINGS)
def test_the_error_report_holds_no_password_and_no_key(rf):
    request = rf.get("/boom/")
    try:
        boom(request)
    except ConnectionError as exc:
        reporter = redact.SafeExceptionReporter(request, type(exc), exc, exc.__traceback__)
    _assert_clean(reporter.get_traceback_text())
    _assert_clean(reporter.get_traceback_html())


def test_it_masks_credentials_wherever_they_appear():
    with override_settings(NEIS_API_KEY=NEIS_KEY, NEIS_API_KEYS=(NEIS_KEY, SECOND_KEY)):
        masked = redact.redact(
            f"postgres://neis:{DB_PASSWORD}@db/neis and /hub?key=abc&x=1 and {NEIS_KEY}"
            f" or {SECOND_KEY}"
        )
    assert masked == "postgres://neis:***@db/neis and /hub?key=***&x=1 and *** or ***"
