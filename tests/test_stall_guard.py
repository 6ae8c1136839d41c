"""``collector.broker.StallGuard`` decides on a real broker's queue depth (Redis), with its
clock driven by the test: when a worker counts as stalled, and every case that does not."""

from __future__ import annotations

import types
import uuid

import pytest
from celery.worker import state
from kombu import Connection, Queue

from collector import broker
from tests.processes import REDIS_URL


@pytest.fixture
def queue():
    name = f"stall-test-{uuid.uuid4().hex[:8]}"
    with Connection(REDIS_URL) as conn:
        yield conn.SimpleQueue(name), name
        conn.default_channel.queue_purge(name)


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(broker.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(broker, "_received", [0.0])
    return now


def _parent(name: str, url: str = REDIS_URL):
    """A consumer of queue ``name`` whose app reads the broker at ``url``."""
    consumer = types.SimpleNamespace(queues=[Queue(name)])
    reader = types.SimpleNamespace(connection_for_read=lambda: Connection(url))
    return types.SimpleNamespace(app=reader, task_consumer=consumer)


def _checks(guard, parent, clock, *seconds) -> None:
    for moment in seconds:
        clock[0] = 1000.0 + moment
        guard.check(parent, 60)


def test_it_reconnects_once_messages_have_waited_the_whole_delay_unread(queue, clock):
    simple, name = queue
    guard, parent = broker.StallGuard(types.SimpleNamespace()), _parent(name)
    _checks(guard, parent, clock, 0, 30)  # empty: nothing to take
    simple.put({"n": 1})
    _checks(guard, parent, clock, 45, 100)  # waiting since 45: not yet a minute
    assert broker.queue_depth(Connection(REDIS_URL), name) == 1
    with pytest.raises(broker.ConsumerStalled):
        _checks(guard, parent, clock, 105)


def test_a_message_taken_a_busy_worker_or_an_emptied_queue_starts_the_count_again(
    queue, clock, monkeypatch
):
    simple, name = queue
    guard, parent = broker.StallGuard(types.SimpleNamespace()), _parent(name)
    simple.put({"n": 1})
    _checks(guard, parent, clock, 0)
    broker._received[0] = 1030.0  # a task taken: the worker is consuming
    _checks(guard, parent, clock, 50, 100, 150)  # counting again from 50
    monkeypatch.setattr(state, "reserved_requests", {object()})  # at work
    _checks(guard, parent, clock, 200, 300)
    monkeypatch.setattr(state, "reserved_requests", set())
    _checks(guard, parent, clock, 310)
    simple.get(timeout=1).ack()  # taken elsewhere: empty
    _checks(guard, parent, clock, 320, 400)
    simple.put({"n": 2})
    _checks(guard, parent, clock, 410, 469)
    with pytest.raises(broker.ConsumerStalled):
        _checks(guard, parent, clock, 471)


def test_an_unknown_depth_never_counts_as_waiting(clock):
    parent = _parent("any", "redis://127.0.0.1:9/0")
    guard = broker.StallGuard(types.SimpleNamespace())
    _checks(guard, parent, clock, 0, 100, 200)  # the broker is away: the consumer's business
    assert guard.waiting_since is None
