"""One NEIS request budget per API key, shared by every worker process and machine.

Celery's ``rate_limit`` counts per worker, so four workers would spend four times the budget.
The budget here lives outside the workers: in Redis when the project has one (atomic Lua
scripts), otherwise in a lock-protected file under ``VAR_DIR`` (one machine, the embedded
default). It enforces two limits together:

- at most ``max_concurrency`` requests in flight (leases that expire, so a killed worker
  cannot hold a slot for ever), and
- at most ``max_rps`` request starts per second (GCRA: a theoretical arrival time that each
  start pushes forward by ``1 / max_rps``).

A request that finds every slot taken blocks until a holder frees one instead of polling: in
Redis it pops a token from the key's ``freed`` list (BLPOP), which each release pushes; on
one machine it waits on a named pipe each release writes a byte to. Either wait is bounded
(``MAX_BLOCK_SECONDS``, and the first lease's expiry), then the request tries again, so a
lost wake-up or a killed holder costs a bounded delay, never a stranded waiter. A request
held back by the rate sleeps until the moment the rate allows it.

It also remembers a quota block (ERROR-337) per key, so no process spends a request after the
key's daily quota is gone until the reset time, and holds the key's circuit breaker: when
NEIS fails for many schools at once with no answer between, NEIS itself is down, and the
breaker lets one probe through per interval until NEIS answers again. Rates are real seconds
(``time.time``); the block and the breaker are moments of the collector's clock
(``collector.clock``), like the reset and the outages they come from, so a test that moves
the clock moves them too.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import math
import os
import select
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from collector import clock

# A slot whose holder vanished (SIGKILL) frees itself after this many seconds.
LEASE_SECONDS = 120.0
# How long a key NEIS refused stays set aside before one request may probe it again.
REJECTION_SECONDS = 3600
# Longest single wait for a freed slot or for the rate before trying again. A release wakes a
# waiter at once; this bounds only what a lost wake-up costs (a waiter that took the wake-up
# and died, a slot freed by its lease expiring).
MAX_BLOCK_SECONDS = 0.5
# The breaker counts transient failures in a sliding window of this many seconds.
BREAKER_WINDOW_SECONDS = 60.0
# How long the breaker's state outlives its last change when nothing probes (real seconds).
BREAKER_KEEP_SECONDS = 86400
# Days a key's per-day request counts and observed caps stay in the shared store; the database
# keeps the history (``collector.quota``), flushed every minute by the watchdog.
USAGE_KEEP_DAYS = 8


def key_id(api_key: str) -> str:
    """A short, non-reversible name for a key, safe to log and to use in Redis keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12] if api_key else "keyless"


@dataclass(frozen=True)
class Budget:
    max_rps: float
    max_concurrency: int
    breaker_failures: int = 10
    breaker_probe_seconds: float = 60.0
    quota_reset_hour: int = 0


@dataclass(frozen=True)
class Usage:
    """One key's quota day: requests let through, and the observed cap (None until an
    ERROR-337 came that day)."""

    requests: int
    cap: int | None = None


