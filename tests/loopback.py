"""Tests reach loopback only: a socket guard for the test process and its child processes.

Connecting to, sending to or resolving anything but 127.0.0.0/8, ::1, ``localhost`` or a Unix
socket raises ``NonLoopbackError`` and is recorded. The record is what makes a test fail even
when the code under test catches the exception and carries on (``loopback_plugin``).

The pytest process installs the guard itself. A child process installs it from
``guard/sitecustomize.py`` when its environment has ``TEST_LOOPBACK_ONLY=1`` and that folder on
``PYTHONPATH`` (``child_environ``); it records to the file named by ``TEST_LOOPBACK_LOG``.

One exception, for a child only: ``TEST_LOOPBACK_ALLOW`` names private addresses that a test
created on this machine (the chaos suite's second host, a network namespace joined by a veth
pair: ``tests/chaos/netns.py``); the child may reach exactly those too. Anything else in it
(a name, a public address) stops the child at start.

Standard library only: a child imports this before anything else, whatever program it runs.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import sys
import threading
from pathlib import Path

SITE_DIR = Path(__file__).resolve().parent / "guard"
SWITCH = "TEST_LOOPBACK_ONLY"
LOG = "TEST_LOOPBACK_LOG"
ALLOW = "TEST_LOOPBACK_ALLOW"
# The discard port of this machine: nothing listens there, so a forgotten NEIS_BASE_URL fails
# fast with "connection refused" instead of reaching the real hub.
LOOPBACK_NEIS_URL = "http://127.0.0.1:9"

_violations: list[str] = []
_lock = threading.Lock()
_log_path: str | None = None
_allowed: frozenset[ipaddress.IPv4Address] = frozenset()
# Where an allowed address may lie: the private IPv4 blocks of RFC 1918, nothing routable.
PRIVATE = tuple(map(ipaddress.ip_network, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")))


class NonLoopbackError(Exception):
    """A test tried to reach a non-loopback address.

    Deliberately not an ``OSError``: code that handles network failures must not take it for
    one and retry, fall back or report "NEIS unreachable" as if that were the expected outcome.
    """


def is_loopback(host: str | bytes) -> bool:
    """True for ``localhost`` and literal addresses in 127.0.0.0/8 or ::1 (or IPv4-mapped),
    and for the addresses this process was allowed (``TEST_LOOPBACK_ALLOW``)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 scope id
    except ValueError:
        return False  # a name other than localhost: resolving it may already leave the host
    address = getattr(address, "ipv4_mapped", None) or address
    return address.is_loopback or address in _allowed


def parse_allowed(value: str) -> frozenset:
    """The addresses of ``TEST_LOOPBACK_ALLOW`` (comma-separated): literal IPv4 addresses of
    the RFC 1918 blocks only, never a name or a routable address, so that no setting can open
    the guard to the outside world. Raises ValueError for anything else."""
    allowed = set()
    for item in filter(None, (part.strip() for part in value.split(","))):
        address = ipaddress.ip_address(item)  # ValueError for a name
        if not any(address in block for block in PRIVATE):
            raise ValueError(f"{ALLOW}: {item} is not an RFC 1918 address of a test's own link")
        allowed.add(address)
    return frozenset(allowed)


def _refuse(action: str, host, port=None) -> None:
    where = f"{host}:{port}" if port is not None else f"{host}"
    message = (
        f"tests may only reach loopback (127.0.0.0/8, ::1, localhost, Unix sockets); refused to "
        f"{action} {where}. Point the code at the NEIS simulator (NEIS_BASE_URL) or a local "
        "service instead."
    )
    with _lock:
        _violations.append(message)
        if _log_path:
            program = " ".join(sys.argv[:3])
            with open(_log_path, "a", encoding="utf-8") as log:
                log.write(f"pid {os.getpid()} ({program}): {message}\n")
    raise NonLoopbackError(message)


def _check_address(family, address, action: str) -> None:
    if family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
        _refuse(action, address[0], address[1])


def _guard_connect(original):
    def connect(self, address):
        _check_address(self.family, address, "connect to")
        return original(self, address)

    return connect


def _guard_sendto(original):
    def sendto(self, data, *args):
        _check_address(self.family, args[-1], "send to")
        return original(self, data, *args)

    return sendto


def _guard_create_connection(original):
    def create_connection(address, *args, **kwargs):
        if not is_loopback(address[0]):
            _refuse("connect to", address[0], address[1])
        return original(address, *args, **kwargs)

    return create_connection


def _guard_resolve(original):
    def resolve(host, *args, **kwargs):
        # getaddrinfo(None, port) is a local lookup for bind(); it asks no resolver.
        if host is not None and not is_loopback(host):
            _refuse("resolve", host)
        return original(host, *args, **kwargs)

    return resolve


_TARGETS = (
    (socket.socket, "connect", _guard_connect),
    (socket.socket, "connect_ex", _guard_connect),
    (socket.socket, "sendto", _guard_sendto),
    (socket, "create_connection", _guard_create_connection),
    (socket, "getaddrinfo", _guard_resolve),
    (socket, "gethostbyname", _guard_resolve),
    (socket, "gethostbyname_ex", _guard_resolve),
)


def install(log_path: str | None = None, allow: str = "") -> None:
    """Guard this process's sockets; record violations in memory and, if given, in a file.
    ``allow``: private addresses a test created, reachable too (``parse_allowed``).

    Idempotent: installing again (from another copy of this module, say) re-wraps the
    original functions rather than stacking guards.
    """
    global _log_path, _allowed
    _log_path = log_path
    _allowed = parse_allowed(allow)
    for owner, name, guard in _TARGETS:
        current = getattr(owner, name)
        original = getattr(current, "__loopback_original__", current)
        guarded = functools.wraps(original)(guard(original))
        guarded.__loopback_original__ = original
        setattr(owner, name, guarded)


def take() -> list[str]:
    """The violations recorded in this process since the last call, oldest first."""
    with _lock:
        taken = _violations[:]
        _violations.clear()
    return taken


def child_environ(env: dict[str, str], log_path: str | None = None) -> dict[str, str]:
    """``env`` with the guard switched on for any Python child started with it."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(SITE_DIR)]
    env["PYTHONPATH"] = os.pathsep.join([str(SITE_DIR), *paths])
    env[SWITCH] = "1"
    if log_path:
        env[LOG] = log_path
    return env
