"""Keep credentials out of what the project shows: error pages, error reports and Celery's
configuration listings.

Django hides a setting by its name (``SECRET``, ``PASS``, ``KEY``, ...), so ``DATABASE_URL``,
``CELERY_BROKER_URL`` and ``NEIS_LIMITER_URL`` were shown whole, passwords included. Here a
value is cleaned by what it holds: the password of any ``scheme://user:password@`` URL and the
NEIS key (its value, and any ``KEY=`` parameter) are masked wherever they appear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.views import debug

from collector.neis.redact import configured_keys
from collector.neis.redact import redact as redact_key
from proj.env import mask_password


def redact(text: str) -> str:
    """``text`` with URL passwords and the NEIS key masked."""
    return redact_key(mask_password(text), configured_keys())


class _Shown:
    """Stands in for a value whose repr held a credential: shows the cleaned repr."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _clean(value: Any) -> Any:
    """``value`` itself, or a stand-in showing its repr cleaned when the repr held a secret."""
    if isinstance(value, str):
        return redact(value)
    try:
        text = repr(value)
    except Exception:  # the reporter shows its own message for a repr that fails
        return value
    cleaned = redact(text)
    return value if cleaned == text else _Shown(cleaned)


class SafeExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    """Django's filter (settings hidden by name) plus credentials masked by value, in settings,
    request metadata (which holds the environment under runserver) and local variables,
    whether or not DEBUG is on."""

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, dict | list | tuple):
            return value  # Django cleaned each item through this method
        return _clean(value)

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, _clean(value)) for name, value in variables]


class SafeExceptionReporter(debug.ExceptionReporter):
    """Also masks the exception's message and its causes': a connection error names its URL."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        for name in ("exception_value", "exception_notes"):
            if data.get(name):
                data[name] = redact(data[name])
        for frame in data.get("frames", []):
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = redact(str(frame["exc_cause"]))
        return data


def redact_config(value: Any) -> Any:
    """A JSON-like configuration (mappings, lists, scalars) with every string cleaned."""
    if isinstance(value, Mapping):
        return {key: redact_config(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_config(item) for item in value]
    return redact(value) if isinstance(value, str) else value
