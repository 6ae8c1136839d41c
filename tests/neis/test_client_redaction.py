"""The key rides in every URL; it must never reach an exception, a log line or a repr."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import logging
import socket
import threading
import traceback

import pytest

from collector.neis.client import NeisClient
from collector.neis.errors import NeisError, NeisTransientError
from collector.neis.records import Level

pytest_plugins = ["tests.fixtures_neis"]

KEY = "0123456789abcdef0123456789abcdef"
MONDAY = datetime.date(2026, 11, 16)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def everything_printed(error: BaseException) -> str:
    """All the text an error can leak: str, repr, args and a rendered traceback."""
    rendered = "".join(traceback.format_exception(error))
    return "\n".join([str(error), repr(error), repr(error.args), rendered])


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with an HTML error page that quotes the URL, key and all."""

    status = 502

    def do_GET(self):
        page = f"<html><head><title>{self.status} for {self.path}</title></head></html>"
        data = page.encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # keep test output quiet
        pass


@contextlib.contextmanager
def echo_server(status: int):
    handler = type("Handler", (EchoHandler,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_it_keeps_the_key_out_of_its_repr():
    client = NeisClient("https://open.neis.go.kr", KEY)
    assert KEY not in repr(client)
    assert "***" in repr(client)
    assert KEY not in str(client)


def test_it_keeps_the_key_out_of_a_connection_error_to_a_closed_port(caplog):
    caplog.set_level(logging.DEBUG)
    client = NeisClient(f"http://127.0.0.1:{closed_port()}", KEY, connect_timeout=2)
    with pytest.raises(NeisTransientError) as caught:
        client.timetable(Level.HIGH, "B10", "7000001", MONDAY, MONDAY)
    error = caught.value
    assert error.code == "CONNECTION"
    assert "127.0.0.1" in str(error)  # still says what failed
    assert "KEY=***" in str(error)
    assert error.__cause__ is None
    assert KEY not in everything_printed(error)
    assert caplog.records, "the request should have been logged at DEBUG"
    assert KEY not in caplog.text
    assert all(KEY not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(("status", "code"), [(502, "HTTP-502"), (200, "BAD-BODY")])
def test_it_keeps_the_key_out_of_an_html_page_that_quotes_the_url(caplog, status, code):
    caplog.set_level(logging.DEBUG)
    with echo_server(status) as url:
        client = NeisClient(url, KEY)
        with pytest.raises(NeisError) as caught:
            client.schools(office_code="B10")
    assert caught.value.code == code
    assert "/hub/schoolInfo" in str(caught.value)
    assert KEY not in everything_printed(caught.value)
    assert KEY not in caplog.text


def test_it_keeps_the_key_out_of_every_outcome_against_the_simulator(neis_sim_factory, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # Django's LOGGING quietens it
    sim = neis_sim_factory(hang_seconds=1.0)
    client = NeisClient(sim.url, sim.key, read_timeout=0.3, page_size=50, clock=sim.control.now)
    errors: list[NeisError] = []

    def attempt():
        try:
            client.schools(office_code="I10")
        except NeisError as exc:
            errors.append(exc)

    attempt()  # success over three pages
    for fault in ("http502", "maintenance", "hang", "drop", "partial", "truncated", "error500"):
        sim.control.inject(fault)
        attempt()
    sim.control.set_key_state(sim.key, "blocked")
    attempt()
    sim.control.set_key_state(sim.key, "valid")
    sim.control.set_quota(0)
    attempt()

    assert [e.code for e in errors] == [
        "HTTP-502",
        "BAD-BODY",
        "TIMEOUT",
        "CONNECTION",
        "CONNECTION",
        "BAD-BODY",
        "ERROR-500",
        "INFO-300",
        "ERROR-337",
    ]
    for error in errors:
        assert sim.key not in everything_printed(error)
    assert any("urllib3" in record.name for record in caplog.records)
    assert sim.key not in caplog.text
    assert all(sim.key not in record.getMessage() for record in caplog.records)


def test_every_configured_key_is_kept_out_of_logs_and_the_ledger(settings, caplog):
    """With several keys (NEIS_API_KEYS) each of them is a secret, not only the first."""
    from collector.ledger import error_fields
    from collector.neis.redact import RedactKeyFilter

    second = "fedcba9876543210fedcba9876543210"
    settings.NEIS_API_KEY, settings.NEIS_API_KEYS = KEY, (KEY, second)
    logger = logging.getLogger("tests.redaction.several")
    logger.addFilter(RedactKeyFilter())
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("asked with %s then %s", KEY, second)
    assert caplog.records[-1].getMessage() == "asked with *** then ***"
    fields = error_fields(NeisError("ERROR-290", f"key {second} refused"))
    assert second not in fields["last_error"] and "***" in fields["last_error"]
