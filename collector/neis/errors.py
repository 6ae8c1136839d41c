"""Named NEIS errors, classified once.

Every failure the client can meet is one of three kinds, and the pipeline acts on the kind
only: transient (retry with backoff), quota (defer until the daily reset) and permanent
(fail the unit and say why). "No data" (INFO-200) is not an error: it is an empty result.
"""

from __future__ import annotations

import datetime


class NeisError(Exception):
    """Base of every NEIS failure. ``code`` is the RESULT code or a local tag."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self):
        # Pickle by the constructor's own arguments: Celery's prefork pool pickles a task's
        # exception on its way to ``on_failure`` and the result backend, and the default
        # (``cls(*self.args)``, one argument) cannot rebuild it; the ledger then recorded
        # "UnpickleableExceptionWrapper" instead of the NEIS code.
        return (type(self), (self.code, self.message))


class NeisTransientError(NeisError):
    """Worth retrying: ERROR-500/600/601, HTTP 5xx, HTML or truncated bodies, timeouts."""


class NeisQuotaError(NeisError):
    """ERROR-337: the key's daily quota is spent; nothing more today."""

    def __init__(self, code: str, message: str, resets_at: datetime.datetime):
        super().__init__(code, message)
        self.resets_at = resets_at

    def __reduce__(self):
        return (type(self), (self.code, self.message, self.resets_at))


class NeisPermanentError(NeisError):
    """Will not succeed by retrying: bad key, blocked key, a bug in the request."""


class NeisKeyError(NeisPermanentError):
    """The key itself is refused (invalid, or blocked by NEIS): every request with it fails
    the same way, so the pipeline stops using it instead of failing one school at a time."""
