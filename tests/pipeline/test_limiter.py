"""The shared request budget holds across threads and processes, in Redis and in a file."""

import datetime
import multiprocessing
import threading
import time
import uuid

import pytest
import redis

from collector import clock, limiter
from tests.processes import REDIS_URL


@pytest.fixture(params=["redis", "file"])
def make_budget(request, tmp_path):
    key = f"test-{uuid.uuid4().hex}"

    def make(max_rps=1000.0, max_concurrency=2, **breaker):
        budget = limiter.Budget(max_rps, max_concurrency, **breaker)
        if request.param == "redis":
            return limiter.RedisBudget(key, budget, REDIS_URL)
        return limiter.FileBudget(key, budget, tmp_path)

    yield make
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        for name in client.scan_iter(f"neis:budget:{limiter.key_id(key)}:*"):
            client.delete(name)


def _hammer(budget, calls, state, lock):
    for _ in range(calls):
        with budget.slot():
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            time.sleep(0.01)
            with lock:
                state["now"] -= 1


def _hammered(budget, threads: int, requests: int) -> int:
    """The most requests ``threads`` threads of ``requests`` each ever had in flight."""
    state, lock = {"now": 0, "max": 0}, threading.Lock()
    workers = [
        threading.Thread(target=_hammer, args=(budget, requests, state, lock))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return state["max"]


def test_it_never_exceeds_the_concurrency_budget(make_budget):
    assert _hammered(make_budget(max_concurrency=3), threads=8, requests=10) == 3


def test_it_spaces_request_starts_by_the_rate(make_budget):
    budget = make_budget(max_rps=20.0, max_concurrency=10)
    started = time.monotonic()
    for _ in range(11):
        with budget.slot():
            pass
    # Eleven starts at 20/s need at least ten intervals of 50 ms.
    assert time.monotonic() - started >= 0.45


def test_it_holds_the_concurrency_budget_under_heavy_contention(make_budget):
    budget = make_budget(max_concurrency=4)
    assert _hammered(budget, threads=24, requests=5) == 4
    assert budget.used_today() == 24 * 5  # every request counted once


def _count_attempts(budget, monkeypatch) -> list[float]:
    """Record the moment of each of ``budget``'s tries to take a slot: an ``_attempt``, or
    an ``_attempt_when_freed`` (which may call ``_attempt`` once itself)."""
    moments, attempt, when_freed = [], budget._attempt, budget._attempt_when_freed
    inside = threading.local()

    def counted(lease):
        if not getattr(inside, "yes", False):
            moments.append(time.monotonic())
        return attempt(lease)

    def counted_when_freed(lease, seconds):
        moments.append(time.monotonic())
        inside.yes = True
        try:
            return when_freed(lease, seconds)
        finally:
            inside.yes = False

    monkeypatch.setattr(budget, "_attempt", counted)
    monkeypatch.setattr(budget, "_attempt_when_freed", counted_when_freed)
    return moments


def _wait_for_slot(budget, started: list[float]) -> threading.Thread:
    def wait():
        with budget.slot():
            started.append(time.monotonic())

    thread = threading.Thread(target=wait)
    thread.start()
    return thread


def test_a_waiter_for_a_full_budget_blocks_until_a_release_wakes_it(make_budget, monkeypatch):
    """A request that finds every slot taken does not poll: it tries once, blocks, and a
    release wakes it at once. Slots freed while nobody waited leave no stale wake-up behind."""
    budget = make_budget(max_concurrency=2)
    for _ in range(5):  # slots freed with nobody waiting
        with budget.slot():
            pass
    holders = [uuid.uuid4().hex for _ in range(2)]
    for lease in holders:
        while budget._try_acquire(lease) > 0:  # the rate: a millisecond apart
            time.sleep(0.001)
    waiter = make_budget(max_concurrency=2)  # another process
    attempts, started = _count_attempts(waiter, monkeypatch), []
    thread = _wait_for_slot(waiter, started)
    time.sleep(0.3)
    assert not started and len(attempts) == 2  # one look, then blocked in the second
    released = time.monotonic()
    budget._release(holders[0])
    thread.join(5)
    assert started and started[0] - released < 0.1  # woken, not timed out (0.5 s)
    assert len(attempts) == 2


def test_a_waiter_never_blocks_past_the_redis_clients_socket_timeout():
    """A socket_timeout in the limiter's URL bounds each block: past it redis-py would stop
    waiting for the reply and fail the request instead of letting it wait its turn."""
    key = f"test-{uuid.uuid4().hex}"
    url = f"{REDIS_URL}?socket_timeout=0.2"
    budget = limiter.RedisBudget(key, limiter.Budget(1000.0, 1), url)
    try:
        assert budget._try_acquire("holder") == 0
        started = []
        thread = _wait_for_slot(limiter.RedisBudget(key, limiter.Budget(1000.0, 1), url), started)
        time.sleep(0.6)  # three socket timeouts
        assert not started and thread.is_alive()
        budget._release("holder")
        thread.join(5)
        assert started
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for name in client.scan_iter(f"neis:budget:{limiter.key_id(key)}:*"):
            client.delete(name)


def test_a_waiter_that_left_by_an_exception_leaves_no_wake_ups_behind(tmp_path, monkeypatch):
    """The file budget: a waiter interrupted (a time limit) closes its end of the pipe, and
    bytes written for slots taken since are dropped, so a later waiter blocks instead of
    waking for nothing at every stale byte."""
    budget = limiter.FileBudget("k", limiter.Budget(1000.0, 1), tmp_path)
    assert budget._try_acquire("holder") == 0

    def interrupted(seconds):
        raise TimeoutError("soft time limit")

    with monkeypatch.context() as patch:
        patch.setattr(budget, "_await_release", interrupted)
        with pytest.raises(TimeoutError), budget.slot():
            pass
    assert getattr(budget._local, "wake", None) is None
    budget._release("holder")
    for _ in range(50):  # slots freed with nobody waiting
        with budget.slot():
            pass
    while budget._try_acquire("holder") > 0:  # the rate: a millisecond apart
        time.sleep(0.001)
    waiter = limiter.FileBudget("k", limiter.Budget(1000.0, 1), tmp_path)
    attempts, started = _count_attempts(waiter, monkeypatch), []
    thread = _wait_for_slot(waiter, started)
    time.sleep(0.3)
    assert not started and len(attempts) <= 3
    budget._release("holder")
    thread.join(5)
    assert started


def test_a_lost_wake_up_only_delays_a_waiter(make_budget, monkeypatch):
    """A slot freed without a wake-up (its lease expired, or the waiter woken died) is found
    when the waiter's bounded block ends."""
    monkeypatch.setattr(limiter, "MAX_BLOCK_SECONDS", 0.2)
    budget = make_budget(max_concurrency=1)
    assert budget._try_acquire("holder") == 0
    started = []
    thread = _wait_for_slot(budget, started)
    time.sleep(0.05)
    # Free the lease behind the budget's back: nobody is woken.
    if isinstance(budget, limiter.RedisBudget):
        budget.redis.zrem(budget._leases, "holder")
    else:
        with budget._state() as state:
            state["leases"].clear()
    freed = time.monotonic()
    thread.join(5)
    assert started and started[0] - freed < 0.2 + 0.15


def test_a_waiter_takes_the_slot_of_a_vanished_holder_when_its_lease_expires(
    make_budget, monkeypatch
):
    monkeypatch.setattr(limiter, "LEASE_SECONDS", 0.3)
    monkeypatch.setattr(limiter, "MAX_BLOCK_SECONDS", 10.0)
    budget = make_budget(max_concurrency=1)
    began = time.monotonic()
    assert budget._try_acquire("dead-worker") == 0  # never released
    started = []
    _wait_for_slot(budget, started).join(5)
    # The waiter blocks until the lease's expiry, not for MAX_BLOCK_SECONDS.
    assert started and 0.28 < started[0] - began < 0.3 + 0.2


def _child(kind, key, folder, calls, queue):
    budget = limiter.Budget(1000.0, 2)
    if kind == "redis":
        shared = limiter.RedisBudget(key, budget, REDIS_URL)
    else:
        shared = limiter.FileBudget(key, budget, folder)
    for _ in range(calls):
        with shared.slot():
            queue.put(("in", time.time()))
            time.sleep(0.02)
            queue.put(("out", time.time()))


@pytest.mark.parametrize("kind", ["redis", "file"])
def test_it_holds_across_processes(kind, tmp_path):
    key = f"test-{uuid.uuid4().hex}"
    queue = multiprocessing.Queue()
    children = [
        multiprocessing.Process(target=_child, args=(kind, key, tmp_path, 5, queue))
        for _ in range(4)
    ]
    for child in children:
        child.start()
    events = [queue.get(timeout=30) for _ in range(40)]
    for child in children:
        child.join(10)
    in_flight = peak = 0
    for kind_, _ in sorted(events, key=lambda event: (event[1], event[0] == "in")):
        in_flight += 1 if kind_ == "in" else -1
        peak = max(peak, in_flight)
    assert peak <= 2


def test_it_frees_the_slot_of_a_vanished_holder(make_budget, monkeypatch):
    monkeypatch.setattr(limiter, "LEASE_SECONDS", 0.3)
    budget = make_budget(max_concurrency=1)
    assert budget._try_acquire("dead-worker") == 0  # never released
    assert budget._try_acquire("other") > 0
    time.sleep(0.35)
    assert budget._try_acquire("other") == 0


def test_it_remembers_a_quota_block_until_it_expires(make_budget):
    budget = make_budget()
    assert budget.blocked_until() == 0
    # A block is a moment of the collector's clock (the quota reset NEIS's error implies), not
    # of the machine's: with the clock pinned days away from today it must hold all the same.
    now = clock.now().timestamp()
    assert abs(now - time.time()) > 3600
    until = now + 60
    budget.block_until(until)
    assert budget.blocked_until() == pytest.approx(until)
    budget.clear_block()
    assert budget.blocked_until() == 0
    budget.block_until(now - 1)
    assert budget.blocked_until() == 0


def _at(seconds: float):
    return clock.pinned(clock.now() + datetime.timedelta(seconds=seconds), frozen=True)


def test_it_opens_the_breaker_after_failures_with_no_answer_between(make_budget):
    budget = make_budget(breaker_failures=3, breaker_probe_seconds=30)
    with _at(0):
        assert budget.record_failure() == 0
        assert budget.record_failure() == 0
        assert budget.record_success() is False  # an answer: the count starts again
        assert [budget.record_failure() for _ in range(2)] == [0, 0]
        probe = budget.record_failure()
        assert probe == pytest.approx(clock.now().timestamp() + 30)
        assert budget.probe_at() == probe
        assert budget.allow() == probe  # nobody goes until the probe is due


def test_it_forgets_failures_older_than_a_minute(make_budget):
    budget = make_budget(breaker_failures=3)
    with _at(0):
        budget.record_failure()
        budget.record_failure()
    with _at(61):
        assert budget.record_failure() == 0
        assert budget.probe_at() == 0


def test_it_lets_one_probe_through_per_interval_and_closes_on_an_answer(make_budget):
    budget = make_budget(breaker_failures=1, breaker_probe_seconds=60)
    with _at(0):
        probe = budget.record_failure()
    with _at(59):
        assert budget.allow() == probe
    with _at(61):
        assert budget.allow() == 0  # this caller is the probe
        assert budget.allow() == pytest.approx(clock.now().timestamp() + 60)  # the others wait
        assert budget.record_failure() > 0  # the probe failed: still open
    with _at(122):
        assert budget.allow() == 0
        assert budget.record_success() is True
        assert (budget.probe_at(), budget.allow()) == (0, 0)


def test_a_look_answers_for_one_attempt_and_its_own_changes_forget_it(make_budget):
    """``look`` reads a key's refusal, block and breaker at once (Redis); what the budget then
    changes itself is read again, so it never answers from a state it has changed."""
    budget = make_budget(breaker_failures=1, breaker_probe_seconds=60)
    other = make_budget(breaker_failures=1, breaker_probe_seconds=60)  # another process
    with _at(0):
        budget.look()
        other.block_until(clock.now().timestamp() + 60)
        other.reject("ERROR-290", "bad key")
        seen = isinstance(budget, limiter.RedisBudget)  # a file budget reads at each question
        assert (budget.blocked_until() == 0, budget.rejection() is None) == (seen, seen)
        assert budget.allow() == 0  # closed when looked at
        budget.look()  # the next attempt sees it all
        assert budget.blocked_until() > 0 and budget.rejection()[0] == "ERROR-290"
        budget.block_until(clock.now().timestamp() + 30)  # its own change: read again
        assert budget.blocked_until() == pytest.approx(clock.now().timestamp() + 30, abs=1)
        budget.look()
        budget.clear_rejection()
        assert budget.rejection() is None
        budget.look()
        budget.clear_block()
        assert budget.blocked_until() == 0
        budget.look()
        probe = budget.record_failure()  # opens the breaker; the look is forgotten
        assert probe > 0 and budget.allow() == probe
    with _at(61):
        budget.look()
        assert budget.allow() == 0  # open when looked at: the script takes the due probe
        assert other.allow() == pytest.approx(clock.now().timestamp() + 60, abs=1)


def test_a_success_forgets_the_failures_it_found_and_writes_nothing_when_none(make_budget):
    """After a look that found the breaker closed and no failure on record, a success writes
    nothing (Redis: one round trip a unit less); a failure on record when looked at, or no
    look, and the success forgets the failures as before."""
    budget = make_budget(breaker_failures=2, breaker_probe_seconds=60)
    other = make_budget(breaker_failures=2, breaker_probe_seconds=60)  # another process
    with _at(0):
        budget.look()
        other.record_failure()  # a request beside this attempt's failed
        assert budget.record_success() is False
        if isinstance(budget, limiter.RedisBudget):  # it stays on record: one more opens
            assert other.record_failure() > 0
            assert budget.record_success() is True  # no look: read and forgotten
        budget.look()
        other.record_failure()
        budget.look()  # a failure on record when looked at: forgotten by the success
        assert budget.record_success() is False
        assert other.record_failure() == 0  # the count starts again


def test_it_counts_every_request_on_its_quota_day(make_budget):
    budget = make_budget()
    today = budget.quota_day()
    for _ in range(3):
        with budget.slot():
            pass
    assert budget.usage([today]) == {today: limiter.Usage(3, None)}
    assert budget.used_today() == 3
    # The next quota day starts at zero, and the past day keeps its count.
    with _at(86400):
        tomorrow = budget.quota_day()
        with budget.slot():
            pass
        assert budget.usage([today, tomorrow]) == {
            today: limiter.Usage(3, None),
            tomorrow: limiter.Usage(1, None),
        }


def test_the_quota_day_starts_at_the_reset_hour(make_budget):
    budget = make_budget(quota_reset_hour=6)
    moment = datetime.datetime(2026, 11, 21, 5, 59, tzinfo=clock.SEOUL)
    assert budget.quota_day(moment) == datetime.date(2026, 11, 20)
    assert budget.quota_day(moment + datetime.timedelta(minutes=1)) == datetime.date(2026, 11, 21)


def test_the_first_refusal_of_the_day_records_the_count_before_it_as_the_cap(make_budget):
    budget = make_budget()
    today = budget.quota_day()
    assert budget.note_quota_hit() is None  # nothing sent yet on this thread
    for _ in range(5):
        with budget.slot():
            pass
    assert budget.note_quota_hit() == 4  # the fifth request was refused: four went through
    with budget.slot():
        pass
    assert budget.note_quota_hit() == 4  # a later refusal keeps the lowest count
    assert budget.usage([today]) == {today: limiter.Usage(6, 4)}


def test_a_pool_picks_the_usable_key_with_the_most_left_today(make_budget, tmp_path):
    keys = [f"pool-{uuid.uuid4().hex}" for _ in range(3)]
    budgets = [limiter.FileBudget(key, limiter.Budget(1000.0, 4), tmp_path) for key in keys]
    first, second, third = budgets
    pool = limiter.KeyPool(budgets, caps={third.key: 2}, default_cap=10)
    for _ in range(3):
        with first.slot():
            pass
    assert pool.pick() is second  # 10 left; first has 7, third 2
    second.block_until(clock.now().timestamp() + 60)
    assert pool.pick() is first and pool.blocked_until() == 0
    first.reject("ERROR-290", "invalid key")
    assert pool.pick() is third and pool.rejection() is None
    assert pool.pick(exclude=[third.key]) is None
    third.block_until(clock.now().timestamp() + 30)
    assert pool.pick() is None
    assert pool.blocked_until() == pytest.approx(clock.now().timestamp() + 30, abs=1)
    third.reject("INFO-300", "blocked")
    second.reject("ERROR-290", "invalid key")
    assert pool.rejection() == ("ERROR-290", "invalid key")
    assert pool.blocked_until() == 0
