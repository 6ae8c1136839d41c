"""Collection runs and their per-school ledger.

A run asks for one date window of one level (or all); the ledger holds one row per school in
the run, the unit of work. Fan-in goes through the ledger, never through Celery chords: a run
closes itself when its last unit becomes terminal.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class RunLevel(models.TextChoices):
    ALL = "all", "All levels"
    ELEMENTARY = "elementary", "Elementary"
    MIDDLE = "middle", "Middle"
    HIGH = "high", "High"
    SPECIAL = "special", "Special"


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
    created_at = models.DateTimeField("created", auto_now_add=True)
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)

    class Meta:
        verbose_name = "collection run"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "level"], name="run_status_level")]

    def __str__(self):
        return f"Run {self.pk}: {self.level} {self.date_from}..{self.date_to} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in (RunStatus.PENDING, RunStatus.RUNNING)


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
        ]

    def __str__(self):
        return f"{self.school_id} in run {self.run_id}: {self.status}"
