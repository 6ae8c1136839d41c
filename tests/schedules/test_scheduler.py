"""The guarded scheduler in this process: ticks driven by hand, sends recorded instead of sent.

The real-process tests (test_beat.py) show the races on real beats, but only when the timing
happens to line up; these make the timing happen.
"""

from __future__ import annotations

import pytest

from proj.celery import app
from schedules.scheduler import GuardedDatabaseScheduler
from tests.schedules.overdue import overdue_ping

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingScheduler(GuardedDatabaseScheduler):
    """Records the entries it would send; never touches the broker."""

    def __init__(self, *args, **kwargs):
        self.sent: list[str] = []
        super().__init__(*args, **kwargs)

    @property
    def producer(self):
        return None

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        self.sent.append(entry.name)


@pytest.fixture
def overdue(db):
    return overdue_ping()


@pytest.fixture
def scheduler(tmp_path):
    beat = RecordingScheduler(app=app, max_interval=1, lazy=False)
    try:
        yield beat
    finally:
        beat.close()


def test_a_change_read_while_the_heap_is_built_does_not_send_an_entry_twice(
    overdue, scheduler, monkeypatch
):
    """Another beat's start marks the schedule changed; the holder notices it between its heap
    check and the heap's rebuild, in the tick that sends the overdue entry. The next tick
    rebuilds the heap from the schedule read then: it must know the entry was just sent."""
    answers = iter([False, True])
    monkeypatch.setattr(scheduler, "schedule_changed", lambda: next(answers, False))

    scheduler.tick()  # the heap check reads no change; the rebuild reads one, then sends
    assert scheduler.sent == ["ping-overdue"]
    for _ in range(5):
        scheduler.tick()
    assert scheduler.sent == ["ping-overdue"]


def test_an_entry_sent_is_saved_with_its_new_last_run_at(overdue, scheduler):
    before = overdue.last_run_at
    scheduler.tick()
    scheduler.sync()
    overdue.refresh_from_db()
    assert scheduler.sent == ["ping-overdue"]
    assert overdue.last_run_at > before
    assert overdue.total_run_count == 1
