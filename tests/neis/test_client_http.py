"""The HTTP the client speaks: what a GET carries, where it goes, and which connections it
reuses. The client sends through urllib3 with what requests worked out once per URL, so each
test here pins something requests used to do for it on every page."""

from __future__ import annotations

import json

import pytest
import requests

from collector.neis.client import USER_AGENT, NeisClient
from collector.neis.errors import NeisPermanentError
from tests.neis.hostile import KEY, serve

pytest_plugins = ["tests.fixtures_neis"]

NO_DATA = json.dumps({"RESULT": {"CODE": "INFO-200", "MESSAGE": "no data"}}).encode()


def no_data(seen: list):
    """An answer of INFO-200 that keeps each request's headers in ``seen``."""

    def answer(handler):
        seen.append(handler.headers)
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(NO_DATA)))
        handler.send_header("Set-Cookie", "session=1; Path=/")
        handler.send_header("Connection", "close")  # as serve() does after every answer
        handler.end_headers()
        handler.wfile.write(NO_DATA)

    return answer


@pytest.fixture
def no_proxy_environment(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_it_encodes_the_query_as_requests_does():
    kind = "중 학교&SD_SCHUL_CODE=1+2/?#%~"
    with serve(no_data([])) as hub:
        client = NeisClient(hub.url, KEY, page_size=7, session=requests.Session())
        assert client.schools(kind=kind).rows == []
    query = {"Type": "json", "pSize": 7, "SCHUL_KND_SC_NM": kind, "pIndex": 1, "KEY": KEY}
    expected = requests.Request("GET", f"{hub.url}/hub/schoolInfo", params=query).prepare()
    assert hub.paths == [expected.path_url]


def test_it_names_itself_asks_only_for_what_it_inflates_and_keeps_no_cookies():
    seen: list = []
    with serve(no_data(seen)) as hub:
        client = NeisClient(hub.url, KEY)  # the process's shared session
        client.schools(office_code="B10")
        client.schools(office_code="B10")
    assert [headers["User-Agent"] for headers in seen] == [USER_AGENT, USER_AGENT]
    assert {headers["Accept-Encoding"] for headers in seen} == {"gzip, deflate"}
    assert [headers["Cookie"] for headers in seen] == [None, None]


def test_it_goes_through_the_proxy_the_environment_gives(no_proxy_environment):
    seen: list = []
    with serve(no_data(seen), host="127.0.0.2") as target, serve(no_data(seen)) as proxy:
        no_proxy_environment.setenv("http_proxy", proxy.url)
        NeisClient(target.url, KEY, session=requests.Session()).schools(office_code="B10")
        assert target.paths == []
        # Through an HTTP proxy the request line names the whole URL.
        assert [path.split("?")[0] for path in proxy.paths] == [f"{target.url}/hub/schoolInfo"]

        no_proxy_environment.setenv("no_proxy", "127.0.0.2")
        NeisClient(target.url, KEY, session=requests.Session()).schools(office_code="B10")
        assert [path.split("?")[0] for path in target.paths] == ["/hub/schoolInfo"]
        assert len(proxy.paths) == 1


def test_it_closes_a_connection_it_stopped_reading_and_gives_its_slot_back(neis_sim):
    session = requests.Session()
    small = NeisClient(neis_sim.url, neis_sim.key, max_body_bytes=1000, session=session)
    with pytest.raises(NeisPermanentError) as raised:
        small.schools(office_code="I10")
    assert raised.value.code == "TOO-LARGE"
    manager = session.get_adapter(neis_sim.url).poolmanager
    (pool,) = [manager.pools[key] for key in manager.pools.keys()]  # noqa: SIM118
    # The rest of the body is still on the wire, so the socket is closed; the connection
    # goes back to its pool all the same, to open a new socket when next taken.
    idle = [connection for connection in pool.pool.queue if connection is not None]
    assert [connection.sock for connection in idle] == [None]
    result = NeisClient(neis_sim.url, neis_sim.key, session=session).schools(office_code="I10")
    assert result.received == result.list_total_count > 0
