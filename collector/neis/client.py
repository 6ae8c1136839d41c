"""The NEIS Open API client: the only code that knows NEIS URLs, parameters and result codes.

``NeisClient.schools`` and ``NeisClient.timetable`` page through a query and return a
``FetchResult`` of typed records (records.py). Every failure leaves as one of the named errors
in errors.py, chosen by ``classify``; "no data" (INFO-200) is an empty result, not an error.
The client never retries: the pipeline owns retries, backoff and the shared request budget
(``limiter``).

The key travels in the query string, so it must reach NEIS only: redirects are never followed
(a 3xx is the permanent error REDIRECT), every message that could carry a URL goes through
``redact`` first, and no error is raised inside an ``except`` block, so none has the
exceptions of requests, urllib3 or the parser (whose text can hold the URL) as its context.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import http.client
import itertools
import logging
import os
import pathlib
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3
import xxhash
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    InvalidHeader,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from collector import clock as clock_module
from collector.clock import academic_year, in_seoul
from collector.neis import parse, records
from collector.neis.errors import (
    NeisError,
    NeisKeyError,
    NeisPermanentError,
    NeisQuotaError,
    NeisTransientError,
)
from collector.neis.parse import normalise_subject
from collector.neis.records import (
    ClassRecord,
    LessonRecord,
    Level,
    ScheduleRecord,
    SchoolRecord,
)
from collector.neis.redact import RedactKeyFilter, printable, redact

__all__ = [
    "FetchResult",
    "NeisClient",
    "academic_year",
    "classify",
    "next_quota_reset",
    "normalise_subject",
    "shared_session",
]

logger = logging.getLogger(__name__)


def _redact_urllib3_logs() -> None:
    # urllib3 logs the URLs it opens, key included, at DEBUG. Logger filters are not inherited,
    # so each of its loggers that can mention a URL gets the filter, whatever LOGGING says.
    for name in ("connectionpool", "connection", "poolmanager", "response", "util.retry"):
        urllib3_logger = logging.getLogger(f"urllib3.{name}")
        if not any(isinstance(f, RedactKeyFilter) for f in urllib3_logger.filters):
            urllib3_logger.addFilter(RedactKeyFilter())


_redact_urllib3_logs()

USER_AGENT = "neis-timetables/0.1 (+collector)"
MAX_PAGE_SIZE = parse.MAX_ROWS  # larger pSize values get ERROR-336
KEYLESS_ROWS = 5  # sample mode serves 5 rows whatever pSize says (docs section 2)
# Bounds on one answer. A 1000-row page is about 0.4 MB (timetables) to 0.8 MB (schoolInfo),
# so 16 MiB leaves room for growth while bounding what one request can cost in memory.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# Seconds for a whole request: connecting, waiting and reading every byte. The read timeout
# applies to each read only, so without this a host sending one byte a second never ends.
DEFAULT_DEADLINE = 60.0
NO_DATA = "INFO-200"
SCHOOL_SERVICE = "schoolInfo"
CLASS_SERVICE = "classInfo"
SCHEDULE_SERVICE = "SchoolSchedule"  # capital S: service names are case-sensitive
ARCHIVE_SUFFIX = "bgs"

# --- Classification -------------------------------------------------------------------------
# The one place that decides what a RESULT code or local failure tag means. None: not an error
# (INFO-200 is handled by the caller as an empty page).
RESULT_KINDS: dict[str, type[NeisError] | None] = {
    "INFO-000": None,
    "INFO-100": None,  # "reference only": success; logged by the caller
    NO_DATA: None,
    "INFO-300": NeisKeyError,  # key blocked by an administrator
    "ERROR-290": NeisKeyError,  # invalid key
    "ERROR-300": NeisPermanentError,  # required parameter missing
    "ERROR-310": NeisPermanentError,  # unknown service
    "ERROR-333": NeisPermanentError,  # pIndex/pSize not an integer
    "ERROR-336": NeisPermanentError,  # pSize over 1000
    "ERROR-337": NeisQuotaError,  # daily quota spent
    "ERROR-500": NeisTransientError,  # server error
    "ERROR-600": NeisTransientError,  # database connection
    "ERROR-601": NeisTransientError,  # SQL error; may be query-specific, so cap its retries
    # Local tags for failures that never reached a RESULT code.
    "TIMEOUT": NeisTransientError,
    "CONNECTION": NeisTransientError,
    "BAD-BODY": NeisTransientError,  # HTML, maintenance page, truncated or invalid JSON
    "REQUEST": NeisPermanentError,  # requests refused to build the request (bad URL)
    # A 3xx. Never followed: the key rides in the query string and must reach NEIS only. It
    # will not fix itself (a moved hub, a captive portal, a hostile proxy): someone must look.
    "REDIRECT": NeisPermanentError,
    # Answers over the client's bounds. A body over max_body_bytes (as sent or inflated) or a
    # page of more rows than pSize is what this query gets, and a retry would spend quota
    # downloading it again: permanent. A request past its deadline may be quicker later.
    "TOO-LARGE": NeisPermanentError,
    "TOO-MANY-ROWS": NeisPermanentError,
    "DEADLINE": NeisTransientError,
}
# HTTP statuses worth retrying besides 5xx.
_TRANSIENT_STATUSES = {408, 425, 429}


def classify(
    code: str, message: str, *, resets_at: datetime.datetime | None = None
) -> NeisError | None:
    """The error to raise for ``code``, or None when the code means success or no data.

    ``code`` is a RESULT code, ``HTTP-<status>`` or one of the local tags in RESULT_KINDS.
    Unknown codes are permanent: retrying something we do not understand wastes quota.
    ``resets_at`` is required for ERROR-337 (defaults to the next midnight in Seoul).
    """
    if code in RESULT_KINDS:
        kind = RESULT_KINDS[code]
    elif code.startswith("HTTP-") and code[5:].isdigit():
        status = int(code[5:])
        transient = status >= 500 or status in _TRANSIENT_STATUSES
        kind = NeisTransientError if transient else NeisPermanentError
    else:
        kind = NeisPermanentError
    if kind is None:
        return None
    if kind is NeisQuotaError:
        when = resets_at or next_quota_reset(clock_module.now(), 0)
        return NeisQuotaError(code, f"{message} (quota resets at {when.isoformat()})", when)
    return kind(code, message)


def _means_success(code: str) -> bool:
    return code in RESULT_KINDS and RESULT_KINDS[code] is None


def transport_tag(exc: BaseException) -> str:
    """The local tag for an exception raised while a request was sent and its head read:
    urllib3's (``_send``), tagged as the exception requests made of it was, or requests' own
    for a URL it refused."""
    if isinstance(exc, requests.RequestException):
        return "REQUEST"
    if isinstance(exc, MaxRetryError):  # retries are off: the first failure gives up
        reason = exc.reason
        # NewConnectionError is a ConnectTimeoutError too, but a refusal, not a timeout.
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
            return "TIMEOUT"
        return "CONNECTION"
    if isinstance(exc, ReadTimeoutError):
        return "TIMEOUT"
    if isinstance(exc, InvalidHeader | LocationValueError):
        return "REQUEST"
    return "CONNECTION"


def read_tag(exc: BaseException) -> str:
    """The local tag for an exception urllib3 or a socket raised while a body was read."""
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return "TIMEOUT"
    return "CONNECTION"


def describe_redirect(status: int, location: str | None, url: str) -> str:
    """What a refused redirect says: its status and target host, never the target's path or
    query (a hostile host may echo the key there). Any Location, however malformed, gives a
    description, not an exception."""
    if not location:
        return f"HTTP {status} redirect without a Location, refused"
    try:
        target = urlsplit(urljoin(url, location))
        shown = f"{target.scheme}://{target.hostname or '?'}"
    except ValueError:
        shown = "an unreadable Location"
    return f"HTTP {status} redirect to {shown} refused (the key is sent to NEIS only)"


# --- Time -----------------------------------------------------------------------------------


def next_quota_reset(now: datetime.datetime, hour: int) -> datetime.datetime:
    """The first ``hour``:00 Asia/Seoul strictly after ``now`` (Korea has no DST)."""
    local = in_seoul(now)
    reset = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if reset <= local:
        reset += datetime.timedelta(days=1)
    return reset


# --- HTTP session ---------------------------------------------------------------------------
# A thread-pool worker can run several requests at once; beyond this, connections simply
# stop being reused (pool_block is off), so the number only needs to cover normal concurrency.
POOL_SIZE = 16

_session: requests.Session | None = None
_session_pid: int | None = None


def shared_session() -> requests.Session:
    """The process's pooled Session, created on first use and again in a forked child.

    Celery's prefork children inherit the parent's sockets; two processes talking over one
    keep-alive connection corrupt each other's responses, so a child never reuses them.
    """
    global _session, _session_pid
    if _session is None or _session_pid != os.getpid():
        session = requests.Session()
        # No urllib3 retries: the pipeline owns retries, and a silent retry would spend quota.
        adapter = HTTPAdapter(
            pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=Retry(total=0, read=False)
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        _session, _session_pid = session, os.getpid()
    return _session


# What _send raises (transport_tag): urllib3's and the socket's errors, and requests' own
# exceptions for a URL it refuses to route.
_SEND_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


@dataclasses.dataclass(frozen=True)
class _Route:
    """Where a GET to one URL goes, as requests would send it: worked out once per session
    and URL (``_route``), so that a page costs urllib3's ``urlopen`` and no more.

    ``target`` is what the request line names: the URL's path (the full URL through an HTTP
    proxy), its query still to come. ``manager`` is the session adapter's pool manager, or
    its proxy manager for the proxy the environment gives this host.
    """

    url: str
    target: str
    adapter: HTTPAdapter
    manager: urllib3.PoolManager
    host: dict[str, Any]
    pool_kwargs: dict[str, Any]
    verify: bool | str
    cert: Any
    headers: dict[str, str]


def _route(session: requests.Session, url: str) -> _Route:
    """The session's route to ``url``, worked out by requests' own adapter code the first
    time; raises requests' exception for a URL it refuses (``transport_tag``: REQUEST)."""
    routes = session.__dict__.setdefault("_neis_routes", {})
    if url not in routes:
        adapter = session.get_adapter(url)
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        settings = _environment(session, prepared.url)
        proxies, verify, cert = settings["proxies"], settings["verify"], settings["cert"]
        proxy = requests.utils.select_proxy(prepared.url, proxies)
        manager = adapter.poolmanager
        if proxy:
            proxy = requests.utils.prepend_scheme_if_needed(proxy, "http")
            if not urllib3.util.parse_url(proxy).host:
                raise requests.exceptions.InvalidProxyURL("the proxy URL has no host")
            manager = adapter.proxy_manager_for(proxy)
        try:
            host, pool_kwargs = adapter.build_connection_pool_key_attributes(prepared, verify, cert)
        except ValueError as exc:
            raise requests.exceptions.InvalidURL(exc) from None
        # The session's headers as requests sends them, with only the encodings we inflate.
        headers = {**session.headers, "Accept-Encoding": ACCEPT_ENCODING}
        target = adapter.request_url(prepared, proxies)
        routes[url] = _Route(
            prepared.url, target, adapter, manager, host, pool_kwargs, verify, cert, headers
        )
    return routes[url]


