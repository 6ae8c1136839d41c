"""The HTTP face of the simulator: ``/hub/<Service>`` like the portal, ``/_sim/*`` to steer it.

One thread per connection (HTTP/1.1 keep-alive). Transport faults (HTTP 5xx, maintenance
page, hang, dropped or half-sent answers) and added latency are applied here; everything
else about an answer comes from ``hub.Hub``. Control endpoints bypass faults and stats.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import encode
from .config import SimulatorConfig
from .control import Control
from .faults import BODY, TRANSPORT
from .hub import Answer, Hub
from .state import RuntimeState
from .world import World

_HTTP_FAULTS = {
    "http500": (500, "Internal Server Error"),
    "http502": (502, "Bad Gateway"),
    "http503": (503, "Service Unavailable"),
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, simulator: Simulator):
        self.sim = simulator
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every kept-alive connection so its thread ends with the server."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "NEIS-simulator"
    timeout = 120  # idle keep-alive connections are closed after this
    server: _Server

    def log_message(self, format, *args):
        pass  # the simulator keeps its own request log

    def do_GET(self):
        self._route(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._route(self.rfile.read(length) if length else b"")

    def _route(self, body: bytes) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith("/_sim/"):
            self._control(path[len("/_sim/") :], query, body)
        elif self.command != "GET":
            self._write(405, "text/plain;charset=UTF-8", b"GET only")
        else:
            service = path[len("/hub/") :] if path.startswith("/hub/") else None
            self._hub(service, query)

    # ---- /hub ------------------------------------------------------------------------

    def _hub(self, service: str | None, query: str) -> None:
        sim = self.server.sim
        state = sim.state
        cfg = state.config
        now = state.clock.now()
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        started = time.perf_counter()
        state.stats.enter()
        answer = Answer(0, "", b"", "SIMULATOR-BUG", service=service or "?", params=dict(pairs))
        done = {"record": False, "leave": False}

        def record() -> None:
            # Counted before the bytes go out: a client holding its answer sees it counted.
            if not done["record"]:
                done["record"] = True
                state.stats.record(
                    service=answer.service,
                    key=answer.key,
                    outcome=answer.outcome,
                    status=answer.status or None,
                    rows=answer.rows,
                    params=answer.params,
                    at=now,
                    ms=(time.perf_counter() - started) * 1000,
                    after_337=answer.after_337,
                )

        def finish() -> None:
            # Out of flight once the answer is ready (or the hang is over), before writing.
            record()
            if not done["leave"]:
                done["leave"] = True
                state.stats.leave()

        try:
            fault = state.faults.decide(service, now, cfg.fault_rate, cfg.fault_kinds)
            delay = cfg.latency_ms + sim.jitter(cfg.latency_jitter_ms)
            if fault == "latency":
                delay += cfg.fault_latency_ms
            if delay > 0:
                self.server.stopping.wait(delay / 1000)
            if fault in TRANSPORT:
                answer.outcome = fault.upper()
                answer.status = _HTTP_FAULTS.get(fault, (0,))[0] or (
                    cfg.maintenance_status if fault == "maintenance" else 0
                )
                record()
                self._transport_fault(fault, cfg, finish)
                return
            answer = sim.hub.answer(service, pairs, now, fault)
            body = answer.body
            if fault in BODY:
                answer.outcome = fault.upper()
                body = _damaged(body, fault)
            finish()
            self._write(answer.status, answer.content_type, body, partial=fault == "partial")
        finally:
            finish()

    def _transport_fault(self, fault: str, cfg: SimulatorConfig, finish) -> None:
        if fault == "hang":
            self.server.stopping.wait(cfg.hang_seconds)
        finish()
        if fault in _HTTP_FAULTS:
            status, reason = _HTTP_FAULTS[fault]
            self._write(status, "text/html", encode.http_error_page(status, reason))
        elif fault == "maintenance":
            self._write(cfg.maintenance_status, "text/html;charset=UTF-8", encode.MAINTENANCE_PAGE)
        else:
            # "drop" and the end of a hang: close the socket without a word.
            self.close_connection = True

    # ---- /_sim -----------------------------------------------------------------------

    def _control(self, name: str, query: str, body: bytes) -> None:
        sim = self.server.sim
        sim.state.stats.control()
        status, answer = 200, None
        if name not in Control.REMOTE:
            status, answer = 404, {"ok": False, "error": f"no control method {name!r}"}
        else:
            try:
                kwargs = (
                    json.loads(body)
                    if body.strip()
                    else {k: _plain(v) for k, v in urllib.parse.parse_qsl(query)}
                )
                answer = {"ok": True, "result": getattr(sim.control, name)(**kwargs)}
            except (TypeError, ValueError, KeyError) as exc:
                status, answer = 400, {"ok": False, "error": str(exc)}
        payload = json.dumps(answer, ensure_ascii=False, default=str).encode()
        self._write(status, "application/json;charset=UTF-8", payload)

    # ---- bytes out -------------------------------------------------------------------

    def _write(self, status: int, content_type: str, body: bytes, partial: bool = False):
        reason = self.responses.get(status, ("",))[0]
        head = (
            f"HTTP/1.1 {status} {reason}\r\nDate: {self.date_time_string()}\r\n"
            f"Server: {self.server_version}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if self.close_connection or partial:
            head += "Connection: close\r\n"
        if partial:
            # Promise the whole body, send half, hang up: a transfer cut mid-way.
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(head.encode() + b"\r\n" + body)


def _plain(text: str):
    """A query-string value as JSON would give it: 200 -> int, true -> bool, else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _damaged(body: bytes, fault: str) -> bytes:
    if fault == "partial":
        return body  # cut while being written
    if fault == "control_chars":
        # A raw TAB at the start of the first row's first value (JSON only).
        at = body.find(b'":"', body.find(b'"row":['))
        if at < 0 or not body.startswith(b"{"):
            return body
        return body[: at + 3] + b"\t" + body[at + 3 :]
    if fault == "truncated":
        return body[: max(1, len(body) // 2)]
    # invalid_json: a key without its colon; no JSON parser accepts it, lenient ones neither.
    return body.replace(b'":', b'"', 1) if b'":' in body else body + b"<"


class Simulator:
    """A complete simulated NEIS hub: a world, runtime state, control and an HTTP server.

    ``start()`` serves from a daemon thread (for in-process tests); ``serve_forever()``
    blocks (for the command line). ``url`` is the base such that a client GETs
    ``{url}/hub/<Service>``; ``key`` is a valid test key.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        world: World | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.config = config or SimulatorConfig()
        if world is None:
            world = World(self.config)
        elif world.config.world_key() != self.config.world_key():
            raise ValueError("the world was built from a different configuration")
        self.world = world
        self.state = RuntimeState(self.config)
        self.control = Control(self.state)
        self.hub = Hub(world, self.state)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._jitter = random.Random(f"{self.config.seed}:jitter")

    @property
    def url(self) -> str:
        host, port = self._bind().server_address[:2]
        return f"http://{host}:{port}"

    @property
    def key(self) -> str:
        return self.state.default_key

    def jitter(self, spread_ms: float) -> float:
        return self._jitter.uniform(0, spread_ms) if spread_ms > 0 else 0.0

    def _bind(self) -> _Server:
        if self._server is None:
            self._server = _Server(self._address, self)
        return self._server

    def start(self) -> Simulator:
        """Serve from a background thread; returns self."""
        server = self._bind()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="neis-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._bind().serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop serving and wake hung or kept-alive connections."""
        server = self._server
        if server is None:
            return
        server.stopping.set()
        if self._thread is not None:
            server.shutdown()
            self._thread.join(timeout=5)
        server.close_connections()
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