class RequestBudget:
    """Common face of both stores: ``slot()`` around each request, quota block state."""

    def __init__(self, api_key: str, budget: Budget):
        self.key = key_id(api_key)
        self.budget = budget
        self.api_key = api_key  # to build this key's client; never shown (see __repr__)
        # (quota day, sequence number) of the last request this thread started with the key.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key})"

    def look(self) -> None:
        """Read the key's shared state at once, for a budget made for one attempt and then
        dropped (the Redis budget: one round trip instead of one per question). Others read
        the store at each question; nothing to do."""

    def quota_day(self, moment: datetime.datetime | None = None) -> datetime.date:
        return clock.quota_day(moment or clock.now(), self.budget.quota_reset_hour)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Block until a request may start under both limits; hold a lease while it runs.
        The request is counted on the key's quota day as it starts."""
        lease = uuid.uuid4().hex
        try:
            wait, full = self._attempt(lease)
            while wait > 0:
                if full:
                    wait, full = self._attempt_when_freed(lease, min(wait, MAX_BLOCK_SECONDS))
                else:
                    time.sleep(min(wait, MAX_BLOCK_SECONDS))
                    wait, full = self._attempt(lease)
        except BaseException:  # a time limit, an error: this thread waits no more
            self._stop_listening()
            raise
        try:
            yield
        finally:
            self._release(lease)

    def _try_acquire(self, lease: str) -> float:
        """0 when the request may start (then counted, its number kept in ``_local.last``),
        else the seconds to wait."""
        return self._attempt(lease)[0]

    def _attempt(self, lease: str) -> tuple[float, bool]:  # pragma: no cover - abstract
        """``(0, False)`` when the request may start (then counted, its number kept in
        ``_local.last``); else the seconds to wait and whether every slot is taken (then
        the wait is until the first lease expires, and a release may end it sooner)."""
        raise NotImplementedError

    def _attempt_when_freed(self, lease: str, seconds: float) -> tuple[float, bool]:
        """``_attempt`` again once a holder of this key released a slot since the last
        ``_attempt`` found them all taken, or after ``seconds``."""
        self._await_release(seconds)
        return self._attempt(lease)

    def _await_release(self, seconds: float) -> None:  # pragma: no cover - abstract
        """Return when a holder released a slot since the last ``_attempt`` found them all
        taken, or after ``seconds``."""
        raise NotImplementedError

    def _stop_listening(self) -> None:
        """Give up what this thread held to be woken (a waiter that got its slot, or left
        ``slot`` by an exception)."""

    def _started(self, day: datetime.date, sequence: int) -> None:
        self._local.last = (day.isoformat(), sequence)

    def note_quota_hit(self) -> int | None:
        """NEIS answered this thread's last request with ERROR-337: the key's cap that day is
        at most the requests counted before it. Keeps the lowest such count of the day (a
        request started earlier may be refused later) and returns the day's observed cap."""
        last = getattr(self._local, "last", None)
        if last is None:
            return None
        day, sequence = last
        return self._note_cap(day, max(0, sequence - 1))

    def _note_cap(self, day: str, cap: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def usage(self, days: Iterable[datetime.date]) -> dict[datetime.date, Usage]:
        """Requests and observed cap of each of ``days`` still in the store (days with no
        request are left out)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def used_today(self) -> int:
        found = self.usage([self.quota_day()])
        return next(iter(found.values())).requests if found else 0

    def _release(self, lease: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def block_until(self, until_epoch: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def blocked_until(self) -> float:  # pragma: no cover - abstract
        """Epoch seconds until which the key's quota is spent; 0 when not blocked."""
        raise NotImplementedError

    def clear_block(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # A key NEIS refused (ERROR-290, INFO-300) is set aside for REJECTION_SECONDS: nothing is
    # sent with it, and the next use after that probes it with one request.

    def reject(self, code: str, message: str) -> None:
        self._set_rejection(json.dumps({"code": code, "message": message}))

    def rejection(self) -> tuple[str, str] | None:
        """``(code, message)`` while the key stands rejected, else None."""
        value = self._get_rejection()
        if not value:
            return None
        found = json.loads(value)
        return found["code"], found["message"]

    def _set_rejection(self, value: str | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_rejection(self) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def clear_rejection(self) -> None:
        self._set_rejection(None)

    # The circuit breaker. Transient failures are counted in a sliding window; any answer
    # from NEIS forgets them. ``breaker_failures`` of them with no answer between open the
    # breaker: from then on only one request per ``breaker_probe_seconds`` may go (the probe),
    # and the first answer closes it. Moments are epoch seconds of the collector's clock.

    def record_failure(self) -> float:
        """Count a transient failure now. Returns when the next probe may go if the breaker
        is (now) open, else 0."""
        now = _clock_epoch()
        return self._record_failure(now, now + self.budget.breaker_probe_seconds)

    def record_success(self) -> bool:
        """NEIS answered: forget the failures and close the breaker; True if it was open."""
        raise NotImplementedError  # pragma: no cover - abstract

    def probe_at(self) -> float:
        """While the breaker is open, when the next probe may go; 0 while it is closed."""
        raise NotImplementedError  # pragma: no cover - abstract

    def allow(self) -> float:
        """0 when a request may go now: the breaker is closed, or it is open and this caller
        takes the probe that is due (the next one moves a probe interval on). Otherwise, when
        the next probe may go."""
        now = _clock_epoch()
        return self._allow(now, now + self.budget.breaker_probe_seconds)

    def _record_failure(self, now: float, probe: float) -> float:  # pragma: no cover
        raise NotImplementedError

    def _allow(self, now: float, later: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


# KEYS: leases zset, tat key, the day's request counter, freed list. ARGV: lease id, max
# concurrency, interval (s), lease seconds, counter keep seconds. Returns minus the request's
# number on the day when the lease was taken; else the seconds to wait, prefixed with 'full '
# when every slot is taken (then until the first lease expires). Answers are text (Lua floats).
# The freed list holds at most one token per free slot, so a waiter that finds every slot
# taken finds it empty and blocks until a release pushes one (``_RELEASE``).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= limit then
  redis.call('DEL', KEYS[4])
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return 'full ' .. tostring(tonumber(first[2]) - now)
end
local interval = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
if tat - now > 0 then
  return tostring(tat - now)
end
redis.call('SET', KEYS[2], tostring(tat + interval), 'EX', 60)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4])) + 60)
if held + 1 >= limit then
  redis.call('DEL', KEYS[4])
