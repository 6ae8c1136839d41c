"""The one classification table, and the time rules the client derives from its clock."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from collector.clock import SEOUL
from collector.neis import client as neis
from collector.neis.errors import (
    NeisKeyError,
    NeisPermanentError,
    NeisQuotaError,
    NeisTransientError,
)
from collector.neis.records import Level

UTC = datetime.UTC


@pytest.mark.parametrize("code", ["INFO-000", "INFO-100", "INFO-200"])
def test_it_does_not_treat_success_or_no_data_as_errors(code):
    assert neis.classify(code, "message") is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("INFO-300", NeisKeyError),
        ("ERROR-290", NeisKeyError),
        ("ERROR-300", NeisPermanentError),
        ("ERROR-310", NeisPermanentError),
        ("ERROR-333", NeisPermanentError),
        ("ERROR-336", NeisPermanentError),
        ("ERROR-337", NeisQuotaError),
        ("ERROR-500", NeisTransientError),
        ("ERROR-600", NeisTransientError),
        ("ERROR-601", NeisTransientError),
        ("ERROR-999", NeisPermanentError),
        ("INFO-400", NeisPermanentError),
        ("TIMEOUT", NeisTransientError),
        ("CONNECTION", NeisTransientError),
        ("BAD-BODY", NeisTransientError),
        ("REQUEST", NeisPermanentError),
        ("HTTP-500", NeisTransientError),
        ("HTTP-502", NeisTransientError),
        ("HTTP-503", NeisTransientError),
        ("HTTP-429", NeisTransientError),
        ("HTTP-408", NeisTransientError),
        ("HTTP-404", NeisPermanentError),
        ("HTTP-403", NeisPermanentError),
    ],
)
def test_it_classifies_each_code_once(code, kind):
    error = neis.classify(code, "the message")
    assert type(error) is kind
    assert error.code == code
    assert "the message" in str(error)


def test_it_puts_the_reset_time_on_quota_errors():
    resets_at = datetime.datetime(2025, 3, 11, tzinfo=SEOUL)
    error = neis.classify("ERROR-337", "일별 트래픽 제한", resets_at=resets_at)
    assert error.resets_at == resets_at
    assert "2025-03-11T00:00:00+09:00" in str(error)


def _gave_up(reason: Exception) -> MaxRetryError:
    return MaxRetryError(None, "/hub", reason)


@pytest.mark.parametrize(
    ("exc", "became", "tag"),
    [
        (_gave_up(ConnectTimeoutError("connect")), requests.ConnectTimeout, "TIMEOUT"),
        (_gave_up(NewConnectionError(None, "refused")), requests.ConnectionError, "CONNECTION"),
        (_gave_up(ProxyError("proxy", OSError())), requests.exceptions.ProxyError, "CONNECTION"),
        (_gave_up(SSLError("handshake")), requests.exceptions.SSLError, "CONNECTION"),
        (ReadTimeoutError(None, "/hub", "read timed out"), requests.ReadTimeout, "TIMEOUT"),
        (ProtocolError("aborted", ConnectionResetError()), requests.ConnectionError, "CONNECTION"),
        (ConnectionResetError("reset"), requests.ConnectionError, "CONNECTION"),
        (ClosedPoolError(None, "closed"), requests.ConnectionError, "CONNECTION"),
        (InvalidHeader("bad"), requests.exceptions.InvalidHeader, "REQUEST"),
    ],
)
def test_it_tags_transport_failures_as_requests_did(exc, became, tag, monkeypatch):
    assert neis.transport_tag(exc) == tag

    # The client once sent through requests' adapter: the same failure became ``became``,
    # which had this tag.
    def urlopen(**kwargs):
        raise exc

    adapter = HTTPAdapter()
    monkeypatch.setattr(
        adapter, "get_connection_with_tls_context", lambda *a, **k: SimpleNamespace(urlopen=urlopen)
    )
    with pytest.raises(requests.RequestException) as raised:
        adapter.send(requests.Request("GET", "http://127.0.0.1:9/hub/schoolInfo").prepare())
    assert type(raised.value) is became


@pytest.mark.parametrize(
    "exc", [requests.exceptions.InvalidURL("bad"), requests.exceptions.MissingSchema("none")]
)
def test_it_tags_a_url_requests_refuses_as_a_bad_request(exc):
    assert neis.transport_tag(exc) == "REQUEST"


@pytest.mark.parametrize(
    ("moment", "year"),
    [
        (datetime.date(2025, 3, 1), 2025),
        (datetime.date(2025, 2, 28), 2024),
        (datetime.date(2026, 1, 15), 2025),
        (datetime.date(2025, 12, 31), 2025),
        # 2025-02-28 16:00 UTC is already 1 March in Seoul.
        (datetime.datetime(2025, 2, 28, 16, 0, tzinfo=UTC), 2025),
        (datetime.datetime(2025, 2, 28, 14, 59, tzinfo=UTC), 2024),
    ],
)
def test_it_runs_the_academic_year_from_march_to_february(moment, year):
    assert neis.academic_year(moment) == year


@pytest.mark.parametrize(
    ("now", "hour", "expected"),
    [
        (datetime.datetime(2025, 3, 10, 15, 0, tzinfo=SEOUL), 0, (2025, 3, 11, 0)),
        (datetime.datetime(2025, 3, 10, 0, 0, tzinfo=SEOUL), 0, (2025, 3, 11, 0)),
        (datetime.datetime(2025, 3, 10, 5, 0, tzinfo=SEOUL), 6, (2025, 3, 10, 6)),
        (datetime.datetime(2025, 3, 10, 7, 0, tzinfo=SEOUL), 6, (2025, 3, 11, 6)),
        # 16:30 UTC on 10 March is 01:30 on 11 March in Seoul.
        (datetime.datetime(2025, 3, 10, 16, 30, tzinfo=UTC), 0, (2025, 3, 12, 0)),
        (datetime.datetime(2025, 2, 28, 23, 0, tzinfo=SEOUL), 0, (2025, 3, 1, 0)),
    ],
)
def test_it_finds_the_next_quota_reset_in_seoul(now, hour, expected):
    reset = neis.next_quota_reset(now, hour)
    assert reset == datetime.datetime(*expected, tzinfo=SEOUL)
    assert reset.utcoffset() == datetime.timedelta(hours=9)


def client_at(now: datetime.datetime, **options) -> neis.NeisClient:
    return neis.NeisClient("http://127.0.0.1:9", "k" * 32, clock=lambda: now, **options)


def test_it_archives_years_before_the_current_one_minus_one_by_default():
    november = datetime.datetime(2025, 11, 3, 9, 0, tzinfo=SEOUL)
    assert client_at(november).archive_cutoff() == 2024
    january = datetime.datetime(2026, 1, 5, 9, 0, tzinfo=SEOUL)
    assert client_at(january).archive_cutoff() == 2024
    march = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=SEOUL)
    assert client_at(march).archive_cutoff() == 2025


def test_it_uses_a_configured_cutoff():
    november = datetime.datetime(2025, 11, 3, 9, 0, tzinfo=SEOUL)
    assert client_at(november, archive_before_ay=2023).archive_cutoff() == 2023


def test_it_routes_whole_windows_to_one_service():
    client = client_at(datetime.datetime(2025, 11, 3, tzinfo=SEOUL))
    old = (datetime.date(2024, 2, 19), datetime.date(2024, 2, 23))
    recent = (datetime.date(2024, 3, 4), datetime.date(2024, 3, 8))
    assert client.windows(Level.HIGH, *old) == [("hisTimetablebgs", *old)]
    assert client.windows(Level.ELEMENTARY, *recent) == [("elsTimetable", *recent)]


def test_it_splits_a_window_that_crosses_the_cutoff():
    client = client_at(datetime.datetime(2025, 11, 3, tzinfo=SEOUL))
    windows = client.windows(Level.MIDDLE, datetime.date(2024, 2, 26), datetime.date(2024, 3, 3))
    assert windows == [
        ("misTimetablebgs", datetime.date(2024, 2, 26), datetime.date(2024, 2, 29)),
        ("misTimetable", datetime.date(2024, 3, 1), datetime.date(2024, 3, 3)),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"page_size": 0}, "page_size must be 1..1000, got 0"),
        ({"page_size": 1001}, "page_size must be 1..1000, got 1001"),
        ({"quota_reset_hour": 24}, "quota_reset_hour must be 0..23, got 24"),
        ({"read_timeout": 0}, "timeouts must be positive"),
        ({"deadline": 0}, "timeouts must be positive"),
        ({"max_body_bytes": 0}, "max_body_bytes must be positive, got 0"),
    ],
)
def test_it_refuses_settings_nothing_could_work_with(options, message):
    with pytest.raises(ValueError) as caught:
        neis.NeisClient("http://127.0.0.1:9", "key", **options)
    assert str(caught.value) == message


def test_it_refuses_a_reversed_window():
    client = client_at(datetime.datetime(2025, 11, 3, tzinfo=SEOUL))
    with pytest.raises(ValueError, match="after"):
        client.timetable(
            Level.HIGH, "B10", "7000001", datetime.date(2025, 3, 14), datetime.date(2025, 3, 10)
        )


def test_it_accepts_the_hub_url_with_or_without_its_path():
    assert neis.NeisClient("https://open.neis.go.kr/", "").base_url == "https://open.neis.go.kr/hub"
    assert neis.NeisClient("http://h:1/hub/", "").base_url == "http://h:1/hub"


def test_it_shares_one_session_per_process_and_recreates_it_after_fork(monkeypatch):
    session = neis.shared_session()
    assert neis.shared_session() is session
    assert session.headers["User-Agent"] == "neis-timetables/0.1 (+collector)"
    adapter = session.get_adapter("https://open.neis.go.kr/hub/schoolInfo")
    assert adapter.max_retries.total == 0
    assert adapter._pool_maxsize == neis.POOL_SIZE
    monkeypatch.setattr(neis, "_session_pid", -1)  # as a forked child would see it
    assert neis.shared_session() is not session


def test_it_builds_itself_from_django_settings(monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "proj.settings")
    from django.conf import settings

    client = neis.NeisClient.from_settings(api_key="f" * 32, page_size=500)
    assert client.base_url == f"{settings.NEIS_BASE_URL}/hub"
    assert client.timeout == (settings.NEIS_CONNECT_TIMEOUT, settings.NEIS_READ_TIMEOUT)
    assert client.page_size == 500
    assert client.quota_reset_hour == settings.NEIS_QUOTA_RESET_HOUR
    assert not client.keyless
