"""Recorded bodies the simulator never serves (invalid rows, codes inside the head), sent to
the client by a one-file HTTP server, so the whole request-to-FetchResult path runs."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import logging
import threading
from pathlib import Path

import pytest

from collector.neis.client import NeisClient
from collector.neis.errors import NeisError, NeisTransientError
from collector.neis.records import Level
from tests.neis.hostile import SCHOOL_ROW, fixed, page, serve

BODIES = Path(__file__).resolve().parent / "bodies"
NOW = datetime.datetime(2025, 11, 3, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=9)))
MONDAY, FRIDAY = datetime.date(2025, 3, 10), datetime.date(2025, 3, 14)


@contextlib.contextmanager
def serving(name: str):
    """A server answering every GET with one recorded body; yields (url, paths asked)."""
    data = (BODIES / name).read_bytes()
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str, start=MONDAY, end=FRIDAY):
    client = NeisClient(url, "k" * 32, clock=lambda: NOW)
    return client.timetable(Level.HIGH, "B10", "7000001", start, end)


def test_it_drops_invalid_rows_and_counts_why(caplog):
    with serving("his_invalid_rows.json") as (url, _):
        result = fetch(url)
    assert [r.period for r in result.rows] == [1, 7]
    assert (result.received, result.list_total_count, result.missing) == (6, 6, 0)
    assert result.invalid == 4
    assert result.invalid_reasons == {"PERIO": 2, "ALL_TI_YMD": 1, "GRADE": 1}
    assert "dropped 4 invalid rows (ALL_TI_YMD=1, GRADE=1, PERIO=2)" in caplog.text


def test_it_accepts_info_100_in_the_head_and_logs_it(caplog):
    caplog.set_level(logging.INFO, logger="collector.neis.client")
    with serving("his_info_100_head.json") as (url, _):
        result = fetch(url)
    assert [r.subject for r in result.rows] == ["국어"]
    assert "INFO-100" in caplog.text


def test_it_raises_for_an_error_code_inside_the_head():
    with serving("his_error_500_head.json") as (url, _), pytest.raises(NeisTransientError) as e:
        fetch(url)
    assert e.value.code == "ERROR-500"


def test_it_reads_an_archive_answer_under_the_current_envelope_key():
    with serving("his_archive_page.json") as (url, paths):
        result = fetch(url, datetime.date(2022, 12, 5), datetime.date(2022, 12, 9))
    assert paths[0].startswith("/hub/hisTimetablebgs?")
    assert result.services == ["hisTimetablebgs"]
    assert [r.class_name for r in result.rows] == ["01", "01"]


def test_it_accepts_raw_control_characters_over_http():
    monday, friday = datetime.date(2025, 11, 10), datetime.date(2025, 11, 14)
    with serving("els_control_chars.json") as (url, _):
        client = NeisClient(url, "k" * 32, clock=lambda: NOW)
        result = client.timetable(Level.ELEMENTARY, "J10", "7530071", monday, friday)
    assert result.rows[2].subject == "창의적 체험활동"
    assert result.rows[2].subject_raw == "창의적\t체험활동\n"


LESSON = {
    "ATPT_OFCDC_SC_CODE": "B10",
    "SD_SCHUL_CODE": "7000001",
    "AY": "2024",
    "SEM": "2",
    "ALL_TI_YMD": "20250310",
    "GRADE": "1",
    "CLASS_NM": "1",
    "PERIO": "1",
    "ITRT_CNTNT": "국어",
    "LOAD_DTM": "20250312",
}


def test_it_drops_rows_of_another_school_or_outside_the_window(db):
    from collector import storage
    from tests.storage.factories import make_school

    served = [
        LESSON,
        {**LESSON, "PERIO": "2"},
        {**LESSON, "SD_SCHUL_CODE": "7000002"},  # another school
        {**LESSON, "ATPT_OFCDC_SC_CODE": "C10"},  # the same code under another office
        {**LESSON, "ALL_TI_YMD": "20250307"},  # the Friday before the window
        {**LESSON, "ALL_TI_YMD": "20250315"},  # the Saturday after it
    ]
    with serve(fixed(page(served, "hisTimetable"))) as hub:
        result = fetch(hub.url)
    assert [record.period for record in result.rows] == [1, 2]
    assert (result.received, result.invalid) == (6, 4)
    assert result.invalid_reasons == {"other-school": 2, "outside-window": 2}
    # What the client returns, storage takes: it refuses other schools and other dates.
    school = make_school("7000001", "B10", "고등학교")
    stored = storage.store_lessons(school, MONDAY, FRIDAY, result.rows)
    assert stored.inserted == 2


def test_it_drops_schools_of_another_office_or_code_than_asked():
    other_office = {**SCHOOL_ROW, "ATPT_OFCDC_SC_CODE": "C10", "SD_SCHUL_CODE": "7150451"}
    with serve(fixed(page([SCHOOL_ROW, other_office]))) as hub:
        client = NeisClient(hub.url, "k" * 32, clock=lambda: NOW)
        by_office = client.schools(office_code="B10")
        by_code = client.schools(school_code="7150451")
    assert [record.code for record in by_office.rows] == ["7010057"]
    assert by_office.invalid_reasons == {"other-office": 1}
    assert [record.code for record in by_code.rows] == ["7150451"]
    assert by_code.invalid_reasons == {"other-school": 1}


@pytest.mark.parametrize(
    "body",
    [
        b"<html><title>\x1b[2J\x1b]0;owned\x07 maintenance</title></html>",
        b'{"RESULT": {"CODE": "INFO-300", "MESSAGE": "blocked\\u001b[31m\\u009b2J\\n"}}',
    ],
    ids=["html-title", "result-message"],
)
def test_it_reports_what_a_server_wrote_without_its_control_characters(body, caplog):
    caplog.set_level(logging.DEBUG)
    with serve(fixed(body)) as hub, pytest.raises(NeisError) as caught:
        NeisClient(hub.url, "k" * 32, clock=lambda: NOW).schools()
    shown = str(caught.value)
    assert shown.isprintable(), repr(shown)
    assert all(record.getMessage().isprintable() for record in caplog.records)


def test_it_raises_for_a_page_whose_rows_json_refuses_once_they_are_read():
    """Rows are left undecoded while paging (parse.peek_envelope): a row json refuses (a
    number of 19 digits) is the same BAD-BODY, raised when the records are asked for."""
    row = {"ATPT_OFCDC_SC_CODE": "B10", "SD_SCHUL_CODE": "7000001", "AY": "2025"}
    body = page([row], service="hisTimetable").replace(b'"2025"', b"1234567890123456789")
    with serve(fixed(body)) as hub:
        result = fetch(hub.url)
    assert (result.received, result.list_total_count) == (1, 1)
    with pytest.raises(NeisTransientError) as caught:
        result.check()
    assert caught.value.code == "BAD-BODY"
    assert "hisTimetable page 1: HTTP 200, " in caught.value.message
    with pytest.raises(NeisTransientError):
        result.rows  # noqa: B018 - reading the records checks first
