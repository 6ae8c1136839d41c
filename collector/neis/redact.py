"""Keep the NEIS key out of everything that can be printed or stored.

NEIS takes the key in the query string, so it rides along in every URL that requests,
urllib3 and our own messages mention. ``redact`` scrubs both the ``KEY=...`` parameter (any
case) and, when known, the literal key value wherever it appears.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_KEY_PARAM = re.compile(r"(?i)\b(key=)[^&\s#'\"<>]+")
_MASK = "***"


def redact(text: str, secret: str | Iterable[str] | None = None) -> str:
    """Return ``text`` with the key parameter and the literal ``secret`` (or each of several
    secrets) masked."""
    if not text:
        return text
    for one in (secret,) if isinstance(secret, str) else secret or ():
        if one:
            text = text.replace(one, _MASK)
    return _KEY_PARAM.sub(lambda match: match.group(1) + _MASK, text)


def printable(text: str) -> str:
    """``text`` with every character that is not printable as a backslash escape.

    For messages and log lines that quote what a server sent: an ESC or CSI sequence must not
    reach an operator's terminal raw, nor a newline forge a log line.
    """
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def configured_keys() -> tuple[str, ...]:
    """Every key in Django settings (``NEIS_API_KEYS`` and ``NEIS_API_KEY``), or () when
    settings are not configured."""
    try:
        from django.conf import settings

        keys = (*(getattr(settings, "NEIS_API_KEYS", ()) or ()), settings.NEIS_API_KEY or "")
    except Exception:  # settings not configured: nothing literal to scrub
        return ()
    return tuple(key for key in keys if key)


class RedactKeyFilter(logging.Filter):
    """Logging filter that renders the message once and scrubs the key from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return True
        cleaned = redact(message, configured_keys())
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, configured_keys())
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