else
  redis.call('LTRIM', KEYS[4], 0, limit - held - 2)
end
local n = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[5]))
return tostring(-n)
"""

# KEYS: leases zset, freed list. ARGV: lease id, max concurrency, lease seconds. Frees the
# lease and, if it was held, pushes a token that wakes one waiter (its BLPOP in
# ``RedisBudget._attempt_when_freed``); the list keeps no more tokens than free slots.
_RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) + tonumber(t[2]) / 1000000)
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
if free <= 0 then
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, free - 1)
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[3])) + 60)
return 1
"""

# KEYS: the day's cap key. ARGV: a count, keep seconds. Keeps the lowest; returns it.
_CAP = """
local cap = redis.call('GET', KEYS[1])
if cap and tonumber(cap) <= tonumber(ARGV[1]) then return cap end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return ARGV[1]
"""


# KEYS: failures zset, breaker key. ARGV: now, failure id, threshold, window, next probe,
# keep seconds. Returns the breaker's next probe moment (text), or '0' while it stays closed.
_FAILURE = """
local open = redis.call('GET', KEYS[2])
if open then return open end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[5], 'EX', tonumber(ARGV[6]))
  redis.call('DEL', KEYS[1])
  return ARGV[5]
end
return '0'
"""

# KEYS: breaker key. ARGV: now, the probe after this one, keep seconds. Returns '0' when a
# request may go (closed, or this caller takes the due probe), else the next probe moment.
_ALLOW = """
local at = redis.call('GET', KEYS[1])
if not at then return '0' end
if tonumber(at) > tonumber(ARGV[1]) then return at end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return '0'
"""


# KEYS: rejected, quota block, breaker, failures. The first three's values, and whether any
# failure is on record: what an attempt asks before and after its requests, read at once.
_LOOK = """
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3]),
        redis.call('EXISTS', KEYS[4])}
"""


