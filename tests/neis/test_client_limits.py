"""Bounded answers: a cap on the body's bytes, compressed and inflated, a deadline on the whole
request and at most pSize rows a page; each breach is a named error and memory stays small."""

from __future__ import annotations

import time
import tracemalloc
import zlib

import pytest
import requests

from collector.neis.client import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY_BYTES,
    RESULT_KINDS,
    NeisClient,
)
from collector.neis.errors import NeisError, NeisPermanentError, NeisTransientError
from tests.neis.hostile import KEY, SCHOOL_ROW, fixed, head, page, serve

pytest_plugins = ["tests.fixtures_neis"]

MiB = 1024 * 1024
CHUNK = b" " * 65536


def fetch_schools(url: str, **options):
    return NeisClient(url, KEY, **options).schools(office_code="B10")


def peak_while(call) -> tuple[BaseException | None, int]:
    """Run ``call``; return what it raised (or None) and the peak of traced allocations."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            call()
        except Exception as exc:  # the test asserts on it
            raised = exc
        else:
            raised = None
        return raised, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def stream(total: int, *, length: int | None = None, chunked: bool = False, status: int = 200):
    """An answer of ``total`` spaces: announced by Content-Length, chunked, or until close."""

    def answer(handler):
        headers = {"Content_Length": length} if length is not None else {}
        if chunked:
            headers = {"Transfer_Encoding": "chunked"}
        handler.wfile.write(head(status, "X", **headers))
        for _ in range(total // len(CHUNK)):
            if chunked:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            else:
                handler.wfile.write(CHUNK)
        if chunked:
            handler.wfile.write(b"0\r\n\r\n")

    return answer


def test_it_names_each_breach_in_the_one_classification_table():
    assert RESULT_KINDS["TOO-LARGE"] is NeisPermanentError
    assert RESULT_KINDS["TOO-MANY-ROWS"] is NeisPermanentError
    assert RESULT_KINDS["DEADLINE"] is NeisTransientError
    assert DEFAULT_MAX_BODY_BYTES // MiB == 16
    assert DEFAULT_DEADLINE == 60.0


def test_it_refuses_a_body_announced_over_the_cap_without_reading_it():
    size = 200 * MiB
    with serve(stream(size, length=size)) as hub:
        started = time.monotonic()
        raised, peak = peak_while(lambda: fetch_schools(hub.url))
    assert isinstance(raised, NeisPermanentError) and raised.code == "TOO-LARGE"
    assert "209715200 bytes" in raised.message and "16777216" in raised.message
    assert peak < 8 * MiB
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("chunked", [False, True], ids=["until-close", "chunked"])
def test_it_stops_reading_an_unannounced_body_at_the_cap(chunked):
    with serve(stream(200 * MiB, chunked=chunked)) as hub:
        raised, peak = peak_while(lambda: fetch_schools(hub.url))
    assert isinstance(raised, NeisPermanentError) and raised.code == "TOO-LARGE"
    assert peak < 3 * DEFAULT_MAX_BODY_BYTES


def test_it_honours_a_smaller_cap():
    body = page([SCHOOL_ROW] * 20)
    with serve(fixed(body)) as hub:
        with pytest.raises(NeisPermanentError, match="TOO-LARGE"):
            fetch_schools(hub.url, max_body_bytes=len(body) - 1)
        assert fetch_schools(hub.url, max_body_bytes=len(body)).received == 20


def test_it_reports_an_oversized_error_page_by_its_status():
    size = 200 * MiB
    with (
        serve(stream(size, length=size, status=503)) as hub,
        pytest.raises(NeisTransientError) as caught,
    ):
        fetch_schools(hub.url)
    assert caught.value.code == "HTTP-503"
    assert "over" in caught.value.message


def gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(min(size, MiB))
    return b"".join([*(packer.compress(zeros) for _ in range(size // len(zeros))), packer.flush()])


# Gzip bombs: 1 GiB of zeros as 1024 gzip members of 1 MiB each (about 1 MB, built at once;
# gzip allows several members and every client reads them), and 64 MiB in one stream (one
# member, inflated in bounded steps all the same).
BOMBS = {
    "1-GiB-in-members": lambda: gzip_of_zeros(MiB) * 1024,
    "64-MiB-stream": lambda: gzip_of_zeros(64 * MiB),
}


@pytest.mark.parametrize("bomb", BOMBS)
def test_it_refuses_a_gzip_bomb_in_bounded_memory(bomb):
    packed = BOMBS[bomb]()
    assert len(packed) < 2 * MiB
    with serve(fixed(packed, Content_Encoding="gzip")) as hub:
        started = time.monotonic()
        raised, peak = peak_while(lambda: fetch_schools(hub.url))
    assert isinstance(raised, NeisPermanentError), raised  # permanent: never retried
    assert raised.code == "TOO-LARGE"
    assert "inflates" in raised.message
    assert peak < 100 * MiB, f"peak {peak / MiB:.0f} MiB"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-gzip"])
def test_it_reads_a_compressed_page_within_the_cap(encoding):
    body = page([SCHOOL_ROW] * 20)
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    packed = packer.compress(body) + packer.flush()
    with serve(fixed(packed, Content_Encoding=encoding)) as hub:
        result = fetch_schools(hub.url)
    assert result.received == 20 and result.rows[0].code == "7010057"


def test_it_reads_a_gzip_body_of_several_members():
    body = page([SCHOOL_ROW] * 20)
    half = len(body) // 2
    members = [zlib.compressobj(6, zlib.DEFLATED, 31) for _ in range(2)]
    packed = b"".join(
        m.compress(part) + m.flush()
        for m, part in zip(members, (body[:half], body[half:]), strict=True)
    )
    with serve(fixed(packed, Content_Encoding="gzip")) as hub:
        assert fetch_schools(hub.url).received == 20


@pytest.mark.parametrize(
    "packed", [b"not gzip at all", zlib.compress(b'{"RESULT": {}}')[:-6]], ids=["junk", "cut"]
)
def test_it_calls_a_broken_compressed_body_bad(packed):
    with (
        serve(fixed(packed, Content_Encoding="gzip")) as hub,
        pytest.raises(NeisTransientError) as caught,
    ):
        fetch_schools(hub.url)
    assert caught.value.code == "BAD-BODY"


def test_it_calls_an_encoding_it_did_not_ask_for_bad():
    with serve(fixed(b"{}", Content_Encoding="br")) as hub, pytest.raises(NeisError) as caught:
        fetch_schools(hub.url)
    assert caught.value.code == "BAD-BODY"
    assert "br" in caught.value.message


def trickle(gap: float, total: float = 4.0):
    """Announce 10,000 bytes, then send one every ``gap`` seconds for ``total`` seconds."""

    def answer(handler):
        handler.wfile.write(head(200, Content_Length=10_000))
        handler.wfile.flush()
        stop = time.monotonic() + total
        while time.monotonic() < stop:
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(gap)

    return answer


@pytest.mark.parametrize("gap", [0.02, 0.4], ids=["fast-trickle", "slow-trickle"])
def test_it_stops_a_trickling_answer_at_its_deadline(gap):
    with serve(trickle(gap)) as hub:
        started = time.monotonic()
        with pytest.raises(NeisTransientError) as caught:
            fetch_schools(hub.url, read_timeout=1.0, deadline=1.0)
        elapsed = time.monotonic() - started
    assert caught.value.code == "DEADLINE"
    assert "1.0 s" in caught.value.message
    assert elapsed < 1.5, elapsed


def test_it_reads_a_slow_answer_that_ends_in_time():
    body = page([SCHOOL_ROW])

    def answer(handler):
        handler.wfile.write(head(200, Content_Length=len(body)))
        for index in range(0, len(body), len(body) // 4 + 1):
            handler.wfile.write(body[index : index + len(body) // 4 + 1])
            handler.wfile.flush()
            time.sleep(0.1)

    with serve(answer) as hub:
        assert fetch_schools(hub.url, deadline=3.0).received == 1


def test_it_refuses_a_page_with_more_rows_than_it_asked_for():
    with serve(fixed(page([SCHOOL_ROW] * 51))) as hub, pytest.raises(NeisPermanentError) as e:
        fetch_schools(hub.url, page_size=50)
    assert e.value.code == "TOO-MANY-ROWS"
    assert "51" in e.value.message and "50" in e.value.message


def test_it_refuses_a_page_of_a_million_rows_in_bounded_memory():
    body = page([{}] * 1_000_000)
    with serve(fixed(body)) as hub:
        raised, peak = peak_while(lambda: fetch_schools(hub.url))
    assert isinstance(raised, NeisPermanentError) and raised.code == "TOO-MANY-ROWS"
    assert peak < 3 * len(body) + 8 * MiB, f"peak {peak / MiB:.0f} MiB for {len(body)} bytes"


def test_it_takes_the_five_rows_of_sample_mode_whatever_the_page_size(neis_sim):
    client = NeisClient(neis_sim.url, "", page_size=2, clock=neis_sim.control.now)
    assert client.schools(office_code="I10").received == 5


def test_it_keeps_one_connection_alive_across_pages(neis_sim):
    session = requests.Session()
    client = NeisClient(
        neis_sim.url, neis_sim.key, page_size=50, session=session, clock=neis_sim.control.now
    )
    result = client.schools(office_code="I10")
    assert result.pages >= 3
    manager = session.get_adapter(neis_sim.url).poolmanager
    # keys(): urllib3's pool container refuses plain iteration.
    pools = [manager.pools[key] for key in manager.pools.keys()]  # noqa: SIM118
    assert [pool.num_connections for pool in pools] == [1]
