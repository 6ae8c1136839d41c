"""django-celery-beat's DatabaseScheduler, guarded so that only one beat ever sends.

A second beat started by mistake finds the lock held and stands by, sending nothing, until the
first one goes away. On PostgreSQL the lock is a session-level advisory lock on a connection of
its own (released by the server when the holder dies, on any machine); on SQLite, where
everything runs on one machine, it is an ``flock`` on a file under ``VAR_DIR``.
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django_celery_beat.schedulers import DatabaseScheduler

log = logging.getLogger(__name__)

# Any fixed 64-bit number; it names "the beat" among the project's advisory locks.
ADVISORY_LOCK_ID = 0x6E65_6973_6265_6174 & 0x7FFF_FFFF_FFFF_FFFF
STANDBY_SECONDS = 5.0


class PostgresBeatLock:
    def __init__(self):
        self._conn = None

    def held(self) -> bool:
        import psycopg

        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.execute("SELECT 1")
                return True
        except psycopg.Error:
            self._conn = None
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        try:
            self._conn = psycopg.connect(**params, autocommit=True)
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID]
            ).fetchone()
        except psycopg.Error as exc:
            # The database is restarting: not holding the lock is the safe answer, and the
            # next tick asks again. Raising here would end beat, and the schedule with it.
            log.warning("beat: cannot take the single-beat lock (%s); standing by", exc)
            self.release()
            return False
        if not row[0]:
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class FileBeatLock:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = None

    def held(self) -> bool:
        if self._handle is not None:
            return True
        handle = open(self.path, "a+")  # noqa: SIM115 (kept open while the lock is held)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def beat_lock():
    if connection.vendor == "postgresql":
        return PostgresBeatLock()
    return FileBeatLock(Path(settings.VAR_DIR) / "beat.lock")


class GuardedDatabaseScheduler(DatabaseScheduler):
    """Sends due tasks only while it holds the single-beat lock."""

    def __init__(self, *args, **kwargs):
        self._lock = beat_lock()
        self._standing_by = False
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        if not self._lock.held():
            if not self._standing_by:
                log.warning("beat: another beat holds the lock; standing by, sending nothing")
                self._standing_by = True
            return STANDBY_SECONDS
        if self._standing_by:
            try:
                self._reload()
            except DatabaseError as exc:
                # The database is back for the lock but not yet for the rest (or the lock's
                # server went away again): read the schedule at the next tick. Raising here
                # would end beat, and the schedule with it.
                log.warning("beat: cannot read the schedule yet (%s); trying again", exc)
                return 1.0
            log.warning("beat: lock acquired; this beat now sends the schedule")
            self._standing_by = False
        return super().tick(*args, **kwargs)

    def reserve(self, entry):
        # django-celery-beat's reserve advances the entry's model but leaves the schedule's own
        # entry as it was read, with the old last_run_at. When a "schedule changed" re-read lands
        # in the middle of the tick that sends (between the heap check and populate_heap), the
        # next tick rebuilds the heap from that stale entry and sends it again, milliseconds
        # after the first. Keeping the advanced entry in the schedule, as Celery's own
        # scheduler does, makes every rebuild see the send.
        new_entry = super().reserve(entry)
        if self._schedule is not None and entry.name in self._schedule:
            self._schedule[entry.name] = new_entry
        return new_entry

    def _reload(self) -> None:
        # The copy in memory dates from before standing by. Since then the other beat has sent
        # entries and saved when they last ran, and a beat's own saves do not mark the schedule
        # changed, so sending from that copy would send them all again. The connection is
        # made afresh: the one from before standing by may have died with a database restart
        # (the reason this beat stood by), and reading through it would end beat.
        connection.close()
        self._schedule = self.all_as_schedule()
        self._heap = None

    def close(self):
        try:
            super().close()
        finally:
            self._lock.release()
