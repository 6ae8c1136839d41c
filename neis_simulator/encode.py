"""JSON and XML bodies exactly as the hub shapes them (docs/neis-api.md section 4).

Rows are encoded once per cached query result and pages are joined from the encoded rows,
so paging through a large query costs one encoding per row, not one per page.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring  # C-accelerated, keeps non-ASCII as is

from .services import Service
from .world import Result

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_MEMO_LIMIT = 500_000  # distinct values remembered; the set is mostly names and dates


class _JsonValues(dict):
    """value -> its JSON text ("null" for None); a memo, since values repeat endlessly."""

    def __missing__(self, value):
        text = "null" if value is None else encode_basestring(value)
        if len(self) < _MEMO_LIMIT:
            self[value] = text
        return text


class _XmlValues(dict):
    """value -> its XML element text: CDATA for strings, empty for None."""

    def __missing__(self, value):
        if value is None:
            text = ""
        else:
            text = "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
        if len(self) < _MEMO_LIMIT:
            self[value] = text
        return text


_JSON_VALUES = _JsonValues()
_XML_VALUES = _XmlValues()
_templates: dict[tuple[str, str], str] = {}


def _template(service: Service, kind: str) -> str:
    found = _templates.get((service.name, kind))
    if found is None:
        if kind == "json":
            found = "{" + ",".join(f'"{f}":%s' for f in service.fields) + "}"
        else:
            found = "<row>" + "".join(f"<{f}>%s</{f}>" for f in service.fields) + "</row>"
        _templates[service.name, kind] = found
    return found


def encoded_rows(result: Result, start: int, stop: int, kind: str) -> list[bytes]:
    """Encoded rows ``start:stop`` of a result ("json" or "xml"), encoding each only once."""
    cache = getattr(result, kind)
    if cache is None:
        cache = [None] * len(result.rows)
        setattr(result, kind, cache)
    missing = [i for i in range(start, stop) if cache[i] is None]
    if missing:
        template = _template(result.service, kind)
        get = (_JSON_VALUES if kind == "json" else _XML_VALUES).__getitem__
        rows = result.rows
        for i in missing:
            cache[i] = (template % tuple(map(get, rows[i]))).encode()
    return cache[start:stop]


def json_page(
    envelope: str, total: int, message: str, rows: list[bytes], code: str = "INFO-000"
) -> bytes:
    """The success envelope: head (count, RESULT) then the page's rows."""
    result = '{"RESULT":{"CODE":"' + code + '","MESSAGE":' + encode_basestring(message) + "}}"
    head = '{"' + envelope + '":[{"head":[{"list_total_count":' + str(total) + "},"
    head += result + ']},{"row":['
    return head.encode() + b",".join(rows) + b"]}]}"


def json_result(code: str, message: str) -> bytes:
    """A bare top-level RESULT: no data and every error."""
    return json.dumps(
        {"RESULT": {"CODE": code, "MESSAGE": message}}, ensure_ascii=False, separators=(",", ":")
    ).encode()


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_page(
    envelope: str,
    total: int,
    message: str,
    rows: list[bytes],
    split_head: bool,
    code: str = "INFO-000",
) -> bytes:
    count = f"<list_total_count>{total}</list_total_count>"
    result = f"<RESULT><CODE>{code}</CODE><MESSAGE>{_xml_text(message)}</MESSAGE></RESULT>"
    head = (
        f"<head>{count}</head><head>{result}</head>"
        if split_head
        else (f"<head>{count}{result}</head>")
    )
    return (
        (f"{XML_DECLARATION}<{envelope}>{head}").encode()
        + b"".join(rows)
        + (f"</{envelope}>".encode())
    )


def xml_result(code: str, message: str) -> bytes:
    return (
        f"{XML_DECLARATION}<RESULT><CODE>{code}</CODE>"
        f"<MESSAGE>{_xml_text(message)}</MESSAGE></RESULT>"
    ).encode()


MAINTENANCE_PAGE = (
    '<!DOCTYPE html><html lang="ko"><head><meta charset="UTF-8"><title>시스템 점검 안내</title>'
    "</head><body><h1>시스템 점검 안내</h1><p>보다 나은 서비스를 위하여 시스템 점검 중입니다. "
    "이용에 불편을 드려 죄송합니다.</p></body></html>"
).encode()


def http_error_page(status: int, reason: str) -> bytes:
    return (
        f"<html><head><title>{status} {reason}</title></head><body><center><h1>{status} "
        f"{reason}</h1></center><hr><center>nginx</center></body></html>"
    ).encode()