class RedisBudget(RequestBudget):
    def __init__(self, api_key: str, budget: Budget, url: str):
        super().__init__(api_key, budget)
        self.redis = _redis(url)
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._release_script = self.redis.register_script(_RELEASE)
        self._cap = self.redis.register_script(_CAP)
        self._failure = self.redis.register_script(_FAILURE)
        self._allow_script = self.redis.register_script(_ALLOW)
        self._look = self.redis.register_script(_LOOK)
        prefix = f"neis:budget:{self.key}"
        self._leases, self._tat, self._block, self._rejected = (
            f"{prefix}:leases",
            f"{prefix}:tat",
            f"{prefix}:quota",
            f"{prefix}:rejected",
        )
        self._failures, self._breaker = f"{prefix}:failures", f"{prefix}:breaker"
        self._freed = f"{prefix}:freed"
        self._prefix = prefix
        # With a socket_timeout in the URL, redis-py stops waiting for a reply after it: a
        # block is kept to half of it, goes alone (a block pipelined with the attempt could
        # time out after Redis ran the attempt, leaving a lease nobody holds), and a block
        # Redis ends late only ends the wait. Too short a timeout to block in means sleeping
        # between attempts instead.
        timeout = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
        self._socket_timeout = float(timeout) if timeout else None
        self._longest_block = min(MAX_BLOCK_SECONDS, (self._socket_timeout or math.inf) / 2)
        self._seen: dict[str, bytes | None] | None = None  # what ``look`` read

    def look(self) -> None:
        """Read the key's refusal, quota block and breaker, and whether failures are on
        record, in one round trip. Until this budget changes one of them (which forgets what
        was read), ``rejection``, ``blocked_until``, ``probe_at`` and ``allow`` answer from
        it: a breaker found closed lets a request go without asking again, and a success
        with no failure to forget writes nothing (``record_success``). What other processes
        change meanwhile is seen at the next look, as a question asked a moment later would
        have seen it."""
        names = ("rejected", "block", "breaker", "failures")
        keys = [self._rejected, self._block, self._breaker, self._failures]
        self._seen = dict(zip(names, self._look(keys=keys), strict=True))

    def _get(self, name: str, key: str) -> bytes | None:
        return self.redis.get(key) if self._seen is None else self._seen[name]

    def _acquire_keys(self, day: datetime.date) -> list[str]:
        return [self._leases, self._tat, f"{self._prefix}:used:{day.isoformat()}", self._freed]

    def _acquire_args(self, lease: str) -> list:
        interval = 1.0 / self.budget.max_rps
        return [lease, self.budget.max_concurrency, interval, LEASE_SECONDS, _KEEP_SECONDS]

    def _attempt(self, lease: str) -> tuple[float, bool]:
        day = self.quota_day()
        answer = self._acquire(keys=self._acquire_keys(day), args=self._acquire_args(lease))
        return self._answer(day, answer)

    def _attempt_when_freed(self, lease: str, seconds: float) -> tuple[float, bool]:
        # The block and the attempt after it go in one pipeline: Redis runs the attempt as
        # soon as the block ends, without a round trip back to this process between them.
        seconds = min(seconds, self._longest_block)
        if seconds < _SHORTEST_BLOCK:
            time.sleep(_SHORTEST_BLOCK)
            return self._attempt(lease)
        day = self.quota_day()
        if self._socket_timeout or (
            # The quota day may end during the block: count the request on the day it starts.
            self.quota_day(clock.now() + datetime.timedelta(seconds=seconds)) != day
        ):
            return super()._attempt_when_freed(lease, seconds)
        keys, args = self._acquire_keys(day), self._acquire_args(lease)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.blpop([self._freed], timeout=_block_timeout(seconds))
            pipe.evalsha(self._acquire.sha, len(keys), *keys, *args)
            blocked, answer = pipe.execute(raise_on_error=False)
        if isinstance(blocked, Exception):  # refused (an ACL, an old server): wait, not spin
            time.sleep(_SHORTEST_BLOCK)
        if isinstance(answer, Exception):  # the script is gone (SCRIPT FLUSH): load it again
            return self._attempt(lease)
        return self._answer(day, answer)

    def _await_release(self, seconds: float) -> None:
        # Reached from ``_attempt_when_freed`` only, with ``seconds`` already bounded by
        # ``_longest_block`` and long enough to block.
        try:
            self.redis.blpop([self._freed], timeout=_block_timeout(seconds))
        except _redis_timeout():
            # Redis ended the block later than the client waits (its timers are coarse):
            # the wait is over all the same. A wake-up it took meanwhile is lost, which
            # costs a waiter one bounded block at most.
            pass

    def _answer(self, day: datetime.date, answer: bytes) -> tuple[float, bool]:
        """What ``_attempt`` returns for the acquire script's ``answer``."""
        found = answer.split(b" ")
        if len(found) == 2:
            # A lease due to expire this very moment still answers 'full': wait a hair.
            return max(float(found[1]), 0.001), True
        found = float(found[0])
        if found > 0:
            return found, False
        self._started(day, int(-found))
        return 0.0, False

    def _note_cap(self, day: str, cap: int) -> int:
        return int(self._cap(keys=[f"{self._prefix}:cap:{day}"], args=[cap, _KEEP_SECONDS]))

    def usage(self, days: Iterable[datetime.date]) -> dict[datetime.date, Usage]:
        days = list(days)
        names = [f"{self._prefix}:{kind}:{day}" for day in days for kind in ("used", "cap")]
        values = self.redis.mget(names) if names else []
        found = {}
        for index, day in enumerate(days):
            used, cap = values[2 * index], values[2 * index + 1]
            if used is not None or cap is not None:
                found[day] = Usage(int(used or 0), int(cap) if cap is not None else None)
        return found

    def _release(self, lease: str) -> None:
        args = [lease, self.budget.max_concurrency, LEASE_SECONDS]
        self._release_script(keys=[self._leases, self._freed], args=args)

    def block_until(self, until_epoch: float) -> None:
        ttl = max(1, int(until_epoch - _clock_epoch()) + 1)
        self._seen = None
        self.redis.set(self._block, repr(until_epoch), ex=ttl)

    def blocked_until(self) -> float:
        value = self._get("block", self._block)
        until = float(value) if value else 0.0
        return until if until > _clock_epoch() else 0.0

    def clear_block(self) -> None:
        self._seen = None
        self.redis.delete(self._block)

    def _set_rejection(self, value: str | None) -> None:
        self._seen = None
        if value is None:
            self.redis.delete(self._rejected)
        else:
            self.redis.set(self._rejected, value, ex=REJECTION_SECONDS)

    def _get_rejection(self) -> str | None:
        value = self._get("rejected", self._rejected)
        return value.decode() if value else None

    def _record_failure(self, now: float, probe: float) -> float:
        self._seen = None
        args = [repr(now), uuid.uuid4().hex, self.budget.breaker_failures,
                BREAKER_WINDOW_SECONDS, repr(probe), BREAKER_KEEP_SECONDS]  # fmt: skip
        return float(self._failure(keys=[self._failures, self._breaker], args=args))

    def record_success(self) -> bool:
        seen, self._seen = self._seen, None
        if seen is not None and seen["breaker"] is None and not seen["failures"]:
            # Closed, and no failure on record when looked at: nothing to forget (one round
            # trip a unit). A failure recorded since came from a request that ran beside this
            # one; it counts as if after this success, as its order is anyone's anyway.
            return False
        with self.redis.pipeline() as pipe:
            closed, _ = pipe.delete(self._breaker).delete(self._failures).execute()
        return bool(closed)

    def probe_at(self) -> float:
        value = self._get("breaker", self._breaker)
        return float(value) if value else 0.0

    def _allow(self, now: float, later: float) -> float:
        if self._seen is not None and self._seen["breaker"] is None:
            return 0.0  # closed when looked at: no probe to take
        self._seen = None  # the script may take the probe (and move the next one)
        args = [repr(now), repr(later), BREAKER_KEEP_SECONDS]
        return float(self._allow_script(keys=[self._breaker], args=args))