def _send(
    session: requests.Session, url: str, query: dict, timeout: tuple[float, float]
) -> urllib3.BaseHTTPResponse:
    """GET ``url`` with ``query`` through the session's pools, streamed: the body is left
    unread, and a redirect is neither followed nor read.

    Not ``session.get`` nor its adapter's ``send``: per page they merged session settings,
    looked for cookies and .netrc, and built a Response with a cookie jar, more CPU than
    urllib3's own work. What they decided that does not change from page to page is the
    ``_Route``; the query is encoded as requests encodes it. Raises what urllib3 raises
    (``transport_tag``), or requests' exception for a URL it refuses.
    """
    route = _route(session, url)
    pool = route.manager.connection_from_host(**route.host, pool_kwargs=route.pool_kwargs)
    # The TLS settings as requests puts them on each pool it hands out (its CA bundle).
    route.adapter.cert_verify(pool, route.url, route.verify, route.cert)
    pairs = [(name, value) for name, value in query.items() if value is not None]
    joiner = "&" if "?" in route.target else "?"
    return pool.urlopen(
        "GET",
        f"{route.target}{joiner}{urlencode(pairs, doseq=True)}",
        headers=route.headers,
        redirect=False,
        assert_same_host=False,
        preload_content=False,
        decode_content=False,
        retries=route.adapter.max_retries,
        timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
    )


