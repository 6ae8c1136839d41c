"""Collection runs, their per-school ledger, and the state machine that moves both.

A run asks for one date window of one level (or all); the ledger holds one row per school in
the run, the *unit* of work. Fan-in goes through the ledger, never through Celery chords: a
run closes itself when its last unit becomes terminal. Every change of state is a method
below, and nothing else writes ``status``.

A unit moves like this (the method that moves it in brackets)::

    PENDING ──claim──▶ RUNNING ──finish──▶ DONE | NO_DATA
       ▲  │              │ │ │
       │  │              │ │ └──release──▶ PENDING   (transient error: retried with backoff)
       │  │              │ └────defer────▶ DEFERRED  (quota spent, or NEIS down for every school)
       │  │              └──────fail─────▶ FAILED    (permanent error, or retry window spent)
       │  └──defer_pending──▶ DEFERRED ──claim──▶ RUNNING
       │                        └──resume──▶ PENDING (the quota reset, or NEIS answers again)
       └──reopen── FAILED;    PENDING | DEFERRED ──cancel──▶ CANCELLED

How concurrent attempts stay safe:

- A claim is one conditional UPDATE that writes a fresh random token. Only the attempt holding
  the current token may move the unit on; every transition out of RUNNING is conditional on
  it, so a superseded attempt (its lease expired and another took over) changes nothing.
- ``finish`` locks the unit row (SELECT ... FOR UPDATE) in the caller's transaction, checks
  the token, and commits the lessons and the unit's counts together: stored lessons and the
  ledger never disagree.
- The lease is short (``NEIS_LEASE_SECONDS``, a minute) and the attempt renews it while it
  works (``renew_lease``, from a heartbeat every third of the lease), so a lease that ran out
  belongs to an attempt that stopped: its worker died or lost the database. Another attempt
  may then claim the unit, and the stopped one's late result is refused by the token. A
  message redelivered after its worker died (the same task id) may re-claim at once.
- A run closes with one conditional UPDATE ("still open and no open unit exists"), so of units
  finishing together exactly one closes it, and its counts are written in the same
  transaction as its status.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import uuid

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce

from collector import clock
from collector.levels import RunLevel
from collector.neis.redact import configured_keys, redact
from collector.signals import run_closed

log = logging.getLogger(__name__)

__all__ = [
    "OPEN",
    "TERMINAL",
    "CollectionRun",
    "LatestUnit",
    "RunLevel",
    "RunStatus",
    "SchoolRun",
    "Trigger",
    "UnitStatus",
]


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule (beat)"
    BACKFILL = "backfill", "Backfill command"
    ADMIN = "admin", "Django admin"
    COMMAND = "command", "Other command"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    PARTIAL = "partial", "Done with failed schools"
    CANCELLED = "cancelled", "Cancelled"


class UnitStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    NO_DATA = "no_data", "No data"
    DEFERRED = "deferred", "Deferred (quota)"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = (UnitStatus.DONE, UnitStatus.NO_DATA, UnitStatus.FAILED, UnitStatus.CANCELLED)
OPEN = (UnitStatus.PENDING, UnitStatus.RUNNING, UnitStatus.DEFERRED)
OPEN_RUN = (RunStatus.PENDING, RunStatus.RUNNING)
# Longest an error message is kept in the ledger (the column is text; this keeps pages light).
ERROR_TEXT_MAX = 2000


def lease_length() -> datetime.timedelta:
    """How long a claim holds unless its attempt renews it (``SchoolRun.renew_lease``)."""
    return datetime.timedelta(seconds=settings.NEIS_LEASE_SECONDS)


class CollectionRunQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=OPEN_RUN)

    def closed(self):
        """Runs done, partial or cancelled: nothing of theirs will be claimed again unless an
        operator reopens their failed units (``reopen_failed``)."""
        return self.exclude(status__in=OPEN_RUN)

    def covering(self, monday: datetime.date):
        """Runs whose window holds the school week of ``monday`` (Monday to Friday)."""
        friday = monday + datetime.timedelta(days=4)
        return self.filter(date_from__lte=monday, date_to__gte=friday)


class SchoolRunQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=OPEN)

    def claimable(self, now: datetime.datetime, task_id: str = ""):
        """Units an attempt may take now: pending or deferred, held by an expired lease, or
        held by the same task message (redelivered after its worker died)."""
        free = Q(status__in=[UnitStatus.PENDING, UnitStatus.DEFERRED])
        free |= Q(status=UnitStatus.RUNNING, lease_expires_at__lt=now)
        if task_id:
            free |= Q(status=UnitStatus.RUNNING, task_id=task_id)
        return self.filter(free)

    def stuck(self, now: datetime.datetime, *, lost_after: datetime.timedelta | None = None):
        """Open units of running runs that nobody will move without help: held by an expired
        lease, pending with no message sent, or sent so long ago that the message expired.

        ``lost_after``: the caller knows no message is waiting in the broker, so a pending
        unit due longer ago than this lost its message (a broker restart, or a task that
        failed before it could record anything).
        """
        expired = now - datetime.timedelta(hours=settings.NEIS_TASK_EXPIRES_HOURS)
        lost = Q(status=UnitStatus.PENDING, queued_at__lt=expired)
        if lost_after is not None:
            lost = Q(status=UnitStatus.PENDING, queued_at__lt=now - lost_after)
        return self.filter(run__status=RunStatus.RUNNING).filter(
            Q(status=UnitStatus.RUNNING, lease_expires_at__lt=now)
            | lost
            | Q(status=UnitStatus.PENDING, queued_at__isnull=True)
        )

    def due(self, now: datetime.datetime):
        """Deferred units of running runs whose reset time has come."""
        return self.filter(
            status=UnitStatus.DEFERRED, defer_until__lte=now, run__status=RunStatus.RUNNING
        )

    # Bulk transitions of units nobody holds; each returns how many rows moved.

    def mark_queued(self, due: datetime.datetime) -> int:
        """PENDING -> PENDING, stamped with when its message is due to be taken: when it was
        sent, or when a retry's countdown ends (so the watchdog does not resend it early)."""
        return self.filter(status=UnitStatus.PENDING).update(queued_at=due)

    def defer_pending(self, until: datetime.datetime) -> int:
        """PENDING -> DEFERRED until ``until`` (the quota is spent: sending would waste it)."""
        return self.filter(status=UnitStatus.PENDING).update(
            status=UnitStatus.DEFERRED, defer_until=until
        )

    def expire_leases(self, now: datetime.datetime) -> int:
        """RUNNING with an expired lease -> PENDING: that attempt died with its worker (it
        cannot outlive the hard time limit). A unit re-claimed meanwhile has a new lease and
        is left alone."""
        return self.filter(status=UnitStatus.RUNNING, lease_expires_at__lt=now).update(
            status=UnitStatus.PENDING, claim_token="", lease_expires_at=None
        )

    def fail_waiting(self, error, now: datetime.datetime) -> int:
        """PENDING | DEFERRED -> FAILED with ``error``, untried: something every attempt would
        meet (NEIS refused the key) is already known, so no request is spent finding it."""
        return self.filter(status__in=[UnitStatus.PENDING, UnitStatus.DEFERRED]).update(
            status=UnitStatus.FAILED, finished_at=now, **error_fields(error)
        )

    def resume(self) -> int:
        """DEFERRED -> PENDING (the quota has reset, or NEIS answers again), with a fresh
        retry window: the time spent waiting was not spent retrying."""
        return self.filter(status=UnitStatus.DEFERRED).update(
            status=UnitStatus.PENDING, defer_until=None, retrying_since=None
        )

    def reopen(self) -> int:
        """FAILED -> PENDING with a fresh retry count (an operator asked to try again)."""
        return self.filter(status=UnitStatus.FAILED).update(
            status=UnitStatus.PENDING, finished_at=None, retries=0, retrying_since=None
        )

    def cancel(self, now: datetime.datetime) -> int:
        """PENDING | DEFERRED -> CANCELLED. A RUNNING unit finishes its attempt: its lessons
        are correct data, and cutting it off mid-write would gain nothing."""
        return self.filter(status__in=[UnitStatus.PENDING, UnitStatus.DEFERRED]).update(
            status=UnitStatus.CANCELLED, finished_at=now
        )

    def counts_by_run(self) -> dict[int, dict[str, int]]:
        """``counts()`` of each run among these units, in one grouped query, with the open
        and cancelled units too (``units_pending``, ``units_running``, ``units_cancelled``).

        The ``unit_run_status`` index finds a run's units; a run without units is absent.
        """
        found: dict[int, dict[str, int]] = {}
        for row in self._grouped("run_id", "status"):
            _add(found.setdefault(row["run_id"], _empty_counts()), row)
        return found

    def counts(self) -> dict[str, int]:
        """Units by status and summed row counts, as ``CollectionRun`` count fields."""
        counts = _empty_counts()
        for row in self._grouped("status"):
            _add(counts, row)
        return {name: counts[name] for name in RUN_COUNTS}

    def _grouped(self, *keys: str):
        return (
            self.order_by()
            .values(*keys)
            .annotate(n=Count("id"), **{name: Sum(name) for name in _SUMMED})
        )


