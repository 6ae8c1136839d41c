"""The key stays with NEIS: a redirect is refused, never followed, and no error carries the key
in its text or in the exceptions chained behind it (docs/neis-api.md section 8)."""

from __future__ import annotations

import socket
import time
import traceback

import pytest

from collector.neis.client import RESULT_KINDS, NeisClient
from collector.neis.errors import NeisError, NeisPermanentError
from tests.neis.hostile import KEY, SCHOOL_ROW, fixed, head, page, serve


def chained(error: BaseException) -> list[BaseException]:
    """The error and every exception behind it, through __cause__ and __context__."""
    found: list[BaseException] = []
    todo = [error]
    while todo:
        item = todo.pop()
        if item is None or any(item is seen for seen in found):
            continue
        found.append(item)
        todo += [item.__cause__, item.__context__]
    return found


def assert_no_key(error: BaseException, key: str = KEY) -> None:
    for item in chained(error):
        for shown in (str(item), repr(item), repr(item.args)):
            assert key not in shown, f"{type(item).__name__} shows the key: {shown[:200]}"
    assert key not in "".join(traceback.format_exception(error))


def answer_redirect(location: str, status: int = 302):
    def answer(handler):
        handler.wfile.write(head(status, "Redirect", Location=location, Content_Length=0))

    return answer


def fetch_schools(url: str, **options):
    return NeisClient(url, KEY, **options).schools(office_code="B10")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_it_refuses_a_redirect_to_another_host_and_never_sends_it_the_key(status):
    with serve(fixed(page([SCHOOL_ROW])), host="127.0.0.2") as other:
        # The hostile hub points at the other host with the full query, key included.
        def answer(handler):
            target = f"{other.url}{handler.path}"
            handler.wfile.write(head(status, "Redirect", Location=target, Content_Length=0))

        with serve(answer) as hub, pytest.raises(NeisPermanentError) as caught:
            fetch_schools(hub.url)
    assert other.paths == []
    error = caught.value
    assert error.code == "REDIRECT"
    assert RESULT_KINDS["REDIRECT"] is NeisPermanentError
    assert f"HTTP {status}" in error.message and "127.0.0.2" in error.message
    assert_no_key(error)


def test_it_refuses_a_redirect_on_the_same_host_too():
    with (
        serve(answer_redirect("/hub/schoolInfo?moved=1")) as hub,
        pytest.raises(NeisPermanentError) as caught,
    ):
        fetch_schools(hub.url)
    assert caught.value.code == "REDIRECT"
    assert len(hub.paths) == 1  # asked once, not again at the new place
    assert "127.0.0.1" in caught.value.message


def test_it_refuses_a_redirect_to_plain_http_and_names_the_scheme():
    # No TLS server here; an https hub redirecting to http takes the same path: never followed.
    location = "http://127.0.0.2:9/hub/schoolInfo"
    with serve(answer_redirect(location)) as hub, pytest.raises(NeisPermanentError) as caught:
        fetch_schools(hub.url)
    assert caught.value.code == "REDIRECT"
    assert "http://127.0.0.2" in caught.value.message


@pytest.mark.parametrize(
    "location",
    [
        "http://[::1",  # an unclosed IPv6 literal
        "http://\x1b[31mevil.example/",  # a terminal escape in the host
        "http://127.0.0.1:99999/hub",  # a port out of range
        "",  # no target at all
        "\x00",
    ],
)
def test_it_classifies_a_malformed_redirect_instead_of_crashing(location):
    with serve(answer_redirect(location)) as hub, pytest.raises(NeisPermanentError) as caught:
        fetch_schools(hub.url)
    assert caught.value.code == "REDIRECT"
    assert "\x1b" not in str(caught.value) and "\x00" not in str(caught.value)
    assert_no_key(caught.value)


def test_it_does_not_read_the_body_of_a_redirect():
    # A redirect that streams forever: refusing it must not mean downloading it first.
    def answer(handler):
        handler.wfile.write(
            head(302, "Found", Location="http://127.0.0.2:9/", Content_Length=10**12)
        )
        chunk = b" " * 65536
        for _ in range(100_000):
            handler.wfile.write(chunk)

    started = time.monotonic()
    with serve(answer) as hub, pytest.raises(NeisPermanentError) as caught:
        fetch_schools(hub.url)
    assert caught.value.code == "REDIRECT"
    assert time.monotonic() - started < 5


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def html_echo(status: int):
    def answer(handler):
        data = f"<html><title>{status} for {handler.path}</title></html>".encode()
        handler.wfile.write(head(status, "X", Content_Length=len(data)) + data)

    return answer


def stall(handler):
    time.sleep(2)


def truncated(handler):
    handler.wfile.write(head(200, Content_Length=1000) + b'{"schoolInfo": [')


def trickle(handler):
    handler.wfile.write(head(200, Content_Length=1000))
    for _ in range(30):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.1)


def oversized(handler):
    handler.wfile.write(head(200, Content_Length=10**9))


def echo_redirect(handler):
    location = f"http://127.0.0.2:9{handler.path}"
    handler.wfile.write(head(302, "Found", Location=location, Content_Length=0))


def echo_key_in_json(handler):
    # A JSON body whose keys and RESULT message quote the URL: bad bodies that name the key.
    data = (
        '{"RESULT": {"CODE": "' + handler.path + '", "MESSAGE": "' + handler.path + '"}}'
    ).encode()
    handler.wfile.write(head(200, Content_Length=len(data)) + data)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (html_echo(200), "BAD-BODY"),
        (html_echo(502), "HTTP-502"),
        (stall, "TIMEOUT"),
        (truncated, "CONNECTION"),
        (trickle, "DEADLINE"),
        (oversized, "TOO-LARGE"),
        (echo_redirect, "REDIRECT"),
        (echo_key_in_json, None),
    ],
    ids=[
        "html-200",
        "html-502",
        "timeout",
        "truncated",
        "deadline",
        "too-large",
        "redirect",
        "json-echo",
    ],
)
def test_it_keeps_the_key_out_of_every_exception_in_the_chain(answer, code):
    with serve(answer) as hub, pytest.raises(NeisError) as caught:
        fetch_schools(hub.url, read_timeout=0.5, deadline=1.0)
    if code:
        assert caught.value.code == code
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert_no_key(caught.value)


def test_it_keeps_the_key_out_of_the_chain_of_a_connection_error():
    with pytest.raises(NeisError) as caught:
        fetch_schools(f"http://127.0.0.1:{closed_port()}")
    assert caught.value.code == "CONNECTION"
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert_no_key(caught.value)