def _environment(session: requests.Session, url: str) -> dict:
    """The proxies and TLS settings the environment gives requests to ``url``'s host, worked
    out once per session and host: requests reads every proxy variable again at each request
    (a tenth of a page's client CPU), and they do not change while a process runs."""
    scheme, host = urlsplit(url)[:2]
    known = session.__dict__.setdefault("_neis_environments", {})
    if (scheme, host) not in known:
        origin = f"{scheme}://{host}/"
        known[scheme, host] = session.merge_environment_settings(origin, {}, True, None, None)
    return known[scheme, host]


# --- Reading bodies -------------------------------------------------------------------------
# Bodies are read here, not by requests: it would read any length, inflate any gzip whole and
# wait forever for a host that sends a byte now and then.
ACCEPT_ENCODING = "gzip, deflate"  # only what _Inflater reads, whatever else is installed
READ_CHUNK = 64 * 1024
_READ_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
_DIGITS = re.compile(r"[0-9]+")


class BodyRefused(Exception):
    """An answer the client stops reading; ``code`` is its tag in RESULT_KINDS."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def read_body(
    response: urllib3.BaseHTTPResponse,
    *,
    limit: int,
    started: float,
    seconds: float,
    read_timeout: float,
) -> bytearray:
    """The whole body of a streamed ``response``, inflated, within bounds.

    Raises BodyRefused: TOO-LARGE once Content-Length announces, or the bytes received or
    inflated reach, more than ``limit``; DEADLINE once ``seconds`` have passed since
    ``started`` (a ``time.monotonic()``); BAD-BODY for an encoding not asked for or a broken
    compressed stream. Transport failures leave as the urllib3 or socket exception.
    """
    announced = response.headers.get("Content-Length", "").strip()
    if _DIGITS.fullmatch(announced) and int(announced) > limit:
        raise BodyRefused("TOO-LARGE", f"body of {announced} bytes announced, over {limit}")
    inflater = _Inflater.for_encoding(response.headers.get("Content-Encoding"), limit)
    deadline = started + seconds
    body = bytearray()
    received = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyRefused("DEADLINE", f"answer not complete after {seconds} s")
        # Each read waits at most until the deadline, so a stall cannot outlive it.
        _set_socket_timeout(response, min(read_timeout, remaining))
        try:
            chunk = response.read1(READ_CHUNK, decode_content=False)
        except (ReadTimeoutError, TimeoutError):
            if time.monotonic() < deadline:
                raise
            raise BodyRefused("DEADLINE", f"answer not complete after {seconds} s") from None
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            raise BodyRefused("TOO-LARGE", f"body over {limit} bytes")
        body += inflater.feed(chunk, limit - len(body)) if inflater else chunk
    if inflater:
        body += inflater.finish(limit - len(body))
    return body


def _set_socket_timeout(raw: urllib3.HTTPResponse, seconds: float) -> None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    # A socket the host has already closed has no timeout to set; its next read says so.
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(seconds)


class _Inflater:
    """Inflates gzip (one member or several) or zlib deflate, never past a byte budget."""

    ENCODINGS = ("gzip", "x-gzip", "deflate")

    @classmethod
    def for_encoding(cls, header: str | None, limit: int) -> _Inflater | None:
        codings = [c.strip().lower() for c in (header or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if not codings:
            return None
        if len(codings) == 1 and codings[0] in cls.ENCODINGS:
            return cls(limit)
        raise BodyRefused("BAD-BODY", f"Content-Encoding {header!r} was not asked for")

    def __init__(self, limit: int):
        self.limit = limit
        self._new_member()

    def _new_member(self) -> None:
        # 32 + MAX_WBITS: a gzip or a zlib header, whichever comes.
        self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int) -> bytearray:
        """Inflate ``data``; BodyRefused once the output would exceed ``room`` bytes."""
        out = bytearray()
        try:
            while data:
                # One byte past the room, at most: reaching it is the proof of a bomb, and
                # nothing beyond it is ever inflated.
                out += self._zlib.decompress(data, room - len(out) + 1)
                if len(out) > room:
                    raise BodyRefused("TOO-LARGE", f"body inflates past {self.limit} bytes")
                if self._zlib.eof and self._zlib.unused_data:
                    data = self._zlib.unused_data
                    self._new_member()
                else:
                    data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise BodyRefused("BAD-BODY", f"broken compressed body ({exc})") from None
        return out

    def finish(self, room: int) -> bytes:
        try:
            rest = self._zlib.flush()
        except zlib.error as exc:
            raise BodyRefused("BAD-BODY", f"broken compressed body ({exc})") from None
        if len(rest) > room:
            raise BodyRefused("TOO-LARGE", f"body inflates past {self.limit} bytes")
        if not self._zlib.eof:
            raise BodyRefused("BAD-BODY", "compressed body cut short")
        return rest


# --- Results --------------------------------------------------------------------------------


@functools.cache
def conversion_fingerprint() -> str:
    """A fingerprint of the code that turns served rows into records: parse.py, records.py
    and this module (the filters of ``_LessonsOf`` and the others).

    Every answer's digest starts with it, so that a window stored from an answer by one
    version of that code is never taken for what another version makes of the same bytes
    (it might keep, drop or spell rows otherwise): after an upgrade each window is converted
    and merged once more.
    """
    sources = hashlib.sha1()
    for module in (parse.__file__, records.__file__, __file__):
        sources.update(pathlib.Path(module).read_bytes())
    return sources.hexdigest()


@dataclasses.dataclass
class FetchResult:
    """What one ``schools()``, ``timetable()``, ``classes()`` or ``schedule()`` call fetched.

    ``pages`` counts responses that were a page (rows, or the INFO-200 that ends paging);
    ``requests`` counts HTTP requests sent. ``list_total_count`` is NEIS's claimed total,
    summed over the queries (two when a window crosses the archive cut-off); ``received`` is
    the rows actually served, kept or not; ``invalid`` of those were dropped, with counts by
    column in ``invalid_reasons``. ``missing`` is reported, never hidden or raised.
    ``digest`` identifies the answer: the same services asked for the same rows served in the
    same bytes, read by the same conversion code, give the same digest
    (``storage.known_answer`` and ``store_lessons`` skip an answer they merged).

    The served rows become records (``rows``) only when ``rows``, ``invalid`` or
    ``invalid_reasons`` is first read: everything else, the digest included, is known before,
    so an answer merged before need never be converted at all. A timetable's pages are not
    even decoded before that (unless asked with ``peek=False``), only peeked at
    (``parse.peek_envelope``), and ``check`` (which
    ``rows`` calls) raises the error of a page json refuses: an answer whose digest is known
    was decoded in full, and accepted, when it was merged.
    """

    pages: int = 0
    requests: int = 0
    list_total_count: int = 0
    received: int = 0
    services: list[str] = dataclasses.field(default_factory=list)
    # XXH3-128 over the conversion code's fingerprint, then every page's query and body in
    # order: 128 bits, so two different answers of one school window never share a digest by
    # chance, at about 0.03 ms a megabyte (SHA-1 took 0.5 ms: 0.2 ms of an unchanged school's
    # 7 ms of worker CPU). Not a cryptographic hash, and it need not be: only NEIS chooses the
    # bytes, and an answer made to collide with the stored one could only keep lessons that
    # the server could as well have served again.
    _hash: Any = dataclasses.field(default_factory=xxhash.xxh3_128, repr=False, compare=False)
    _records: list | records.LessonRecords = dataclasses.field(default_factory=list, repr=False)
    _reasons: Counter = dataclasses.field(default_factory=Counter, repr=False)
    # Pages of one query each, not converted yet: (convert, rows, report its invalid rows).
    _unconverted: list = dataclasses.field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._hash.update(conversion_fingerprint().encode())

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    @property
    def missing(self) -> int:
        """Rows NEIS claimed but did not serve (negative if it served more than it claimed)."""
        return self.list_total_count - self.received

    @property
    def rows(self) -> list | records.LessonRecords:
        """The records, in NEIS's order; the rows served that are not one are ``invalid``.
        A ``LessonRecords`` (the records by column, made when read) when every page of a
        timetable was converted by column, else a list."""
        self._convert()
        return self._records

    @property
    def invalid(self) -> int:
        self._convert()
        return sum(self._reasons.values())

    @property
    def invalid_reasons(self) -> dict[str, int]:
        self._convert()
        return dict(self._reasons)

    def check(self) -> None:
        """Decode the pages left undecoded (``NeisClient.timetable``), raising the error the
        first one that json refuses means: what the client would have raised when it came.
        ``rows`` checks first; the pipeline checks only an answer it has not merged before."""
        for _, pages, _ in self._unconverted:
            for index, page in enumerate(pages):
                if callable(page):
                    pages[index] = page()

    def _convert(self) -> None:
        self.check()
        if not self._unconverted:
            return
        # The records in order, a page's LessonRecords (converted by column, its records not
        # made yet) or a list; joined by column when every part is one.
        parts: list = [self._records] if self._records else []
        while self._unconverted:
            convert, pages, report = self._unconverted.pop(0)
            reasons: Counter[str] = Counter()
            for rows in pages:
                if isinstance(rows, parse.LessonPage):  # a timetable page, typed
                    typed = convert.page(rows)
                    if typed is not None:
                        parts.append(typed)
                        continue
                    rows = rows.dicts()
                converted = []
                append = converted.append
                for row in rows:
                    try:
                        append(convert(row))
                    except parse.InvalidRow as exc:
                        reasons[exc.reason] += 1
                parts.append(converted)
            self._reasons.update(reasons)
            if reasons:
                report(reasons)
        if parts and all(isinstance(part, records.LessonRecords) for part in parts):
            self._records = records.LessonRecords.joined(parts)
        else:
            self._records = list(itertools.chain.from_iterable(parts))


@dataclasses.dataclass(frozen=True)
class _LessonsOf:
    """Timetable rows as LessonRecords of the school and window asked for, or InvalidRow:
    ``other-school`` for a row of another school or office, ``outside-window`` for a row
    dated outside ``start``..``end``."""

    convert: parse.LessonRows
    office_code: str
    school_code: str
    start: datetime.date
    end: datetime.date

    def __call__(self, row: object) -> LessonRecord:
        record = self.convert(row)
        if record.school_code != self.school_code or record.office_code != self.office_code:
            raise parse.InvalidRow("other-school")
        if not self.start <= record.date <= self.end:
            raise parse.InvalidRow("outside-window")
        return record

    def page(self, page: parse.LessonPage) -> records.LessonRecords | None:
        """The records of every row of ``page`` when each row is one of this school and
        window, as ``self(row)`` makes them; None when a row may not be (then convert them
        one by one: ``self`` says which and why). Checked by column, in C."""
        columns = self.convert.columns(page)
        if columns is None:
            return None
        count, dates = len(page), columns["date"]
        if columns["office_code"].count(self.office_code) != count:
            return None
        if columns["school_code"].count(self.school_code) != count:
            return None
        if dates and not (self.start <= min(dates) and max(dates) <= self.end):
            return None
        return records.lesson_records(columns)


def _of_school(office_code: str, school_code: str, record):
    if record.school_code != school_code or record.office_code != office_code:
        raise parse.InvalidRow("other-school")
    return record


def _class_of(office_code: str, school_code: str, academic_year: int, row: object) -> ClassRecord:
    """A classInfo row as a ClassRecord of the school and year asked for, or InvalidRow."""
    record = _of_school(office_code, school_code, parse.class_from_row(row))
    if record.academic_year != academic_year:
        raise parse.InvalidRow("other-year")
    return record


def _schedule_of(
    office_code: str, school_code: str, start: datetime.date, end: datetime.date, row: object
) -> ScheduleRecord:
    """A SchoolSchedule row as a ScheduleRecord of the school and window asked for."""
    record = _of_school(office_code, school_code, parse.schedule_from_row(row))
    if not start <= record.date <= end:
        raise parse.InvalidRow("outside-window")
    return record


# --- Client ---------------------------------------------------------------------------------


class NeisClient:
    """Fetches schools and timetables from one NEIS hub with one key.

    Construct directly (no Django needed) or with ``from_settings()``. ``limiter``, if given,
    has a ``slot()`` context manager entered around every HTTP request. ``clock`` returns an
    aware datetime; it picks the archive cut-off and the quota reset time. ``api_key=""``
    means keyless (sample) mode: NEIS then serves at most 5 rows, reported as ``missing``.
    ``max_body_bytes`` caps each answer's body, as sent and inflated (TOO-LARGE), and
    ``deadline`` is the seconds one request may take from connecting to its last byte
    (DEADLINE); see docs/neis-api.md section 11.
    """

    #: Safety net against a hub that never ends a query; hitting it is logged, not raised.
    max_pages = 1000

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        page_size: int = MAX_PAGE_SIZE,
        archive_before_ay: int = 0,
        quota_reset_hour: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        deadline: float = DEFAULT_DEADLINE,
        limiter: Any = None,
        session: requests.Session | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ):
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        if not 0 <= quota_reset_hour <= 23:
            raise ValueError(f"quota_reset_hour must be 0..23, got {quota_reset_hour}")
        if connect_timeout <= 0 or read_timeout <= 0 or deadline <= 0:
            raise ValueError("timeouts must be positive")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
        base = base_url.rstrip("/")
        # Accept the hub URL with or without its /hub path.
        self.base_url = base if base.endswith("/hub") else f"{base}/hub"
        self._api_key = api_key or ""
        self.timeout = (connect_timeout, read_timeout)
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline
        self.page_size = page_size
        # The most rows a page may hold: pSize, or the 5 sample mode serves whatever pSize says.
        self.max_rows = max(page_size, KEYLESS_ROWS) if not api_key else page_size
        self.archive_before_ay = archive_before_ay
        self.quota_reset_hour = quota_reset_hour
        self.limiter = limiter
        self._session = session
        self._clock = clock or clock_module.now

    @classmethod
    def from_settings(cls, **overrides: Any) -> NeisClient:
        """A client configured from the NEIS_* Django settings; keyword arguments override."""
        from django.conf import settings

        options: dict[str, Any] = {
            "base_url": settings.NEIS_BASE_URL,
            "api_key": settings.NEIS_API_KEY,
            "connect_timeout": settings.NEIS_CONNECT_TIMEOUT,
            "read_timeout": settings.NEIS_READ_TIMEOUT,
            "deadline": settings.NEIS_REQUEST_DEADLINE,
            "max_body_bytes": settings.NEIS_MAX_BODY_BYTES,
            "page_size": settings.NEIS_PAGE_SIZE,
            "archive_before_ay": settings.NEIS_ARCHIVE_BEFORE_AY,
            "quota_reset_hour": settings.NEIS_QUOTA_RESET_HOUR,
        }
        options.update(overrides)
        return cls(**options)

    def __repr__(self) -> str:
        key = "***" if self._api_key else "none"
        return f"NeisClient({self.base_url!r}, key={key})"

    @property
    def keyless(self) -> bool:
        return not self._api_key

    # --- public queries ---------------------------------------------------------------------

    def schools(
        self,
        *,
        office_code: str | None = None,
        kind: str | None = None,
        school_code: str | None = None,
    ) -> FetchResult:
        """schoolInfo rows as SchoolRecords; no filter means every school in the country.

        ``kind`` is a SCHUL_KND_SC_NM label such as ``고등학교``. An empty answer is an empty
        result. Raises NeisTransientError, NeisQuotaError or NeisPermanentError.
        """
        params = {
            "ATPT_OFCDC_SC_CODE": office_code,
            "SD_SCHUL_CODE": school_code,
            "SCHUL_KND_SC_NM": kind,
        }
        result = FetchResult()
        query = {name: value for name, value in params.items() if value}

        def convert(row: object) -> SchoolRecord:
            # A listing of one office or school holds nothing else; what does is dropped, not
            # filed under another office (and it keeps the listing from counting as complete).
            record = parse.school_from_row(row)
            if office_code and record.office_code != office_code:
                raise parse.InvalidRow("other-office")
            if school_code and record.code != school_code:
                raise parse.InvalidRow("other-school")
            return record

        self._fetch(SCHOOL_SERVICE, SCHOOL_SERVICE, query, convert, result)
        return result

    def timetable(
        self,
        level: Level | str,
        office_code: str,
        school_code: str,
        date_from: datetime.date,
        date_to: datetime.date,
        *,
        peek: bool = True,
    ) -> FetchResult:
        """Every lesson of one school between two dates (inclusive) as LessonRecords.

        Academic years before the archive cut-off are asked of the ``*Timetablebgs`` twin; a
        window that crosses the cut-off becomes two queries, summed into one result. Rows come
        in NEIS's order, electives and byte-identical duplicates included. Rows of another
        school (or office) or dated outside a query's window are counted as invalid
        (``other-school``, ``outside-window``) and dropped, so the result is always one school's
        window. Weeks with no data give an empty result. Raises NeisTransientError,
        NeisQuotaError or NeisPermanentError, and ValueError when ``date_from`` is after
        ``date_to``.

        With ``peek`` (the default) the pages are only peeked at while paging and decoded
        when the records are first asked for, which an answer merged before never needs.
        Without it each page is decoded as it comes: for a window whose answer will be
        converted whatever it holds (the pipeline's first load of it), which then costs no
        peek. The records, counts and digest are the same either way.
        """
        level = Level(level)
        if date_from > date_to:
            raise ValueError(f"date_from {date_from} is after date_to {date_to}")
        result = FetchResult()
        rows = parse.LessonRows()  # one school's answer: its values repeat page after page
        for service, start, end in self.windows(level, date_from, date_to):
            params = {
                "ATPT_OFCDC_SC_CODE": office_code,
                "SD_SCHUL_CODE": school_code,
                "TI_FROM_YMD": start.strftime("%Y%m%d"),
                "TI_TO_YMD": end.strftime("%Y%m%d"),
            }
            convert = _LessonsOf(rows, office_code, school_code, start, end)
            self._fetch(service, level.service, params, convert, result, lessons=True, peek=peek)
        return result

    def classes(self, office_code: str, school_code: str, academic_year: int) -> FetchResult:
        """Every class classInfo lists for one school and academic year, as ClassRecords.

        Rows of another school or year are dropped as invalid (``other-school``,
        ``other-year``), like any row that does not parse. Same errors as ``timetable``.
        """
        result = FetchResult()
        params = {
            "ATPT_OFCDC_SC_CODE": office_code,
            "SD_SCHUL_CODE": school_code,
            "AY": str(academic_year),
        }
        convert = functools.partial(_class_of, office_code, school_code, academic_year)
        self._fetch(CLASS_SERVICE, CLASS_SERVICE, params, convert, result)
        return result

    def schedule(
        self,
        office_code: str,
        school_code: str,
        date_from: datetime.date,
        date_to: datetime.date,
    ) -> FetchResult:
        """Every SchoolSchedule row of one school between two dates (inclusive), as
        ScheduleRecords. Asked by dates only (NEIS is reported to ignore AY here); rows of
        another school or outside the window are dropped as invalid. Same errors as
        ``timetable``; ValueError when ``date_from`` is after ``date_to``.
        """
        if date_from > date_to:
            raise ValueError(f"date_from {date_from} is after date_to {date_to}")
        result = FetchResult()
        params = {
            "ATPT_OFCDC_SC_CODE": office_code,
            "SD_SCHUL_CODE": school_code,
            "AA_FROM_YMD": date_from.strftime("%Y%m%d"),
            "AA_TO_YMD": date_to.strftime("%Y%m%d"),
        }
        convert = functools.partial(_schedule_of, office_code, school_code, date_from, date_to)
        self._fetch(SCHEDULE_SERVICE, SCHEDULE_SERVICE, params, convert, result)
        return result

    # --- archive routing --------------------------------------------------------------------

    def archive_cutoff(self) -> int:
        """The first academic year served by the current services (earlier ones: ``bgs``)."""
        return self.archive_before_ay or academic_year(self._clock()) - 1

    def windows(
        self, level: Level, date_from: datetime.date, date_to: datetime.date
    ) -> list[tuple[str, datetime.date, datetime.date]]:
        """``(service, from, to)`` queries covering the window, split at the cut-off."""
        boundary = datetime.date(self.archive_cutoff(), 3, 1)
        archive = level.service + ARCHIVE_SUFFIX
        if date_to < boundary:
            return [(archive, date_from, date_to)]
        if date_from >= boundary:
            return [(level.service, date_from, date_to)]
        last_archived = boundary - datetime.timedelta(days=1)
        return [(archive, date_from, last_archived), (level.service, boundary, date_to)]

    # --- paging -----------------------------------------------------------------------------

    def _fetch(
        self,
        service: str,
        envelope_key: str,
        params: dict[str, str],
        convert: Callable[[object], SchoolRecord | LessonRecord | ClassRecord | ScheduleRecord],
        result: FetchResult,
        *,
        lessons: bool = False,
        peek: bool = False,
    ) -> None:
        """Page through one query, appending records and counts to ``result``.

        Stops on INFO-200, a short page, a page that starts like page 1 (some services repeat
        it past the end), once ``list_total_count`` rows have come, or at ``max_pages``.
        With ``lessons`` (timetables: ``convert`` is a ``_LessonsOf``) pages are read as
        ``parse.LessonPage``s where they can be; with ``peek`` too, pages whose rows need not
        be decoded to page on are left undecoded until ``result`` is asked for its records
        (``FetchResult.check``).
        """
        result.services.append(service)
        keys = (envelope_key, service)
        total = received = 0
        first_row: object = None
        read_first = None
        pages: list[list] = []
        for page in range(1, self.max_pages + 1):
            query = {**params, "pIndex": page}
            envelope, read_rows = self._get(
                service, keys, query, result, lessons=lessons, peek=peek
            )
            result.pages += 1
            if envelope.code == NO_DATA:
                break
            rows = envelope.rows
            if page == 1:
                total = envelope.list_total_count
                first_row, read_first = (rows[0] if rows else None), read_rows
            elif rows and self._same_row(rows[0], first_row, read_rows, read_first):
                self._log(logging.INFO, "%s page %s repeats page 1; stopping", service, page)
                break
            received += len(rows)
            pages.append(read_rows or rows)
            # Stopping at the claimed total saves the request that would only say "no more".
            if len(rows) < self.page_size or received >= total:
                break
        else:
            self._log(logging.WARNING, "%s hit the %s-page cap; stopping", service, page)

        result.list_total_count += total
        result.received += received
        if pages:  # converted when the records are first asked for (FetchResult.rows)
            report = functools.partial(self._report_invalid, service, params)
            result._unconverted.append((convert, pages, report))
        if received != total:
            self._log(
                logging.WARNING,
                "%s %s: NEIS claimed %s rows but served %s%s",
                service,
                self._describe(params),
                total,
                received,
                " (keyless mode serves 5)" if self.keyless else "",
            )

    def _get(
        self,
        service: str,
        keys: Iterable[str],
        params: dict,
        result: FetchResult,
        *,
        lessons: bool = False,
        peek: bool = False,
    ) -> tuple[parse.Envelope, Callable[[], list] | None]:
        """One request; returns a success or INFO-200 envelope, raises every other outcome.

        With ``lessons`` (timetables), a success page's rows are a ``parse.LessonPage`` where
        ``parse.read_lessons`` reads the body. With ``peek`` too, they may be left undecoded
        (``parse.peek_envelope``): the second item is then what reads them (``_rows``),
        raising what this would have raised had it read them at once (a page whose rows json
        refuses); else it is None.

        Errors are raised outside any ``except`` block, so none carries a ``__context__``: the
        exceptions of requests, urllib3 and the parser can quote the URL, key included.
        """
        query: dict[str, Any] = {"Type": "json", "pSize": self.page_size, **params}
        if self._api_key:
            query["KEY"] = self._api_key
        where = f"{service} page {params['pIndex']}"
        self._log(logging.DEBUG, "GET %s %s", service, self._describe(query))
        result.requests += 1
        status, body = self._exchange(f"{self.base_url}/{service}", query, where)
        # The query too (never the key): the records also depend on the school and window asked.
        result._hash.update(f"{service} {self._describe(params)} {status} {len(body)}\n".encode())
        result._hash.update(body)
        envelope, rows = None, None
        if lessons and 200 <= status < 300:
            read = parse.peek_envelope if peek else parse.read_lessons
            envelope = read(body, keys, max_rows=self.max_rows)
            if envelope is None or not _means_success(envelope.code):
                envelope = None
            elif peek:
                rows = functools.partial(self._rows, keys, body, status, where)
        if envelope is None:
            envelope = self._read(keys, body, status, where)
        if envelope.code == "INFO-100":
            self._log(logging.INFO, "%s answered INFO-100: %s", where, envelope.message)
        return envelope, rows

    def _rows(self, keys: Iterable[str], body: bytearray, status: int, where: str) -> list:
        """The rows of a peeked timetable page: a ``parse.LessonPage`` when
        ``parse.read_lessons`` reads the body as a success, else what ``_read`` reads (or the
        error it raises)."""
        envelope = parse.read_lessons(body, keys, max_rows=self.max_rows)
        if envelope is None or not _means_success(envelope.code):
            envelope = self._read(keys, body, status, where)
        return envelope.rows

    def _read(
        self, keys: Iterable[str], body: bytearray, status: int, where: str
    ) -> parse.Envelope:
        """The envelope of one answer, or the error it means."""
        failure: tuple[str, str] | None = None
        try:
            envelope = parse.read_envelope(body, keys, max_rows=self.max_rows)
        except parse.BadBody as exc:
            code = "TOO-MANY-ROWS" if isinstance(exc, parse.TooManyRows) else "BAD-BODY"
            code = code if 200 <= status < 300 else f"HTTP-{status}"
            failure = (code, f"{where}: HTTP {status}, {exc}")
        if failure is not None:
            raise self._error(*failure)
        if not 200 <= status < 300 and _means_success(envelope.code):
            # A success envelope under an error status is not trusted; the status decides.
            raise self._error(f"HTTP-{status}", f"{where}: HTTP {status}")
        error = self._error(envelope.code, f"{envelope.message} ({where})")
        if error is not None:
            raise error
        return envelope

    def _exchange(self, url: str, query: dict, where: str) -> tuple[int, bytearray]:
        """Send one GET inside a limiter slot and read its answer: ``(status, body)``.

        A redirect is refused unread; the body is read within ``max_body_bytes`` and the
        request's ``deadline``. Raises the NeisError of a transport failure, a redirect or a
        breached bound, unchained.
        """
        session = self._session or shared_session()
        slot = self.limiter.slot() if self.limiter is not None else contextlib.nullcontext()
        connect_timeout, read_timeout = self.timeout
        failure: tuple[str, str] | None = None
        status, body = 0, bytearray()
        with slot:
            started = time.monotonic()
            timeout = (min(connect_timeout, self.deadline), min(read_timeout, self.deadline))
            try:
                response = _send(session, url, query, timeout)
            except _SEND_ERRORS as exc:
                failure = (transport_tag(exc), f"{where}: {exc}")
            else:
                status, complete = response.status, False
                try:
                    if 300 <= status < 400:
                        location = response.headers.get("Location")
                        failure = (
                            "REDIRECT",
                            f"{where}: {describe_redirect(status, location, url)}",
                        )
                    else:
                        body = read_body(
                            response,
                            limit=self.max_body_bytes,
                            started=started,
                            seconds=self.deadline,
                            read_timeout=read_timeout,
                        )
                        complete = True
                except BodyRefused as exc:
                    # An error status says more than its oversized page; a deadline is its own.
                    ok = 200 <= status < 300 or exc.code == "DEADLINE"
                    failure = (
                        exc.code if ok else f"HTTP-{status}",
                        f"{where}: HTTP {status}, {exc}",
                    )
                except _READ_ERRORS as exc:
                    failure = (read_tag(exc), f"{where}: {exc}")
                finally:
                    if complete:
                        # Back to the pool for the next page, with the usual read timeout.
                        _set_socket_timeout(response, read_timeout)
                        response.release_conn()
                    else:
                        # A half-read connection is never reused: closed, then given back
                        # to its pool as an empty slot (as requests' Response.close does).
                        response.close()
                        response.release_conn()
        if failure is not None:
            raise self._error(*failure)
        return status, body

    @staticmethod
    def _same_row(row: object, first_row: object, read_page, read_first) -> bool:
        """Whether a page's first row is page 1's. When one of them, undecoded, does not
        decode, their pages are read in order: the first that json refuses raises the error
        it means (``_read``), as it would have had it been read when it came."""
        try:
            return parse.same_row(row, first_row)
        except parse.BadBody:
            first = read_first() if read_first else [first_row]
            rows = read_page() if read_page else [row]
            return rows[0] == first[0]

    def _report_invalid(self, service: str, params: dict, reasons: Counter) -> None:
        self._log(
            logging.WARNING,
            "%s %s: dropped %s invalid rows (%s)",
            service,
            self._describe(params),
            sum(reasons.values()),
            ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items())),
        )

    # --- helpers ----------------------------------------------------------------------------

    def _error(self, code: str, message: str) -> NeisError | None:
        resets_at = None
        if RESULT_KINDS.get(code) is NeisQuotaError:
            resets_at = next_quota_reset(self._clock(), self.quota_reset_hour)
        # The code too: an unknown RESULT code is whatever the server wrote there.
        code, message = (printable(redact(text, self._api_key)) for text in (code, message))
        return classify(code, message, resets_at=resets_at)

    def _log(self, level: int, message: str, *args: object) -> None:
        # Arguments are scrubbed one by one so that the message stays a %s template.
        if logger.isEnabledFor(level):
            clean = tuple(
                arg if isinstance(arg, int | float) else printable(redact(str(arg), self._api_key))
                for arg in args
            )
            logger.log(level, message, *clean)

    @staticmethod
    def _describe(params: dict) -> str:
        return " ".join(
            f"{name}={value}" for name, value in params.items() if name.upper() != "KEY"
        )