_SUMMED = (
    "requests",
    "rows_fetched",
    "rows_inserted",
    "rows_updated",
    "rows_unchanged",
    "rows_removed",
)


# The count fields a run keeps (``CollectionRun.recount`` and ``close_if_complete`` write them).
RUN_COUNTS = ("units_total", "units_done", "units_no_data", "units_deferred", "units_failed")
RUN_COUNTS += _SUMMED


def _empty_counts() -> dict[str, int]:
    units = {f"units_{status}": 0 for status in UnitStatus.values}
    return {"units_total": 0, **units, **dict.fromkeys(_SUMMED, 0)}


def _add(counts: dict[str, int], row: dict) -> None:
    """Add one (status, count, sums) row of a grouped ledger query to ``counts``."""
    counts["units_total"] += row["n"]
    counts[f"units_{row['status']}"] += row["n"]
    for name in _SUMMED:
        counts[name] += row[name] or 0


class CollectionRun(models.Model):
    level = models.CharField(
        "level", max_length=16, choices=RunLevel.choices, help_text="School level collected."
    )
    offices = models.JSONField(
        "offices", default=list, blank=True, help_text="Office codes (empty: every office)."
    )
    school_codes = models.JSONField(
        "schools", default=list, blank=True, help_text="School codes (empty: every school)."
    )
    date_from = models.DateField("from", help_text="First lesson date collected (inclusive).")
    date_to = models.DateField("to", help_text="Last lesson date collected (inclusive).")
    trigger = models.CharField("trigger", max_length=16, choices=Trigger.choices)
    trigger_key = models.CharField(
        "trigger key",
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        help_text="Identifies one firing of a schedule; a second firing with the same key "
        "is refused, so a duplicate beat cannot start a run twice.",
    )
    requested_by = models.CharField("requested by", max_length=150, blank=True)
    note = models.TextField(
        "note",
        blank=True,
        help_text="What the run's plan said before it started: a refresh the day's quota "
        "cannot cover in full says which school-weeks it covers and which it leaves out.",
    )
    status = models.CharField(
        "status", max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    units_total = models.PositiveIntegerField("schools", default=0)
    units_done = models.PositiveIntegerField("done", default=0)
    units_no_data = models.PositiveIntegerField("no data", default=0)
    units_deferred = models.PositiveIntegerField("deferred", default=0)
    units_failed = models.PositiveIntegerField("failed", default=0)
    requests = models.PositiveIntegerField("NEIS requests", default=0)
    rows_fetched = models.PositiveBigIntegerField("rows fetched", default=0)
    rows_inserted = models.PositiveBigIntegerField("inserted", default=0)
    rows_updated = models.PositiveBigIntegerField("updated", default=0)
    rows_unchanged = models.PositiveBigIntegerField("unchanged", default=0)
    rows_removed = models.PositiveBigIntegerField("removed", default=0)
    created_at = models.DateTimeField("created", default=clock.now, editable=False)
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)

    objects = CollectionRunQuerySet.as_manager()

    class Meta:
        verbose_name = "collection run"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "level"], name="run_status_level")]
        # What an operator may do beyond reading: each admin action that enqueues or changes
        # work asks for one of these (view permission alone only reads).
        permissions = [
            ("start_collection", "Can start a collection"),
            ("cancel_run", "Can cancel a run"),
            ("retry_run", "Can retry failed schools"),
            ("recount_run", "Can recount a run's ledger"),
        ]

    def __str__(self):
        return f"Run {self.pk}: {self.level} {self.date_from}..{self.date_to} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_RUN

    def start(self) -> bool:
        """PENDING -> RUNNING, stamped; False (and no change) when it had already started."""
        now = clock.now()
        started = CollectionRun.objects.filter(pk=self.pk, status=RunStatus.PENDING).update(
            status=RunStatus.RUNNING, started_at=now
        )
        if started:
            self.status, self.started_at = RunStatus.RUNNING, now
        return bool(started)

    def live_counts(self) -> dict[str, int]:
        """The run's counts as its ledger has them at this moment."""
        return self.units.all().counts()

    def recount(self) -> None:
        """Write ``live_counts()`` into the run's count fields."""
        counts = self.live_counts()
        for name, value in counts.items():
            setattr(self, name, value)
        CollectionRun.objects.filter(pk=self.pk).update(**counts)

    def schedule(self):
        """The beat schedule (``PeriodicTask``) that started this run, found by the level its
        trigger key names; None for a run no schedule started, or whose schedule is gone."""
        if self.trigger != Trigger.SCHEDULE or not self.trigger_key:
            return None
        from django_celery_beat.models import PeriodicTask

        parts = self.trigger_key.split(":")
        if len(parts) < 2:
            return None
        level = json.dumps({"level": parts[1]})[1:-1]  # '"level": "middle"', as apply writes it
        schedules = PeriodicTask.objects.filter(
            task="collector.start_scheduled_run", kwargs__contains=level
        )
        return schedules.order_by("pk").first()

    def _closed(self) -> None:
        """Tell ``run_closed``'s receivers (monitoring) once the close is committed; a
        receiver that fails is logged and never undoes or fails the close."""

        def send():
            for receiver, result in run_closed.send_robust(sender=CollectionRun, run=self):
                if isinstance(result, Exception):
                    log.error("run %s closed; %r failed: %s", self.pk, receiver, result)

        transaction.on_commit(send)

    def close_if_complete(self) -> bool:
        """PENDING | RUNNING -> DONE (or PARTIAL with failed units) once no unit is open.

        True for the one caller that closed it: the UPDATE is conditional on the run being
        open and on no open unit existing when it runs, and the counts commit with the status,
        so nobody ever sees a closed run without its counts.
        """
        # Most callers are not the last: one plain look says so. Callers move their unit and
        # commit first, then call this: a unit still open is one whose own attempt looks again
        # once it commits, so the last of two finishing together sees none.
        with connection.cursor() as cursor:
            cursor.execute(_ANY_OPEN_UNIT, [self.pk, *OPEN])
            if cursor.fetchone()[0]:
                return False
        open_units = SchoolRun.objects.filter(run_id=OuterRef("pk"), status__in=OPEN)
        now = clock.now()
        with transaction.atomic():
            closed = (
                CollectionRun.objects.filter(pk=self.pk, status__in=OPEN_RUN)
                .filter(~Exists(open_units))
                .update(status=RunStatus.DONE, finished_at=now)
            )
            if not closed:
                return False
            counts = self.live_counts()
            status = RunStatus.PARTIAL if counts["units_failed"] else RunStatus.DONE
            CollectionRun.objects.filter(pk=self.pk).update(status=status, **counts)
        self.status, self.finished_at = status, now
        for name, value in counts.items():
            setattr(self, name, value)
        self._closed()
        return True

    def cancel(self) -> int:
        """PENDING | RUNNING -> CANCELLED with its waiting units; returns how many units.

        Units already running finish their attempt (see ``SchoolRunQuerySet.cancel``).
        """
        now = clock.now()
        with transaction.atomic():
            cancelled = self.units.all().cancel(now)
            closed = CollectionRun.objects.filter(pk=self.pk, status__in=OPEN_RUN).update(
                status=RunStatus.CANCELLED, finished_at=now
            )
            self.recount()
        self.refresh_from_db(fields=["status", "finished_at"])
        if closed:
            self._closed()
        return cancelled

    def reopen_failed(self) -> list[int]:
        """FAILED units -> PENDING, and the run back to RUNNING; returns the units' ids.

        A cancelled run stays cancelled: an operator who cancelled it meant it.
        """
        if self.status == RunStatus.CANCELLED:
            return []
        with transaction.atomic():
            failed = self.units.filter(status=UnitStatus.FAILED).select_for_update()
            ids = list(failed.values_list("pk", flat=True))
            if not ids:
                return []
            SchoolRun.objects.filter(pk__in=ids).reopen()
            CollectionRun.objects.filter(pk=self.pk).exclude(status=RunStatus.CANCELLED).update(
                status=RunStatus.RUNNING, finished_at=None
            )
        self.refresh_from_db(fields=["status", "finished_at"])
        return ids


