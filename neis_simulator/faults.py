"""Fault injection: which /hub request fails, and how, by rate, by count or by time window.

Decisions are a pure function of the seed and the request's sequence number (rate), plus
explicit injections and windows, so a run with the same seed and request order fails the
same way. Control endpoints never pass through here.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading

from .clock import parse_time
from .lessons import uniforms

# Answered before any processing: no quota is used.
TRANSPORT = ("http500", "http502", "http503", "maintenance", "hang", "drop")
# Answered as a RESULT code after the request has been validated (quota is used).
# "head_error" puts ERROR-500 in the envelope's head with no rows, a form defensive
# clients check for but nobody has seen [?].
RESULT = ("error500", "error600", "error601", "head_error")
# A normal page whose head says INFO-100 ("reference only"), which clients treat as success.
NOTICE = ("info100",)
# A normal answer whose body is then damaged, or cut off mid-transfer ("partial").
# "control_chars" puts a raw TAB inside a JSON string: only lenient parsers (strict=False)
# read it, and the value they read differs from the truth, so random faults never pick it.
BODY = ("truncated", "invalid_json", "partial", "control_chars")
DELAY = ("latency",)
KINDS = TRANSPORT + RESULT + NOTICE + BODY + DELAY
RANDOM_KINDS = tuple(k for k in KINDS if k != "control_chars")


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
    return kind


@dataclasses.dataclass
class Injection:
    kind: str
    remaining: int
    service: str | None = None
    skip: int = 0  # matching requests to let through first


@dataclasses.dataclass(frozen=True)
class Window:
    kind: str
    start: datetime.datetime
    end: datetime.datetime
    service: str | None = None


class FaultPlan:
    """The fault schedule of one simulator; thread-safe."""

    def __init__(self, seed: int, windows=()):
        self.seed = seed
        self._lock = threading.Lock()
        self._sequence = 0
        self.injections: list[Injection] = []
        self.windows: list[Window] = [
            Window("maintenance", parse_time(a), parse_time(b)) for a, b in windows
        ]

    def decide(
        self, service: str | None, now: datetime.datetime, rate: float, kinds: tuple[str, ...]
    ) -> str | None:
        """The fault for the next /hub request, or None."""
        with self._lock:
            n = self._sequence
            self._sequence += 1
            for w in self.windows:
                if w.start <= now < w.end and w.service in (None, service):
                    return w.kind
            for inj in self.injections:
                if inj.remaining > 0 and inj.service in (None, service):
                    if inj.skip > 0:
                        inj.skip -= 1
                        continue
                    inj.remaining -= 1
                    return inj.kind
            self.injections = [i for i in self.injections if i.remaining > 0]
        if rate <= 0:
            return None
        u, pick = uniforms(f"{self.seed}:fault:{n}", 2)
        if u >= rate:
            return None
        kinds = kinds or RANDOM_KINDS
        return kinds[int(pick * len(kinds))]

    def inject(self, kind: str, count: int = 1, service: str | None = None, after: int = 0):
        with self._lock:
            self.injections.append(Injection(check_kind(kind), count, service, after))

    def add_window(self, kind: str, start, end, service: str | None = None) -> None:
        with self._lock:
            self.windows.append(
                Window(check_kind(kind), parse_time(start), parse_time(end), service)
            )

    def clear(self) -> None:
        with self._lock:
            self.injections.clear()
            self.windows.clear()

    def describe(self) -> dict:
        with self._lock:
            return {
                "injections": [dataclasses.asdict(i) for i in self.injections if i.remaining],
                "windows": [
                    {
                        "kind": w.kind,
                        "start": w.start.isoformat(),
                        "end": w.end.isoformat(),
                        "service": w.service,
                    }
                    for w in self.windows
                ],
            }
