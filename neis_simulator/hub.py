"""The hub's request rules: parameters, keys, quota, required fields, paging and envelopes.

``Hub.answer`` turns one GET (service path and query pairs) into a complete ``Answer``;
the HTTP layer only adds transport faults and writes bytes. The checks run in this order
(the real order is unknown; this one never charges quota for a wrong path):

1. unknown service path -> ERROR-310
2. KEY: unknown or invalid -> ERROR-290, blocked -> INFO-300; then the daily quota
   (ERROR-337 once spent; keyless calls have their own cap)
3. pIndex/pSize not positive integers -> ERROR-333; pSize above the maximum -> ERROR-336
   (both ignored without a key, where the first rows are always served)
4. a required parameter missing or empty -> ERROR-300
5. an injected RESULT fault (ERROR-500/600/601, or ERROR-500 inside a page's head)
6. the query: INFO-200 when there are no rows or the page is past the end

Answers to step 6 are cached by their bytes (``SimulatorConfig.page_cache_bytes``), keyed by
the world's query key (which moves with the clock whenever the rows do) and every request
part that shapes the page; an entry is served only under the very configuration object it
was rendered with, so any ``configure`` (messages, content types, paging mode, overstate...)
renders afresh.
"""

from __future__ import annotations

import dataclasses
import datetime

from . import encode
from .cache import LRU
from .services import SERVICES
from .state import KEYLESS, RuntimeState
from .world import World

_FAULT_CODES = {"error500": "ERROR-500", "error600": "ERROR-600", "error601": "ERROR-601"}


@dataclasses.dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    outcome: str  # the RESULT code, or a fault tag
    rows: int = 0
    key: str = KEYLESS
    service: str = "?"
    params: dict = dataclasses.field(default_factory=dict)
    after_337: bool = False


def _first(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, value)
    return params


def _lookup(params: dict[str, str], name: str) -> str | None:
    """A parameter whose *name* matches case-insensitively (KEY, Key, key...)."""
    for key, value in params.items():
        if key.upper() == name:
            return value
    return None


def _position(text: str | None, default: int) -> int | None:
    """pIndex/pSize: default when absent or empty, None when not a positive integer."""
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        return None
    return int(text)


class Hub:
    def __init__(self, world: World, state: RuntimeState):
        self.world = world
        self.state = state
        self.pages = LRU(state.config.page_cache_bytes)

    def answer(
        self,
        service: str | None,
        pairs: list[tuple[str, str]],
        now: datetime.datetime,
        fault: str | None = None,
    ) -> Answer:
        cfg = self.state.config
        params = _first(pairs)
        as_json = (_lookup(params, "TYPE") or "").lower() == "json"
        key = _lookup(params, "KEY") or KEYLESS
        base = {"service": service or "?", "key": key, "params": params}

        def result(code: str, **extra) -> Answer:
            return dataclasses.replace(_bare(code, as_json, cfg), **{**base, **extra})

        svc = SERVICES.get(service or "")
        if svc is None:
            return result("ERROR-310")
        if key != KEYLESS:
            state = self.state.key_state(key)
            if state == "invalid":
                return result("ERROR-290")
            if state == "blocked":
                return result("INFO-300")
        allowed, after = self.state.spend(key, now)
        if not allowed:
            return result("ERROR-337", after_337=after)
        page, size = 1, cfg.keyless_rows
        if key != KEYLESS:
            page = _position(params.get("pIndex"), 1)
            size = _position(params.get("pSize"), cfg.default_page_size)
            if page is None or size is None:
                return result("ERROR-333", after_337=after)
            if size > cfg.max_page_size:
                return result("ERROR-336", after_337=after)
        if any(params.get(name, "") == "" for name in svc.required):
            return result("ERROR-300", after_337=after)
        if fault in _FAULT_CODES:
            return result(_FAULT_CODES[fault], after_337=after)
        if fault == "head_error":
            empty = _page(svc, as_json, 0, b"", 0, "ERROR-500", cfg)
            return dataclasses.replace(empty, outcome="HEAD_ERROR", **base, after_337=after)

        code = "INFO-100" if fault == "info100" else "INFO-000"
        plan = self.world.plan(svc.name, params, now)
        cache_key = (plan.key, as_json, page, size, code)
        limit = cfg.page_cache_bytes
        if limit != self.pages.max_weight:
            self.pages.resize(limit)
        cached = self.pages.get(cache_key) if limit > 0 else None
        if cached is None or cached[0] is not cfg:
            cached = (cfg, self._data(plan, as_json, page, size, code, cfg))
            if limit > 0:
                self.pages.put(cache_key, cached, len(cached[1].body))
        found = cached[1]
        return dataclasses.replace(found, **base, after_337=after)

    @staticmethod
    def _data(plan, as_json, page, size, code, cfg) -> Answer:
        """The answer to a valid data query (a page or INFO-200) without the request's own
        fields: a function of the plan's key, the other arguments and ``cfg`` alone."""
        found = plan.result()
        total = len(found.rows)
        start = (page - 1) * size
        if start >= total and total and cfg.page_mode == "repeat":
            start = 0
        stop = min(start + size, total)
        if start >= stop:
            return _bare("INFO-200", as_json, cfg)
        rows = encode.page_rows(found, start, stop, "json" if as_json else "xml")
        return _page(plan.service, as_json, total + cfg.overstate, rows, stop - start, code, cfg)


def _bare(code: str, as_json: bool, cfg) -> Answer:
    """A bare top-level RESULT: no data, and every error."""
    message = cfg.message(code)
    if as_json:
        return Answer(200, cfg.json_content_type, encode.json_result(code, message), code)
    return Answer(200, cfg.xml_content_type, encode.xml_result(code, message), code)


def _page(svc, as_json, total, rows: bytes, count: int, code: str, cfg) -> Answer:
    """A page of ``count`` encoded rows in the service's envelope, ``code`` in its head."""
    message = cfg.message(code)
    if as_json:
        body = encode.json_page(svc.envelope, total, message, rows, code)
        return Answer(200, cfg.json_content_type, body, code, count)
    body = encode.xml_page(svc.envelope, total, message, rows, cfg.xml_split_head, code)
    return Answer(200, cfg.xml_content_type, body, code, count)