class SchoolRun(models.Model):
    """One school in one run: the unit of work, claimable exactly once at a time."""

    run = models.ForeignKey(CollectionRun, on_delete=models.CASCADE, related_name="units")
    school = models.ForeignKey("collector.School", on_delete=models.PROTECT, related_name="units")
    status = models.CharField(
        "status", max_length=16, choices=UnitStatus.choices, default=UnitStatus.PENDING
    )
    attempts = models.PositiveIntegerField("attempts", default=0, help_text="Times claimed.")
    retries = models.PositiveIntegerField(
        "retries", default=0, help_text="Transient failures retried with backoff."
    )
    retrying_since = models.DateTimeField(
        "retrying since",
        null=True,
        blank=True,
        help_text="First of the transient failures in a row; retries stop once it is older "
        "than NEIS_RETRY_WINDOW_SECONDS.",
    )
    requests = models.PositiveIntegerField("NEIS requests", default=0)
    pages = models.PositiveIntegerField("pages", default=0)
    rows_fetched = models.PositiveIntegerField("rows fetched", default=0)
    rows_inserted = models.PositiveIntegerField("inserted", default=0)
    rows_updated = models.PositiveIntegerField("updated", default=0)
    rows_unchanged = models.PositiveIntegerField("unchanged", default=0)
    rows_removed = models.PositiveIntegerField("removed", default=0)
    list_total_count = models.PositiveIntegerField(
        "list_total_count", default=0, help_text="What NEIS said the query holds."
    )
    rows_missing = models.IntegerField(
        "missing", default=0, help_text="list_total_count minus rows received (NEIS short-served)."
    )
    last_error_code = models.CharField("last error code", max_length=32, blank=True)
    last_error = models.TextField("last error", blank=True, help_text="Key redacted.")
    defer_until = models.DateTimeField("deferred until", null=True, blank=True)
    task_id = models.CharField("task id", max_length=64, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    queued_at = models.DateTimeField("queued", null=True, blank=True)
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    duration_ms = models.PositiveIntegerField("duration (ms)", null=True, blank=True)

    objects = SchoolRunQuerySet.as_manager()

    class Meta:
        verbose_name = "school in run"
        verbose_name_plural = "schools in runs"
        constraints = [
            models.UniqueConstraint(fields=["run", "school"], name="unit_run_school_unique"),
        ]
        indexes = [
            models.Index(fields=["run", "status"], name="unit_run_status"),
            models.Index(
                fields=["defer_until"],
                name="unit_deferred",
                condition=Q(status=UnitStatus.DEFERRED),
            ),
            # The console's "latest unit per school and week" reads a run's units in school
            # order with their status, from the index alone (collector.console).
            models.Index(
                fields=["run", "school"], include=["status", "id"], name="unit_run_school_status"
            ),
            # The console's error-code filter lists the codes the ledger holds: only units
            # with one (failed, deferred, retried) are in it.
            models.Index(
                fields=["last_error_code"],
                name="unit_error_code",
                condition=~Q(last_error_code=""),
            ),
        ]

    # Whether a digest of the school's window was stored when ``take`` claimed the unit (an
    # answer was merged for this very window before): when not, whatever NEIS answers will be
    # converted and merged, so the client decodes its pages as they come instead of peeking
    # first (``NeisClient.timetable``). Only ``take`` on PostgreSQL finds it out; elsewhere
    # it stays True, which costs a peek and changes nothing else.
    window_answered = True

    def __str__(self):
        return f"{self.school_id} in run {self.run_id}: {self.status}"

    # Transitions of one attempt. ``claim`` takes the unit; the others act only while that
    # claim holds (the token written by ``claim`` is still the unit's), and return False,
    # changing nothing, when another attempt has taken over.

    def claim(self, task_id: str = "") -> bool:
        """PENDING | DEFERRED | RUNNING (lease expired, or the same task redelivered) ->
        RUNNING under a fresh token and lease; False when the unit is not claimable."""
        now = clock.now()
        fields = {
            "status": UnitStatus.RUNNING,
            "claim_token": uuid.uuid4().hex,
            "lease_expires_at": now + lease_length(),
            "task_id": task_id,
            "started_at": now,
            "defer_until": None,
        }
        taken = (
            SchoolRun.objects.filter(pk=self.pk)
            .claimable(now, task_id)
            .update(attempts=F("attempts") + 1, **fields)
        )
        if taken:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(taken)

    @classmethod
    def take(cls, unit_id: int, task_id: str = "") -> tuple[SchoolRun, bool]:
        """``claim`` unit ``unit_id`` and read it with its school and run (and whether its
        window was answered before: ``window_answered``), in one statement
        (the collect task's first step, once per unit: the ORM's get and update cost two
        round trips and most of their time in building SQL). Returns the unit, claimed or
        as it is, and whether the claim was taken; DoesNotExist for an unknown unit."""
        if connection.vendor != "postgresql":  # UPDATE ... FROM ... RETURNING: PostgreSQL
            unit = cls.objects.select_related("school", "run").get(pk=unit_id)
            claimed = unit.claim(task_id)
            if claimed:
                unit.refresh_from_db(fields=["attempts"])
            return unit, claimed
        now = clock.now()
        token = uuid.uuid4().hex
        lease = now + lease_length()
        with connection.cursor() as cursor:
            cursor.execute(
                _take_sql(),
                {"id": unit_id, "now": now, "lease": lease, "token": token, "task": task_id},
            )
            row = cursor.fetchone()
        if row is None:  # not claimable (or not there: get says which)
            return cls.objects.select_related("school", "run").get(pk=unit_id), False
        School = cls.school.field.related_model  # (collector.models imports this module)
        unit_width, school_width = len(_columns(cls)), len(_columns(School))
        unit = _from_row(cls, row[:unit_width])
        unit.school = _from_row(School, row[unit_width : unit_width + school_width])
        unit.run = _from_row(CollectionRun, row[unit_width + school_width : -1])
        unit.window_answered = row[-1]
        return unit, True

    def renew_lease(self) -> bool:
        """RUNNING -> RUNNING with the lease pushed forward: this attempt is still at work.
        False once another attempt has taken the unit over."""
        return bool(self._claimed().update(lease_expires_at=clock.now() + lease_length()))

    def _claimed(self):
        return SchoolRun.objects.filter(
            pk=self.pk, status=UnitStatus.RUNNING, claim_token=self.claim_token
        )

    def lock_claim(self) -> bool:
        """Row-lock the unit until the caller's transaction ends, if the claim still holds.

        Whatever is written under this lock (lessons, counts) commits only for the attempt
        holding the claim; a superseded attempt sees False and must discard its work.
        """
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("lock_claim() needs a transaction")
        # Plain SQL, as ``_claimed().select_for_update()`` would read (once for every unit
        # that stores lessons; the ORM spent more building it than the database running it).
        lock = "FOR UPDATE" if connection.features.has_select_for_update else ""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {self._meta.db_table} "
                f"WHERE id = %s AND status = %s AND claim_token = %s {lock}",
                [self.pk, UnitStatus.RUNNING, self.claim_token],
            )
            return cursor.fetchone() is not None

    def finish(self, status: str, *, requests: int = 0, **counts) -> bool:
        """RUNNING -> DONE | NO_DATA with the attempt's counts (call after ``lock_claim``, or
        inside the transaction that read the stored answer): ``requests`` this attempt spent
        are added to the unit's, every other count is set."""
        if status not in (UnitStatus.DONE, UnitStatus.NO_DATA):
            raise ValueError(f"finish() ends a unit as done or no data, not {status!r}")
        return self._end(status, added={"requests": requests}, **counts)

    def fail(self, error) -> bool:
        """RUNNING -> FAILED: the error will not go away by retrying (a permanent NEIS error)."""
        return self._end(UnitStatus.FAILED, **error_fields(error))

    def release(self, error, due: datetime.datetime | None = None) -> bool:
        """RUNNING -> PENDING after a transient error, counted as a retry; the caller retries.

        ``due``: when the retry's message falls due, so that the watchdog does not take a
        message waiting out its countdown for a lost one. The first failure in a row is kept
        in ``retrying_since``.
        """
        fields = {"retries": F("retries") + 1, **error_fields(error)}
        fields["retrying_since"] = Coalesce(F("retrying_since"), Value(clock.now()))
        if due is not None:
            fields["queued_at"] = due
        return self._move(UnitStatus.PENDING, **fields)

    def failing_for(self, now: datetime.datetime) -> float:
        """Seconds since the first of this unit's transient failures in a row (0: none)."""
        return (now - self.retrying_since).total_seconds() if self.retrying_since else 0.0

    def defer(self, until: datetime.datetime, error) -> bool:
        """RUNNING -> DEFERRED until ``until``: when the key's quota resets, or when the next
        probe may find NEIS back."""
        return self._move(UnitStatus.DEFERRED, defer_until=until, **error_fields(error))

    def cancel_claimed(self) -> bool:
        """RUNNING -> CANCELLED: the run was closed (cancelled) before this attempt began."""
        return self._end(UnitStatus.CANCELLED)

    def _move(self, status: str, **fields) -> bool:
        fields.update(status=status, lease_expires_at=None, claim_token="")
        return bool(self._claimed().update(**fields))

    def _end(self, status: str, added: dict[str, int] | None = None, **fields) -> bool:
        """Move the claimed unit to a terminal ``status`` with ``fields`` set and ``added``
        added to their columns. Plain SQL (the fields are this model's plain columns): it
        runs once for every unit."""
        added = added or {}
        now = clock.now()
        if self.started_at:
            fields["duration_ms"] = int((now - self.started_at).total_seconds() * 1000)
        fields.update(status=status, finished_at=now, lease_expires_at=None)
        columns = {name: self._meta.get_field(name).column for name in (*fields, *added)}
        sets = [f"{columns[name]} = %s" for name in fields]
        sets += [f"{columns[name]} = {columns[name]} + %s" for name in added]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self._meta.db_table} SET {', '.join(sets)} "
                "WHERE id = %s AND status = %s AND claim_token = %s",
                [*fields.values(), *added.values(), self.pk, UnitStatus.RUNNING, self.claim_token],
            )
            moved = cursor.rowcount == 1
        if moved:
            self.status = status
        return moved

    @classmethod
    def fail_unclaimed(cls, unit_id: int, error) -> bool:
        """Any open state -> FAILED, whoever holds it: Celery gave up on the unit's task
        (retries spent, or a bug). A unit already done, without data or cancelled stays so."""
        fields = {"status": UnitStatus.FAILED, "finished_at": clock.now()}
        fields.update(lease_expires_at=None, claim_token="", **error_fields(error))
        return bool(
            cls.objects.filter(pk=unit_id)
            .exclude(status__in=[UnitStatus.DONE, UnitStatus.NO_DATA, UnitStatus.CANCELLED])
            .update(**fields)
        )


