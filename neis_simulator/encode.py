"""JSON and XML bodies exactly as the hub shapes them (docs/neis-api.md section 4).

A page's rows are formatted in one go, in bytes: the row template repeated once per row,
filled from every row's values as UTF-8 (each value's encoding remembered, since values
repeat endlessly). The hub caches finished pages, so a page asked for again is not encoded
again.
"""

from __future__ import annotations

import itertools
import json
from json.encoder import encode_basestring  # C-accelerated, keeps non-ASCII as is

from .services import Service
from .world import Result

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_MEMO_LIMIT = 500_000  # distinct values remembered; the set is mostly names and dates


class _JsonValues(dict):
    """value -> its JSON text in UTF-8 (null for None); a memo, since values repeat endlessly."""

    def __missing__(self, value):
        text = b"null" if value is None else encode_basestring(value).encode()
        if len(self) < _MEMO_LIMIT:
            self[value] = text
        return text


class _XmlValues(dict):
    """value -> its XML element text in UTF-8: CDATA for strings, empty for None."""

    def __missing__(self, value):
        if value is None:
            text = b""
        else:
            text = ("<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>").encode()
        if len(self) < _MEMO_LIMIT:
            self[value] = text
        return text


_VALUES = {"json": _JsonValues(), "xml": _XmlValues()}
_templates: dict[tuple[str, str], bytes] = {}


def _template(service: Service, kind: str) -> bytes:
    """One row of a service as a %-template: a JSON object, or an XML ``<row>`` element."""
    found = _templates.get((service.name, kind))
    if found is None:
        if kind == "json":
            text = "{" + ",".join(f'"{f}":%s' for f in service.fields) + "}"
        else:
            text = "<row>" + "".join(f"<{f}>%s</{f}>" for f in service.fields) + "</row>"
        found = _templates[service.name, kind] = text.encode()
    return found


def page_rows(result: Result, start: int, stop: int, kind: str) -> bytes:
    """Rows ``start:stop`` of a result encoded as a page holds them ("json" or "xml"):
    JSON objects separated by commas, or XML ``<row>`` elements one after another."""
    rows = result.rows[start:stop]
    page = (b"," if kind == "json" else b"").join([_template(result.service, kind)] * len(rows))
    return page % tuple(map(_VALUES[kind].__getitem__, itertools.chain.from_iterable(rows)))


def json_page(
    envelope: str, total: int, message: str, rows: bytes, code: str = "INFO-000"
) -> bytes:
    """The success envelope: head (count, RESULT) then the page's rows (``page_rows``)."""
    result = '{"RESULT":{"CODE":"' + code + '","MESSAGE":' + encode_basestring(message) + "}}"
    head = '{"' + envelope + '":[{"head":[{"list_total_count":' + str(total) + "},"
    head += result + ']},{"row":['
    return head.encode() + rows + b"]}]}"


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
    rows: bytes,
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
    return (f"{XML_DECLARATION}<{envelope}>{head}").encode() + rows + (f"</{envelope}>".encode())


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
