"""Steering a running simulator: in-process (``Control``) or over HTTP (``RemoteControl``).

Both expose the same methods with the same arguments; every argument and result is plain
JSON data (times as ISO text) except ``now()``, which returns an aware datetime. The HTTP
form is ``POST /_sim/<method>`` with a JSON object of keyword arguments (``GET`` works for
methods without arguments), answering ``{"ok": true, "result": ...}``.
"""

from __future__ import annotations

import datetime
import inspect
import json
import urllib.error
import urllib.request

from .clock import next_reset, parse_time
from .config import RUNTIME_FIELDS
from .faults import RANDOM_KINDS
from .state import KEYLESS, RuntimeState

_DEDICATED = {
    "clock": "set_clock",
    "freeze_clock": "freeze",
    "keys": "set_key_state",
    "key_quotas": "set_key_quota",
    "maintenance": "add_maintenance",
}


class Control:
    """In-process control of one simulator's runtime state."""

    REMOTE = (
        "health",
        "clock",
        "set_clock",
        "advance",
        "freeze",
        "configure",
        "settings",
        "set_quota",
        "set_key_quota",
        "set_keyless_cap",
        "reset_quota",
        "quota_used",
        "quota_resets_at",
        "set_key_state",
        "key_state",
        "keys",
        "set_faults",
        "inject",
        "add_fault_window",
        "add_maintenance",
        "clear_faults",
        "faults",
        "stats",
        "reset_stats",
        "log",
    )

    def __init__(self, state: RuntimeState):
        self._state = state

    def health(self) -> dict:
        return {"ok": True, "now": self.clock(), "key": self._state.default_key}

    # ---- clock -----------------------------------------------------------------------

    def now(self) -> datetime.datetime:
        """The simulated now (KST)."""
        return self._state.clock.now()

    def clock(self) -> str:
        return self.now().isoformat()

    def set_clock(self, when: str | datetime.datetime, frozen: bool | None = None) -> str:
        """Jump to ``when`` (naive means KST); ``frozen`` None keeps running/frozen as is."""
        self._state.clock.set(when, frozen=frozen)
        return self.clock()

    def advance(
        self, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> str:
        return self._state.clock.advance(
            seconds, minutes=minutes, hours=hours, days=days
        ).isoformat()

    def freeze(self, frozen: bool = True) -> str:
        self._state.clock.freeze(frozen)
        return self.clock()

    # ---- settings, keys and quota ----------------------------------------------------

    def configure(self, **fields) -> dict:
        """Change runtime settings (page_mode, overstate, json_content_type, daily_quota,
        fault_rate, latency_ms, ...); returns them all."""
        for name, method in _DEDICATED.items():
            if name in fields:
                raise ValueError(f"use {method}() to change {name}")
        self._state.configure(**fields)
        return self.settings()

    def settings(self) -> dict:
        cfg = self._state.config
        return {name: getattr(cfg, name) for name in sorted(RUNTIME_FIELDS)}

    def set_quota(self, quota: int) -> None:
        self._state.configure(daily_quota=int(quota))

    def set_key_quota(self, key: str, quota: int | None) -> None:
        """Give ``key`` its own daily quota (None: back to ``daily_quota``)."""
        quotas = dict(self._state.config.key_quotas)
        if quota is None:
            quotas.pop(key, None)
        else:
            if int(quota) < 0:
                raise ValueError("a key's quota must not be negative")
            quotas[key] = int(quota)
        self._state.configure(key_quotas=tuple(sorted(quotas.items())))

    def set_keyless_cap(self, cap: int) -> None:
        self._state.configure(keyless_daily_cap=int(cap))

    def reset_quota(self, key: str | None = None) -> None:
        """Forget the calls counted for ``key`` (all keys when None)."""
        self._state.reset_quota(key)

    def quota_used(self, key: str | None = None) -> int:
        """Calls counted today for ``key`` (None: keyless calls)."""
        return self._state.used(key or KEYLESS, self.now())

    def quota_resets_at(self) -> str:
        return next_reset(self.now(), self._state.config.quota_reset_time()).isoformat()

    def set_key_state(self, key: str, state: str) -> None:
        """Register ``key`` as valid, invalid or blocked."""
        self._state.set_key_state(key, state)

    def key_state(self, key: str) -> str:
        return self._state.key_state(key)

    def keys(self) -> dict:
        return dict(self._state.keys)

    # ---- faults ----------------------------------------------------------------------

    def set_faults(
        self,
        rate: float | None = None,
        kinds: list | None = None,
        latency_ms: float | None = None,
        latency_jitter_ms: float | None = None,
        fault_latency_ms: float | None = None,
        hang_seconds: float | None = None,
    ) -> dict:
        """Random faults: ``rate`` of /hub requests fail with one of ``kinds`` (all if empty)."""
        fields = {
            "fault_rate": rate,
            "fault_kinds": kinds,
            "latency_ms": latency_ms,
            "latency_jitter_ms": latency_jitter_ms,
            "fault_latency_ms": fault_latency_ms,
            "hang_seconds": hang_seconds,
        }
        self._state.configure(**{k: v for k, v in fields.items() if v is not None})
        return self.faults()

    def inject(self, kind: str, count: int = 1, service: str | None = None, after: int = 0) -> None:
        """The next ``count`` /hub requests (to ``service``, after letting ``after`` of them
        through) fail with ``kind``."""
        self._state.faults.inject(kind, int(count), service, int(after))

    def add_fault_window(self, kind: str, start, end, service: str | None = None) -> None:
        """Every /hub request in [start, end) of simulated time fails with ``kind``."""
        self._state.faults.add_window(kind, start, end, service)

    def add_maintenance(self, start, end) -> None:
        """A maintenance window: an HTML page instead of answers, in simulated time."""
        self._state.faults.add_window("maintenance", start, end)

    def clear_faults(self) -> None:
        """No more faults or added latency: rate 0, injections and windows dropped."""
        self._state.faults.clear()
        self._state.configure(fault_rate=0.0, latency_ms=0.0, latency_jitter_ms=0.0)

    def faults(self) -> dict:
        cfg = self._state.config
        return {
            "rate": cfg.fault_rate,
            "kinds": list(cfg.fault_kinds or RANDOM_KINDS),
            "latency_ms": cfg.latency_ms,
            "latency_jitter_ms": cfg.latency_jitter_ms,
            "fault_latency_ms": cfg.fault_latency_ms,
            "hang_seconds": cfg.hang_seconds,
            **self._state.faults.describe(),
        }

    # ---- observability ---------------------------------------------------------------

    def stats(self) -> dict:
        """Counters of /hub traffic: requests, by_service, by_key, by_outcome, after_337,
        rows_served, in_flight, max_in_flight, control_requests. Keys appear as
        ``state.key_tag`` tags, never in full."""
        return self._state.stats.snapshot()

    def reset_stats(self) -> None:
        self._state.stats.reset()

    def log(self, limit: int | None = None) -> list[dict]:
        """The newest request-log entries (keys shown as ``state.key_tag`` tags)."""
        return self._state.stats.entries(limit)


class RemoteControl:
    """The ``Control`` methods, called over HTTP on a simulator at ``url``."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, **kwargs):
        data = json.dumps(kwargs, default=str).encode()
        request = urllib.request.Request(
            f"{self.url}/_sim/{method}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read() or b"{}")
            raise RuntimeError(f"{method}: {answer.get('error', exc)}") from None
        return answer["result"]

    def now(self) -> datetime.datetime:
        return parse_time(self.call("clock"))

    def __getattr__(self, name: str):
        if name not in Control.REMOTE:
            raise AttributeError(name)
        signature = inspect.signature(getattr(Control, name))

        def remote(*args, **kwargs):
            arguments = signature.bind(self, *args, **kwargs).arguments
            arguments.pop("self")
            for param in signature.parameters.values():
                if param.kind is param.VAR_KEYWORD:
                    arguments.update(arguments.pop(param.name, {}))
            return self.call(name, **arguments)

        remote.__name__ = name
        return remote