class LatestUnit(models.Model):
    """Each school's latest unit of each school week (Monday to Friday): its unit in the newest
    run (by creation, then id) whose window holds the week, cancelled units aside, with the
    unit's status copied. What the console's coverage, "latest of a week" and "missing" read.

    Kept by PostgreSQL itself (triggers of migrations 0014 and 0015): units inserted, a status
    changed (a unit cancelled or no longer cancelled works its school's weeks out again) and a run's
    window or creation time changed are applied in the same statement, whichever code wrote
    them. Elsewhere (SQLite) the table stays empty and the console works the latest units out
    on each read (``console.latest_states_sql``). A unit deleted takes its rows with it;
    retention then gives its school-weeks to the newest unit left (``refill``), as a unit of an
    open run is kept however old its window.
    """

    monday = models.DateField("week of")
    school = models.ForeignKey(
        "collector.School", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    unit = models.ForeignKey(SchoolRun, on_delete=models.CASCADE, related_name="+")
    status = models.CharField("status", max_length=16, choices=UnitStatus.choices)
    # The unit's run and its creation: which of two units is newer, without a lookup. The
    # unit's own foreign key removes the row with it, so the run needs no constraint.
    run = models.ForeignKey(
        CollectionRun,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    run_created_at = models.DateTimeField("run created")

    class Meta:
        verbose_name = "latest unit of a school week"
        constraints = [
            # Monday first: the console reads whole weeks.
            models.UniqueConstraint(fields=["monday", "school"], name="latest_unit_week_school")
        ]

    def __str__(self):
        return f"{self.school_id} week of {self.monday}: unit {self.unit_id} ({self.status})"

    @staticmethod
    def kept() -> bool:
        """Whether the database keeps this table (PostgreSQL) or it stays empty."""
        return transaction.get_connection().vendor == "postgresql"

    @classmethod
    def refill(cls, units: list[tuple[int, int]]) -> None:
        """Give the school-weeks of deleted units (``(school_id, run_id)`` pairs) that have no
        row any more to the newest unit left, if any; nothing where the table is not kept.
        Called after the units' deletion, in its transaction (retention: the triggers see the
        statements of a delete one at a time, and a later one may delete the unit an earlier
        one's refill would name)."""
        if not units or not cls.kept():
            return
        schools, runs = (list(each) for each in zip(*units, strict=True))
        with transaction.get_connection().cursor() as cursor:
            cursor.execute(
                "SELECT collector_latest_unit_fill(array_agg(p.school_id), array_agg(w.monday)) "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS p(school_id, run_id) "
                f"JOIN {CollectionRun._meta.db_table} r ON r.id = p.run_id, "
                "LATERAL collector_school_weeks(r.date_from, r.date_to) AS w(monday) "
                f"WHERE NOT EXISTS (SELECT 1 FROM {cls._meta.db_table} l "
                "WHERE l.monday = w.monday AND l.school_id = p.school_id)",
                [schools, runs],
            )


def error_fields(error) -> dict[str, str]:
    """The ledger's record of a NEIS error: its code, and its message with the key redacted."""
    return {
        "last_error_code": error.code[:32],
        "last_error": redact(str(error), configured_keys())[:ERROR_TEXT_MAX],
    }


# --- Plain SQL of the per-unit steps --------------------------------------------------------
# Each collect task runs these once: written out, they cost a fraction of what building them
# through the ORM does. tests/pipeline/test_ledger.py checks them against their ORM twins.


# What ``take`` leaves unread (deferred: the ORM reads it if it is ever asked for): a run's
# office and school lists, which an attempt never needs, and which can hold every school's
# code (a run of schools picked in the admin): decoding them cost each unit of such a run.
_NOT_TAKEN = frozenset({"offices", "school_codes"})


@functools.cache
def _taken(model) -> tuple:
    """The concrete fields ``take`` reads of ``model``, in field order."""
    return tuple(f for f in model._meta.concrete_fields if f.attname not in _NOT_TAKEN)


def _columns(model) -> tuple[str, ...]:
    return tuple(field.column for field in _taken(model))


@functools.cache
def _converters(model) -> tuple:
    """(index, field, converters) of each taken field the ORM converts on reading."""
    fields = enumerate(_taken(model))
    found = ((index, field, field.get_db_converters(connection)) for index, field in fields)
    return tuple(entry for entry in found if entry[2])


def _from_row(model, values):
    """A model instance from its taken columns' values as the driver returned them, with
    each field's converters applied as the ORM applies them (JSON text to a value, say); the
    fields not taken are deferred."""
    values = list(values)
    for index, field, functions in _converters(model):
        for function in functions:
            values[index] = function(values[index], field, connection)
    return model.from_db(connection.alias, _names(model), values)


@functools.cache
def _names(model) -> frozenset[str]:
    """The attnames ``take`` reads of ``model`` (``Model.from_db`` defers the others)."""
    return frozenset(field.attname for field in _taken(model))


@functools.cache
def _take_sql() -> str:
    School = SchoolRun.school.field.related_model  # (as in SchoolRun.take)
    selected = [f"u.{column}" for column in _columns(SchoolRun)]
    selected += [f"s.{column}" for column in _columns(School)]
    selected += [f"r.{column}" for column in _columns(CollectionRun)]
    free = ", ".join(f"'{status}'" for status in (UnitStatus.PENDING, UnitStatus.DEFERRED))
    running = f"'{UnitStatus.RUNNING}'"
    # SchoolRunQuerySet.claimable, then SchoolRun.claim's fields.
    return f"""
    UPDATE collector_schoolrun u
    SET status = {running}, claim_token = %(token)s, lease_expires_at = %(lease)s,
        task_id = %(task)s, started_at = %(now)s, defer_until = NULL,
        attempts = u.attempts + 1
    FROM collector_school s, collector_collectionrun r
    WHERE u.id = %(id)s AND s.id = u.school_id AND r.id = u.run_id
      AND (u.status IN ({free})
           OR (u.status = {running} AND u.lease_expires_at < %(now)s)
           OR (%(task)s <> '' AND u.status = {running} AND u.task_id = %(task)s))
    RETURNING {", ".join(selected)}, EXISTS (
        SELECT 1 FROM collector_windowdigest d
        WHERE d.school_id = u.school_id AND d.date_from = r.date_from AND d.date_to = r.date_to
    )
    """


_ANY_OPEN_UNIT = (
    "SELECT EXISTS (SELECT 1 FROM collector_schoolrun WHERE run_id = %s AND status IN "
    f"({', '.join(['%s'] * len(OPEN))}))"
)
