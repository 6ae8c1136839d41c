"""A second host on this machine: a Linux network namespace joined to this one by a veth pair.

``Host`` creates a namespace with nothing in it but loopback and one end of a veth pair whose
other end stays here, each end with an address of a /30 in 10.231.0.0/16 that no interface of
this machine uses. A process started in the namespace (``Host.command``) has no route anywhere
but to the address of this end: it is a machine on a cable of its own, and ``cut`` pulls that
cable (this end's link down), ``restore`` plugs it back.

The services the chaos suite starts listen on loopback only, so ``Relay`` forwards a port on
this end's address to each of them, as a host's network stack would deliver to a server
listening on every interface. The processes in the namespace reach the services through the
cable and the relay; nothing here listens on an address that leaves this machine.

The loopback guard of the tests (``tests.loopback``) refuses any address but loopback. A process
in the namespace is allowed exactly this end's address (``TEST_LOOPBACK_ALLOW``): an address the
test created, on a link that ends on this machine.

Needs root (or CAP_NET_ADMIN) and ``ip`` from iproute2; ``Host.available`` says why not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import threading

# The block the addresses come from: private (RFC 1918) and unused by this machine's networks.
BLOCK = ipaddress.ip_network("10.231.0.0/16")


class Unavailable(RuntimeError):
    """Network namespaces cannot be made here."""


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _used_addresses() -> set[ipaddress.IPv4Address]:
    out = _ip("-o", "-4", "addr", "show").stdout
    found = set()
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            found.add(ipaddress.ip_interface(fields[fields.index("inet") + 1]).ip)
    return found


class Host:
    """A network namespace ``name`` joined to this one by a veth pair."""

    def __init__(self, tag: str):
        self.tag = tag
        self.name = f"neis-chaos-{tag}"
        self.here_link, self.there_link = f"vc{tag}h", f"vc{tag}n"  # names of 15 bytes at most
        used = _used_addresses()
        subnets = list(BLOCK.subnets(new_prefix=30))
        random.shuffle(subnets)
        subnet = next(s for s in subnets if not used & set(s.hosts()))
        self.here, self.there = (str(a) for a in subnet.hosts())
        self.prefix = subnet.prefixlen
        self._created = False

    @staticmethod
    def available() -> str | None:
        """None if namespaces can be made here, else why not (command and error)."""
        if not shutil.which("ip"):
            return "no `ip` command (install iproute2)"
        if os.geteuid() != 0:
            return "not root: `ip netns add` needs CAP_NET_ADMIN"
        probe = f"neis-probe-{os.getpid()}"
        try:
            _ip("netns", "add", probe)
        except subprocess.CalledProcessError as exc:
            return f"`ip netns add {probe}` failed: {exc.stderr.strip()}"
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", probe)
        return None

    def create(self) -> None:
        self._created = True
        _ip("netns", "add", self.name)
        _ip("link", "add", self.here_link, "type", "veth", "peer", "name", self.there_link)
        _ip("link", "set", self.there_link, "netns", self.name)
        _ip("addr", "add", f"{self.here}/{self.prefix}", "dev", self.here_link)
        _ip("link", "set", self.here_link, "up")
        self.run("ip", "addr", "add", f"{self.there}/{self.prefix}", "dev", self.there_link)
        self.run("ip", "link", "set", self.there_link, "up")
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(list(args)), check=True, capture_output=True, text=True)

    def command(self, args: list[str]) -> list[str]:
        """``args`` run inside the namespace (``ip netns exec`` execs them: same process)."""
        return ["ip", "netns", "exec", self.name, *args]

    def cut(self) -> None:
        """Pull the cable: this end's link down. Packets from the host are dropped on the
        wire; connections across it hang, as between machines."""
        _ip("link", "set", self.here_link, "down")

    def restore(self) -> None:
        _ip("link", "set", self.here_link, "up")

    def close(self) -> None:
        if not self._created:
            return
        # Deleting one end of a veth pair deletes both; the namespace goes with its name.
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.here_link)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.name)


class Relay:
    """Forwards ``address:port`` to ``127.0.0.1:target`` for each target, in threads of this
    process. ``ports[target]`` is the port on ``address`` that reaches ``target``."""

    def __init__(self, address: str, targets: list[int]):
        self.address = address
        self.ports: dict[int, int] = {}
        self._listeners: list[socket.socket] = []
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        for target in targets:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((address, 0))
            listener.listen(64)
            self._listeners.append(listener)
            self.ports[target] = listener.getsockname()[1]
            threading.Thread(target=self._accept, args=(listener, target), daemon=True).start()

    def _accept(self, listener: socket.socket, target: int) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", target), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
                with self._lock:
                    self._sockets.discard(sock)

    def url(self, url: str, target: int) -> str:
        """``url`` (on 127.0.0.1:target) as seen from the namespace."""
        return url.replace(f"127.0.0.1:{target}", f"{self.address}:{self.ports[target]}")

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sockets = list(self._sockets) + self._listeners
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
