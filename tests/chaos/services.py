"""Private PostgreSQL, Redis and RabbitMQ servers that a chaos test may break.

The shared services on the standard ports serve everyone on this machine and are never
stopped: each server here runs on a free port of its own, from a folder of its own, as a child
of the test session, and goes away with it. PostgreSQL and RabbitMQ refuse to run as root, so
as root they run as their system users (``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import redis


class ServiceUnavailable(RuntimeError):
    """This machine cannot run the private server (not installed, or it would not start)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"{what} not ready after {timeout:g} s")
        time.sleep(0.05)


def _as(user: str, args: list[str]) -> list[str]:
    """``args`` run as ``user`` when we are root (servers that refuse root), else as we are."""
    if os.geteuid() == 0:
        return ["runuser", "-u", user, "--", *args]
    return args


def _own(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user, user)


class Postgres:
    """A PostgreSQL cluster of our own: trust authentication, loopback, a free port."""

    def __init__(self, root: Path):
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not versions:
            raise ServiceUnavailable("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = Path(versions[-1]).parent
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        _own(root, "postgres")
        subprocess.run(
            _as("postgres", [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                             "-U", "postgres", "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True,
        )  # fmt: skip

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as("postgres", [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                             "-o", options, "-w", "-t", "60", *args]),
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m mode``: every connection is cut; immediate skips the checkpoint
        and recovers from the WAL at start, as after a crash."""
        self._ctl("restart", "-m", mode)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")


class Redis:
    """A Redis of our own, without persistence unless ``appendonly``."""

    def __init__(self, root: Path, *, appendonly: bool = False):
        if not shutil.which("redis-server"):
            raise ServiceUnavailable("redis-server is not installed")
        self.root = root
        self.port = free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.root), "--save", "", "--logfile", str(self.root / "redis.log"),
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always"]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def ready() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.BusyLoadingError:
                return False
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None:
                    raise ServiceUnavailable("redis-server exited at start") from None
                return False

        _wait(ready, 30, "redis-server")

    def stop(self) -> None:
        """SIGTERM: Redis shuts down cleanly; without persistence everything it held is gone."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)

    def restart(self, down: float = 0.0) -> None:
        self.stop()
        time.sleep(down)
        self.start()

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class RabbitMQ:
    """A second RabbitMQ node (``chaos-<port>@localhost``) beside the shared one."""

    def __init__(self, root: Path):
        if not shutil.which("rabbitmq-server") or not shutil.which("rabbitmqctl"):
            raise ServiceUnavailable("rabbitmq-server is not installed")
        self.root = root
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"chaos{self.port}@localhost"
        self.process: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        for path in (root, root / "enabled_plugins", root / "rabbitmq.conf"):
            _own(path, "rabbitmq")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> list[str]:
        return [
            "env",
            f"RABBITMQ_NODENAME={self.node}",
            f"RABBITMQ_NODE_PORT={self.port}",
            f"RABBITMQ_DIST_PORT={self.dist_port}",
            f"RABBITMQ_MNESIA_BASE={self.root / 'mnesia'}",
            f"RABBITMQ_LOG_BASE={self.root / 'log'}",
            f"RABBITMQ_PID_FILE={self.root / 'pid'}",
            f"RABBITMQ_ENABLED_PLUGINS_FILE={self.root / 'enabled_plugins'}",
            f"RABBITMQ_CONFIG_FILE={self.root / 'rabbitmq'}",
        ]

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl`` against this node (add_user, add_vhost, list_queues, ...)."""
        return subprocess.run(
            _as("rabbitmq", [*self._env(), "rabbitmqctl", "-n", self.node, "-q", *args]),
            capture_output=True, text=True, cwd="/tmp", timeout=60, check=True,
        ).stdout  # fmt: skip

    def add_vhost(self, vhost: str, user: str, password: str) -> str:
        """A vhost with a user of its own (as docker/compose.yml's rabbitmq service makes);
        returns the broker URL for it."""
        self.ctl("add_user", user, password)
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{vhost}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            _as("rabbitmq", [*self._env(), "rabbitmq-server"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/tmp",
        )

        def ready() -> bool:
            if self.process.poll() is not None:
                raise ServiceUnavailable(f"rabbitmq-server exited at start (logs in {self.root})")
            return answers(self.port)

        _wait(ready, 90, "rabbitmq-server")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            subprocess.run(
                _as("rabbitmq", [*self._env(), "rabbitmqctl", "-n", self.node, "stop"]),
                capture_output=True,
                cwd="/tmp",
                timeout=60,
            )
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.close()

    def restart(self, down: float = 0.0) -> None:
        self.stop()
        time.sleep(down)
        self.start()

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
