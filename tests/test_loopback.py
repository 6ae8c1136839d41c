"""Tests reach loopback only: in this process, in the processes it starts, even when swallowed.

192.0.2.1 is TEST-NET-1 (RFC 5737), never routed: if the guard ever lets a connection through,
it goes nowhere and times out after a second.
"""

import ipaddress
import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings

from tests import loopback, loopback_plugin
from tests.loopback import NonLoopbackError
from tests.processes import ROOT, child_env

pytest_plugins = ["pytester"]

REFUSED_CONNECT = "refused to connect to 192.0.2.1:80"
REFUSED_RESOLVE = "refused to resolve open.neis.go.kr"


def _connect_raw():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        sock.connect(("192.0.2.1", 80))


def _connect_ex_raw():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("192.0.2.1", 80))


@pytest.mark.parametrize(
    "reach",
    [
        pytest.param(lambda: socket.create_connection(("192.0.2.1", 80), timeout=1), id="create"),
        pytest.param(_connect_raw, id="connect"),
        pytest.param(_connect_ex_raw, id="connect_ex"),
    ],
)
def test_it_refuses_a_non_loopback_address(reach):
    with pytest.raises(NonLoopbackError, match=REFUSED_CONNECT) as caught:
        reach()
    assert not isinstance(caught.value, OSError)
    assert [REFUSED_CONNECT in refused for refused in loopback.take()] == [True]


def test_it_refuses_to_resolve_the_real_hub():
    with pytest.raises(NonLoopbackError, match=REFUSED_RESOLVE):
        socket.getaddrinfo("open.neis.go.kr", 443)
    with pytest.raises(NonLoopbackError, match=REFUSED_RESOLVE):
        socket.gethostbyname("open.neis.go.kr")
    # Not a requests.ConnectionError, which the NEIS client would classify as transient.
    with pytest.raises(NonLoopbackError, match=REFUSED_RESOLVE):
        requests.get("https://open.neis.go.kr/hub/schoolInfo", timeout=1)
    assert len(loopback.take()) == 3


@pytest.fixture
def listener():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_it_lets_loopback_through(listener):
    with socket.create_connection(("127.0.0.1", listener), timeout=5):
        pass
    with socket.create_connection(("localhost", listener), timeout=5):
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"x", ("127.0.0.2", 9))
    assert socket.getaddrinfo(None, 0, socket.AF_INET)
    assert loopback.take() == []


def test_it_fails_a_test_that_swallows_the_refusal(pytester, monkeypatch):
    pytester.makepyfile(
        """
        import socket

        def test_swallows():
            try:
                socket.create_connection(("192.0.2.1", 80), timeout=1)
            except Exception:
                pass

        def test_stays_home():
            pass
        """
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv(loopback.SWITCH, raising=False)
    result = pytester.runpytest_subprocess(
        "-p", "tests.loopback_plugin", "-p", "no:django", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_swallows*",
            "non-loopback network access:",
            f"*{REFUSED_CONNECT}*",
        ]
    )


CHILD = """
import socket, sys
try:
    socket.create_connection(("192.0.2.1", 80), timeout=1)
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(0 if sys.argv[1] == "swallow" else 3)
"""


def _child(how, env):
    return subprocess.run(
        [sys.executable, "-c", CHILD, how],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("env", [child_env, lambda: None], ids=["child_env", "inherited"])
def test_it_refuses_non_loopback_in_a_child_process(env):
    done = _child("raise", env())
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.startswith("NonLoopbackError tests may only reach loopback"), done.stdout
    assert REFUSED_CONNECT in done.stdout
    assert [REFUSED_CONNECT in refused for refused in loopback_plugin.take_refused()] == [True]


def test_it_records_a_refusal_a_child_swallowed():
    done = _child("swallow", child_env())
    assert done.returncode == 0, done.stdout + done.stderr
    refused = loopback_plugin.take_refused()
    assert len(refused) == 1
    assert refused[0].startswith("pid ") and REFUSED_CONNECT in refused[0]


def test_it_lets_a_child_reach_loopback(listener):
    code = f"import socket; socket.create_connection(('127.0.0.1', {listener}), timeout=5)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert loopback_plugin.take_refused() == []


def test_it_points_this_session_at_a_loopback_neis():
    assert loopback.is_loopback(urlsplit(settings.NEIS_BASE_URL).hostname)
    assert loopback.is_loopback(urlsplit(os.environ["NEIS_BASE_URL"]).hostname)


def test_it_points_children_at_a_loopback_neis_by_default(monkeypatch):
    monkeypatch.delenv("NEIS_BASE_URL", raising=False)
    assert child_env()["NEIS_BASE_URL"] == loopback.LOOPBACK_NEIS_URL
    assert child_env({"NEIS_BASE_URL": "http://127.0.0.1:8000"})["NEIS_BASE_URL"] == (
        "http://127.0.0.1:8000"
    )


def test_it_points_a_bare_pytest_at_a_loopback_neis():
    """pytest-django loads the settings before any conftest; the default must still win."""
    env = {name: value for name, value in os.environ.items() if name != "NEIS_BASE_URL"}
    this = f"{__file__}::test_it_points_this_session_at_a_loopback_neis"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", this],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


# 10.231.x.x: the private block of the chaos suite's second host (tests/chaos/netns.py). From
# this host such an address would go out by the default route, so the child only asks its guard
# about it and never connects to an allowed address.
ALLOWED_CHILD = """
import socket, sys
guard = sys.modules["_tests_loopback_guard"]
print(guard.is_loopback("10.231.7.1"), guard.is_loopback("10.231.7.2"))
for host in ("10.231.7.2", "192.0.2.1"):
    try:
        socket.create_connection((host, 9), timeout=0.5)
    except Exception as exc:
        print(host, type(exc).__name__)
"""


def test_it_lets_a_child_reach_exactly_the_addresses_a_test_created():
    env = child_env({loopback.ALLOW: "10.231.7.1"})
    done = subprocess.run(
        [sys.executable, "-c", ALLOWED_CHILD], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.splitlines() == [
        "True False",
        "10.231.7.2 NonLoopbackError",
        "192.0.2.1 NonLoopbackError",
    ], done.stdout + done.stderr
    assert len(loopback_plugin.take_refused()) == 2


def test_a_child_refuses_to_start_with_a_public_address_allowed():
    env = child_env({loopback.ALLOW: "192.0.2.1"})
    done = subprocess.run(
        [sys.executable, "-c", "pass"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "not an RFC 1918 address" in done.stderr


@pytest.mark.parametrize("value", ["example.org", "8.8.8.8", "192.0.2.1", "127.0.0.1,1.1.1.1"])
def test_it_allows_only_private_addresses(value):
    with pytest.raises(ValueError):
        loopback.parse_allowed(value)
    assert loopback.parse_allowed("10.231.7.1, 192.168.1.2") == {
        ipaddress.ip_address("10.231.7.1"),
        ipaddress.ip_address("192.168.1.2"),
    }


def test_this_session_allows_nothing_but_loopback():
    assert not loopback.is_loopback("10.231.7.1")
    assert loopback.ALLOW not in os.environ
