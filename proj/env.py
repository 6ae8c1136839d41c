"""Tiny typed readers for environment variables.

Each raises ``ImproperlyConfigured`` naming the variable when its value cannot be used, so a
malformed setting stops start-up instead of surfacing later as a confusing failure.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# scheme://userinfo@ up to the last "@" of the authority, as urlsplit reads it, so a password
# holding a raw "@" is masked whole.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#\s'\"<>]*)@")


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {value!r}")


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    return _in_range(name, number, minimum, maximum)


def env_float(
    name: str,
    default: float,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    # float() reads "nan" and "inf"; both pass every comparison a range check makes (nan fails
    # them all, so "not below the minimum" holds) and silently disable what the number limits.
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {value!r}")
    return _in_range(name, number, minimum, maximum)


def _in_range(name, number, minimum, maximum):
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
    return number


def env_choice(
    name: str, default: str, choices: Iterable[str], environ: Mapping[str, str] | None = None
) -> str:
    """One of ``choices``, compared without regard to case and returned as spelled there."""
    value = env_str(name, default, environ)
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None or value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(
    name: str,
    default: str,
    schemes: set[str],
    environ: Mapping[str, str] | None = None,
) -> str:
    """A URL whose scheme is one of ``schemes`` (``default`` when unset).

    Checked as far as the clients that use it will parse it: a host, a numeric port and, for
    Redis, a numeric database, so a typo stops start-up instead of a connection attempt.
    Messages show the URL with its password masked.
    """
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    shown = mask_password(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid URL ({exc}): {shown!r}") from None
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {allowed}; got {shown!r}")
    if parts.scheme not in {"sqlite", "filesystem"} and not parts.hostname:
        raise ImproperlyConfigured(f"{name} has no host: {shown!r}")
    if parts.scheme in {"redis", "rediss"} and not re.fullmatch(r"/?\d*", parts.path):
        raise ImproperlyConfigured(
            f"{name} must name a numeric Redis database (redis://host:6379/0), got {shown!r}"
        )
    return value


def mask_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``."""
    return _USERINFO.sub(_mask_userinfo, url)


def _mask_userinfo(match: re.Match) -> str:
    user, colon, _password = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user}{colon and ':***'}@"


def env_secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Read ``NAME`` or, failing that, the file named by ``NAME_FILE`` (Docker secrets)."""
    value = _raw(name, environ)
    if value:
        return value
    path = _raw(f"{name}_FILE", environ)
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{name}_FILE names {path!r}, which cannot be read: {exc}"
        ) from None