class FileBudget(RequestBudget):
    """The same budget in a JSON file guarded by ``flock``: every process on one machine.

    A waiter for a free slot blocks on a named pipe beside the file, which each release writes
    a byte to. The waiter opens the pipe while it holds the lock and sees every slot taken, so
    a release after that (which frees its lease under the lock and writes after) finds it
    listening; it keeps the pipe open until it has a slot. The pipe's bytes vanish when the
    last waiter closes it, so no stale wake-up outlives the waiters.
    """

    def __init__(self, api_key: str, budget: Budget, folder: Path):
        super().__init__(api_key, budget)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"neis-budget-{self.key}.json"
        self.path.touch(exist_ok=True)
        self.wake_path: Path | None = folder / f"neis-budget-{self.key}.wake"
        try:
            os.mkfifo(self.wake_path, 0o600)
        except FileExistsError:
            pass
        except OSError:  # a filesystem without named pipes: waiters sleep between attempts
            self.wake_path = None

    @contextlib.contextmanager
    def _state(self, durable: bool = True) -> Iterator[dict]:
        """The state, locked while the block runs, written back after it; synced to disk
        unless ``durable`` is False (the next durable write syncs it with its own)."""
        with open(self.path, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            text = handle.read()
            state = json.loads(text) if text.strip() else {}
            state.setdefault("leases", {})
            yield state
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(state))
            handle.flush()
            if durable:
                os.fsync(handle.fileno())

    def _attempt(self, lease: str) -> tuple[float, bool]:
        now = time.time()
        day = self.quota_day()
        with self._state() as state:
            leases = {k: v for k, v in state["leases"].items() if v > now}
            state["leases"] = leases
            if len(leases) >= self.budget.max_concurrency:
                self._listen()
                self._forget_wake_ups()
                return max(min(leases.values()) - now, 0.001), True
            self._stop_listening()
            tat = max(state.get("tat", 0.0), now)
            if tat > now:
                return tat - now, False
            state["tat"] = tat + 1.0 / self.budget.max_rps
            leases[lease] = now + LEASE_SECONDS
            name, used = day.isoformat(), state.setdefault("used", {})
            if name not in used:  # a new quota day: drop the days past keeping
                state["used"] = used = _recent(used, day)
            used[name] = used.get(name, 0) + 1
            self._started(day, used[name])
            return 0.0, False

    def _listen(self) -> None:
        """Open this thread's end of the wake-up pipe, if not open yet. Read and write, so
        that the pipe never reads as closed (end of file) when a releaser closes its end."""
        if getattr(self._local, "wake", None) is None and self.wake_path is not None:
            try:
                self._local.wake = os.open(self.wake_path, os.O_RDWR | os.O_NONBLOCK)
            except OSError:  # the pipe gone or not ours to read: sleep between attempts
                self._local.wake = None

    def _forget_wake_ups(self) -> None:
        """Empty the pipe: under the lock, with every slot taken, a byte in it was written
        for a slot taken since, and would only wake a waiter for nothing."""
        wake = getattr(self._local, "wake", None)
        while wake is not None:
            try:
                if not os.read(wake, 4096):
                    return
            except BlockingIOError:
                return

    def _stop_listening(self) -> None:
        wake = getattr(self._local, "wake", None)
        if wake is not None:
            self._local.wake = None
            os.close(wake)

    def _await_release(self, seconds: float) -> None:
        wake = getattr(self._local, "wake", None)
        if wake is None:
            time.sleep(min(seconds, _SHORTEST_BLOCK))
            return
        poller = select.poll()
        poller.register(wake, select.POLLIN)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and poller.poll(left * 1000):
            try:
                os.read(wake, 1)
                return
            except BlockingIOError:
                continue  # another waiter took this byte: keep waiting for the next

    def _note_cap(self, day: str, cap: int) -> int:
        with self._state() as state:
            caps = state.setdefault("caps", {})
            if day not in caps or caps[day] > cap:
                caps[day] = cap
            state["caps"] = _recent(caps, datetime.date.fromisoformat(day))
            return caps[day]

    def usage(self, days: Iterable[datetime.date]) -> dict[datetime.date, Usage]:
        with self._state() as state:
            used, caps = state.get("used", {}), state.get("caps", {})
        found = {}
        for day in days:
            name = day.isoformat()
            if name in used or name in caps:
                found[day] = Usage(used.get(name, 0), caps.get(name))
        return found

    def _release(self, lease: str) -> None:
        # Not synced: a release between two syncs is lost only with the machine, and with it
        # every holder; the lease it leaves then expires. The sync would delay the waiter.
        with self._state(durable=False) as state:
            held = state["leases"].pop(lease, None) is not None
        # Wake one waiter. Nobody listening (ENXIO) or a pipe already full of wake-ups
        # (EAGAIN) leaves nothing to do.
        if not held or self.wake_path is None:
            return
        try:
            wake = os.open(self.wake_path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            os.write(wake, b"x")
        except BlockingIOError:
            pass
        finally:
            os.close(wake)

    def block_until(self, until_epoch: float) -> None:
        with self._state() as state:
            state["quota_until"] = until_epoch

    def blocked_until(self) -> float:
        with self._state() as state:
            until = state.get("quota_until", 0.0)
        return until if until > _clock_epoch() else 0.0

    def clear_block(self) -> None:
        with self._state() as state:
            state.pop("quota_until", None)

    def _set_rejection(self, value: str | None) -> None:
        with self._state() as state:
            if value is None:
                state.pop("rejected", None)
            else:
                state["rejected"] = {"value": value, "until": time.time() + REJECTION_SECONDS}

    def _get_rejection(self) -> str | None:
        with self._state() as state:
            found = state.get("rejected")
        return found["value"] if found and found["until"] > time.time() else None

    def _record_failure(self, now: float, probe: float) -> float:
        with self._state() as state:
            if state.get("breaker"):
                return state["breaker"]
            recent = [t for t in state.get("failures", []) if t > now - BREAKER_WINDOW_SECONDS]
            recent.append(now)
            if len(recent) >= self.budget.breaker_failures:
                state.pop("failures", None)
                state["breaker"] = probe
                return probe
            state["failures"] = recent
            return 0.0

    def record_success(self) -> bool:
        with self._state() as state:
            state.pop("failures", None)
            return state.pop("breaker", None) is not None

    def probe_at(self) -> float:
        with self._state() as state:
            return state.get("breaker", 0.0)

    def _allow(self, now: float, later: float) -> float:
        with self._state() as state:
            at = state.get("breaker")
            if not at:
                return 0.0
            if at > now:
                return at
            state["breaker"] = later
            return 0.0


# A wait shorter than this sleeps instead of blocking (and a refused block sleeps as long).
_SHORTEST_BLOCK = 0.005


def _block_timeout(seconds: float) -> float:
    """BLPOP's timeout for a block of ``seconds``: 0 would block for ever, and a millisecond
    is Redis's finest."""
    return max(round(seconds, 3), 0.001)


def _clock_epoch() -> float:
    return clock.now().timestamp()


_KEEP_SECONDS = USAGE_KEEP_DAYS * 86400


def _recent(by_day: dict[str, int], today: datetime.date) -> dict[str, int]:
    """``by_day`` without the days older than ``USAGE_KEEP_DAYS`` before ``today``."""
    oldest = (today - datetime.timedelta(days=USAGE_KEEP_DAYS)).isoformat()
    return {day: n for day, n in by_day.items() if day >= oldest}


_clients: dict[str, object] = {}


def _redis_timeout() -> type[Exception]:
    """redis-py's TimeoutError (imported when a Redis budget is in use, as ``_redis`` does)."""
    import redis

    return redis.exceptions.TimeoutError


def _redis(url: str):
    """One Redis client (and connection pool) per URL and process: a budget is made per unit
    of work and per key, and each making its own pool would open a connection each time.
    redis-py's pool notices a fork and reconnects in the child."""
    import redis

    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client


def budget_from_settings(api_key: str | None = None) -> RequestBudget:
    """The shared budget for the configured key, in Redis when there is one."""
    from django.conf import settings

    key = settings.NEIS_API_KEY if api_key is None else api_key
    budget = Budget(
        settings.NEIS_MAX_RPS,
        settings.NEIS_MAX_CONCURRENCY,
        breaker_failures=settings.NEIS_BREAKER_FAILURES,
        breaker_probe_seconds=settings.NEIS_BREAKER_PROBE_SECONDS,
        quota_reset_hour=settings.NEIS_QUOTA_RESET_HOUR,
    )
    if settings.NEIS_LIMITER_URL:
        return RedisBudget(key, budget, settings.NEIS_LIMITER_URL)
    return FileBudget(key, budget, Path(settings.VAR_DIR) / "budget")


def api_keys() -> list[str]:
    """The configured NEIS keys, in their configured order; ``[""]`` (keyless) when none.

    ``NEIS_API_KEYS`` holds them all and ``NEIS_API_KEY`` the first. Where only
    ``NEIS_API_KEY`` was changed after loading (a test, the demo pointing at its simulator),
    that one key is what is configured.
    """
    from django.conf import settings

    keys = list(getattr(settings, "NEIS_API_KEYS", ()) or ())
    if settings.NEIS_API_KEY not in keys:
        keys = [settings.NEIS_API_KEY]
    return keys or [""]


class KeyPool:
    """The budgets of every configured key, and which key a unit of work goes with.

    A key is *usable* unless NEIS refused it (ERROR-290/INFO-300, ``reject``) or its daily
    quota is spent (ERROR-337, ``block_until``). ``pick`` chooses, among the usable keys, the
    one with the most requests left today: its cap (``caps`` by key id: the planned cap,
    observed or configured; ``default_cap`` otherwise) less what it spent. So work spreads
    across keys, and a key whose quota ran out stops while the others go on. Reads the shared
    store once per key; writes nothing.
    """

    def __init__(
        self,
        budgets: Iterable[RequestBudget],
        *,
        caps: dict[str, int] | None = None,
        default_cap: int = 0,
    ):
        self.budgets = list(budgets)
        if not self.budgets:
            raise ValueError("a key pool needs at least one key")
        self.caps = caps or {}
        self.default_cap = default_cap
        self.looked = False  # ``look`` was called: this pool's budgets answer from a look

    def __iter__(self) -> Iterator[RequestBudget]:
        return iter(self.budgets)

    def __len__(self) -> int:
        return len(self.budgets)

    def look(self) -> None:
        """``look`` at every key: for a pool made for one attempt (``quota.key_pool``)."""
        self.looked = True
        for budget in self.budgets:
            budget.look()

    def look_again(self) -> None:
        """Look again if the pool looked before: before choosing another key mid-attempt,
        whose state the first look may have read seconds ago."""
        if self.looked:
            self.look()

    def usable(self) -> list[RequestBudget]:
        return [b for b in self.budgets if not b.rejection() and not b.blocked_until()]

    def remaining(self, budget: RequestBudget) -> int:
        """Requests ``budget``'s key has left today by its planned cap (may be negative)."""
        return self.caps.get(budget.key, self.default_cap) - budget.used_today()

    def pick(self, exclude: Iterable[str] = ()) -> RequestBudget | None:
        """The usable key (not among the key ids ``exclude``) with the most requests left
        today, keys whose breaker is closed first; None when no key is usable."""
        skip = set(exclude)
        usable = [b for b in self.usable() if b.key not in skip]
        if not usable:
            return None
        if len(usable) == 1:
            return usable[0]
        return max(usable, key=lambda b: (not b.probe_at(), self.remaining(b)))

    def rejection(self) -> tuple[str, str] | None:
        """NEIS's refusal when it refused every key (the first key's words), else None."""
        found = [b.rejection() for b in self.budgets]
        return found[0] if all(found) else None

    def blocked_until(self) -> float:
        """When the first spent quota resets if no key is usable for the quota (refused keys
        aside); 0 while some key may be used, or when every key was refused."""
        untils = []
        for budget in self.budgets:
            if budget.rejection():
                continue
            until = budget.blocked_until()
            if not until:
                return 0.0
            untils.append(until)
        return min(untils) if untils else 0.0

    def clear_block(self, now: float | None = None) -> None:
        """Forget the quota blocks whose reset has passed, by the clock or by ``now`` (epoch
        seconds) when the caller is told the time (``pipeline.resume_deferred(now=...)``)."""
        for budget in self.budgets:
            until = budget.blocked_until()
            if not until or (now is not None and until <= now):
                budget.clear_block()

    def probe_at(self) -> float:
        """0 when some usable key's breaker is closed, else the soonest probe."""
        moments = []
        for budget in self.usable() or self.budgets:
            at = budget.probe_at()
            if not at:
                return 0.0
            moments.append(at)
        return min(moments)


def pool_from_settings(caps: dict[str, int] | None = None, default_cap: int = 0) -> KeyPool:
    """The budgets of every configured key (``api_keys``)."""
    return KeyPool(
        [budget_from_settings(key) for key in api_keys()], caps=caps, default_cap=default_cap
    )


def as_pool(budget: RequestBudget | KeyPool) -> KeyPool:
    """A pool of ``budget`` alone, or the pool given."""
    return budget if isinstance(budget, KeyPool) else KeyPool([budget])
