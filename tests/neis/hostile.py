"""A tiny hostile HTTP server on loopback, for answers the simulator cannot give.

``serve(answer)`` runs ``answer(handler)`` for every request; the handler writes whatever bytes
it likes to ``handler.wfile`` (status line and headers included), so a test can send a redirect,
a gzip bomb, a trickle or a malformed header exactly as a hostile host would. ``host`` may be
any 127.0.0.0/8 address: 127.0.0.2 stands in for "another host".
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import threading
from collections.abc import Callable

KEY = "0123456789abcdef0123456789abcdef"


@dataclasses.dataclass
class Served:
    url: str
    paths: list[str]


@contextlib.contextmanager
def serve(answer: Callable[[http.server.BaseHTTPRequestHandler], None], host="127.0.0.1"):
    """A server answering every GET with ``answer(handler)``; yields its url and paths asked."""
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            paths.append(self.path)
            # OSError: the client hung up first, as it should on a hostile answer.
            with contextlib.suppress(OSError):
                answer(self)
            self.close_connection = True

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Served(f"http://{host}:{server.server_address[1]}", paths)
    finally:
        server.shutdown()
        server.server_close()


def head(status: int = 200, reason: str = "OK", **headers: str | int) -> bytes:
    """A status line and headers (``Content_Length`` becomes ``Content-Length``); the server
    closes every connection after one answer, and says so."""
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def fixed(data: bytes, status: int = 200, **headers: str | int):
    """An answer of ``data`` with a Content-Length."""

    def answer(handler):
        handler.wfile.write(head(status, Content_Length=len(data), **headers) + data)

    return answer


def page(rows: list, service: str = "schoolInfo", total: int | None = None) -> bytes:
    """A NEIS success envelope holding ``rows``."""
    head_part = [{"list_total_count": len(rows) if total is None else total}]
    head_part.append({"RESULT": {"CODE": "INFO-000", "MESSAGE": "정상 처리되었습니다."}})
    envelope = {service: [{"head": head_part}, {"row": rows}]}
    return json.dumps(envelope, ensure_ascii=False).encode()


# One well-formed hisTimetable row (a high school of office B10).
LESSON_ROW = {
    "ATPT_OFCDC_SC_CODE": "B10",
    "ATPT_OFCDC_SC_NM": "서울특별시교육청",
    "SD_SCHUL_CODE": "7010057",
    "SCHUL_NM": "가나고등학교",
    "AY": "2026",
    "SEM": "2",
    "ALL_TI_YMD": "20261116",
    "DGHT_CRSE_SC_NM": "주간",
    "ORD_SC_NM": "일반계",
    "DDDEP_NM": "일반과",
    "GRADE": "1",
    "CLRM_NM": "1",
    "CLASS_NM": "1",
    "PERIO": "1",
    "ITRT_CNTNT": "국어",
    "LOAD_DTM": "20261118",
}


SCHOOL_ROW = {
    "ATPT_OFCDC_SC_CODE": "B10",
    "ATPT_OFCDC_SC_NM": "서울특별시교육청",
    "SD_SCHUL_CODE": "7010057",
    "SCHUL_NM": "가나고등학교",
    "SCHUL_KND_SC_NM": "고등학교",
    "LCTN_SC_NM": "서울특별시",
    "FOND_SC_NM": "공립",
    "ORG_RDNMA": "서울특별시 강남구 테헤란로 1",
    "DGHT_SC_NM": "주간",
    "LOAD_DTM": "20260301",
}
