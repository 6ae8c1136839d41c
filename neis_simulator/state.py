"""Mutable state of a running simulator: runtime settings, keys, quota, faults and stats.

The ``World`` never changes; everything a test may flip while the server runs lives here.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import threading

from .clock import SimClock, quota_day
from .config import RUNTIME_FIELDS, SimulatorConfig
from .faults import FaultPlan, check_kind

KEY_STATES = ("valid", "invalid", "blocked")
KEYLESS = "(keyless)"


def default_key(seed: int) -> str:
    """The always-valid test key of a seed: 32 lower-case hex characters, like real keys."""
    return hashlib.blake2b(f"neis-simulator:{seed}".encode(), digest_size=16).hexdigest()


def key_tag(key: str | None) -> str | None:
    """A key as stats and the request log show it: its first four characters, ``~`` and eight
    hex characters of a hash of the whole key (``0123~5f1a2b3c``).

    Enough to tell keys apart and to recognise one you hold; not enough to use or rebuild
    one. Stats keep only tags, so a /_sim/stats reader never sees a key.
    """
    if not key or key == KEYLESS:
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=4, person=b"sim-tag")
    return f"{key[:4]}~{digest.hexdigest()}"


class Stats:
    """Counters and a bounded request log of /hub traffic; thread-safe."""

    def __init__(self, log_size: int):
        self._lock = threading.Lock()
        self.in_flight = 0
        self._log_size = log_size
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.control_requests = 0
            self.rows_served = 0
            self.by_service: collections.Counter = collections.Counter()
            self.by_key: collections.Counter = collections.Counter()
            self.by_outcome: collections.Counter = collections.Counter()
            self.after_337: collections.Counter = collections.Counter()
            self.max_in_flight = self.in_flight
            self.log: collections.deque = collections.deque(maxlen=self._log_size)
            self._seq = 0

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def control(self) -> None:
        with self._lock:
            self.control_requests += 1

    def record(
        self,
        *,
        service: str,
        key: str,
        outcome: str,
        status: int | None,
        rows: int,
        params: dict,
        at: datetime.datetime,
        ms: float,
        after_337: bool,
    ) -> None:
        with self._lock:
            self.requests += 1
            self._seq += 1
            tag = key_tag(key)
            self.rows_served += rows
            self.by_service[service] += 1
            self.by_key[tag] += 1
            self.by_outcome[outcome] += 1
            if after_337:
                self.after_337[tag] += 1
            shown = {k: (key_tag(v) if k.upper() == "KEY" else v) for k, v in params.items()}
            self.log.append(
                {
                    "seq": self._seq,
                    "at": at.isoformat(),
                    "service": service,
                    "key": tag,
                    "params": shown,
                    "outcome": outcome,
                    "status": status,
                    "rows": rows,
                    "ms": round(ms, 2),
                }
            )

    def snapshot(self) -> dict:
        """Every counter as plain JSON-able data (per-key counters by ``key_tag``)."""
        with self._lock:
            return {
                "requests": self.requests,
                "control_requests": self.control_requests,
                "rows_served": self.rows_served,
                "by_service": dict(self.by_service),
                "by_key": dict(self.by_key),
                "by_outcome": dict(self.by_outcome),
                "after_337": dict(self.after_337),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
            }

    def entries(self, limit: int | None = None) -> list[dict]:
        with self._lock:
            items = list(self.log)
        return items[-limit:] if limit else items


class RuntimeState:
    """Runtime settings plus keys, quota counters, fault plan and stats of one server."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.clock = SimClock(config.clock, frozen=config.freeze_clock)
        self.default_key = default_key(config.seed)
        self._lock = threading.Lock()
        self.keys: dict[str, str] = {self.default_key: "valid"}
        for key, state in config.keys:
            self.set_key_state(key, state)
        self._used: dict[tuple[str, datetime.date], int] = {}
        self._exhausted: set[tuple[str, datetime.date]] = set()
        self.faults = FaultPlan(config.seed, config.maintenance)
        self.stats = Stats(config.log_size)

    def configure(self, **fields) -> SimulatorConfig:
        """Change runtime settings (see ``config.RUNTIME_FIELDS``); returns the new config."""
        wrong = set(fields) - RUNTIME_FIELDS
        if wrong:
            raise ValueError(f"not a runtime setting: {', '.join(sorted(wrong))}")
        if fields.get("page_mode", "info200") not in ("info200", "repeat"):
            raise ValueError("page_mode must be 'info200' or 'repeat'")
        for kind in fields.get("fault_kinds") or ():
            check_kind(kind)
        if "fault_kinds" in fields:
            fields["fault_kinds"] = tuple(fields["fault_kinds"] or ())
        with self._lock:
            self.config = dataclasses.replace(self.config, **fields)
        return self.config

    # ---- keys and quota ------------------------------------------------------------------

    def set_key_state(self, key: str, state: str) -> None:
        if state not in KEY_STATES:
            raise ValueError(f"key state must be one of {', '.join(KEY_STATES)}")
        with self._lock:
            self.keys[key] = state

    def key_state(self, key: str) -> str:
        """valid / invalid / blocked; keys the registry never heard of are invalid."""
        return self.keys.get(key, "invalid")

    def quota_day(self, now: datetime.datetime) -> datetime.date:
        return quota_day(now, self.config.quota_reset_time())

    def spend(self, key: str, now: datetime.datetime) -> tuple[bool, bool]:
        """Count one call for ``key`` (KEYLESS for sample mode) on today's quota.

        Returns (allowed, after_337): allowed is False once the day's quota is spent (the
        call is then not counted); after_337 is True if the key had already been refused
        today.
        """
        cfg = self.config
        limit = cfg.keyless_daily_cap if key == KEYLESS else self.quota_of(key)
        slot = (key, self.quota_day(now))
        with self._lock:
            after = slot in self._exhausted
            used = self._used.get(slot, 0)
            if used >= limit:
                self._exhausted.add(slot)
                return False, after
            self._used[slot] = used + 1
            return True, after

    def quota_of(self, key: str) -> int:
        """Calls ``key`` may make a day: its own quota if it has one, else ``daily_quota``."""
        return dict(self.config.key_quotas).get(key, self.config.daily_quota)

    def used(self, key: str, now: datetime.datetime) -> int:
        with self._lock:
            return self._used.get((key, self.quota_day(now)), 0)

    def reset_quota(self, key: str | None = None) -> None:
        """Forget today's (and every day's) counts, for one key or for all."""
        with self._lock:
            if key is None:
                self._used.clear()
                self._exhausted.clear()
            else:
                self._used = {k: v for k, v in self._used.items() if k[0] != key}
                self._exhausted = {k for k in self._exhausted if k[0] != key}
