"""The collection pipeline as plain functions; Celery tasks and commands are thin wrappers.

A run moves through these steps::

    create_run ─ refresh the school registry if stale, one ledger row (unit) per school
    dispatch   ─ enqueue one collect task per pending unit (or defer them all on a spent quota)
    collect_unit ─ claim the unit, fetch every page, store lessons + ledger counts in one
                   transaction, then close the run if this was its last open unit
    resume_deferred ─ after the quota reset, put deferred units back in the queue

A unit is claimed with a conditional UPDATE and a fresh token; its result is committed only
while that token still holds, so a redelivered or duplicated message does the work at most
once in effect.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from collector.ledger import (
    OPEN,
    CollectionRun,
    RunLevel,
    RunStatus,
    SchoolRun,
    Trigger,
    UnitStatus,
)
from collector.limiter import RequestBudget, budget_from_settings
from collector.models import Office, School
from collector.neis.client import NeisClient
from collector.neis.errors import (
    NeisError,
    NeisPermanentError,
    NeisQuotaError,
    NeisTransientError,
)
from collector.neis.records import Level
from collector.neis.redact import configured_key, redact
from collector.storage import store_lessons, sync_school_registry

log = logging.getLogger(__name__)

LEVELS = [level.value for level in Level]
# The offices NEIS knows (shared/neis-api.md section 6); the registry may add more later.
OFFICE_CODES = frozenset(
    [
        "B10",
        "C10",
        "D10",
        "E10",
        "F10",
        "G10",
        "H10",
        "I10",
        "J10",
        "K10",
        "M10",
        "N10",
        "P10",
        "Q10",
        "R10",
        "S10",
        "T10",
        "V10",
    ]
)


def known_offices() -> set[str]:
    return set(OFFICE_CODES) | set(Office.objects.values_list("code", flat=True))


class PipelineError(ValueError):
    """A request the pipeline refuses (bad window, unknown office or school)."""


@dataclasses.dataclass
class Outcome:
    """What one attempt at a unit did; the task returns it as a small dict."""

    unit_id: int
    status: str
    detail: str = ""
    rows: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def levels_of(level: str) -> list[str]:
    if level == RunLevel.ALL:
        return list(LEVELS)
    if level not in LEVELS:
        raise PipelineError(f"unknown level {level!r}; choose one of all, {', '.join(LEVELS)}")
    return [level]


def validate_window(date_from: datetime.date, date_to: datetime.date) -> None:
    if date_from > date_to:
        raise PipelineError(f"the window starts ({date_from}) after it ends ({date_to})")
    days = (date_to - date_from).days + 1
    if days > settings.NEIS_MAX_WINDOW_DAYS:
        raise PipelineError(
            f"the window is {days} days long; the maximum is {settings.NEIS_MAX_WINDOW_DAYS} "
            "(NEIS_MAX_WINDOW_DAYS); split it into several runs"
        )


def registry_is_stale(levels: list[str], offices: Iterable[str] = ()) -> bool:
    """True when no school of these levels is known, or the newest sighting is too old."""
    schools = School.objects.filter(level__in=levels)
    if offices:
        schools = schools.filter(office_id__in=list(offices))
    newest = schools.order_by("-last_seen").values_list("last_seen", flat=True).first()
    max_age = datetime.timedelta(hours=settings.NEIS_REGISTRY_MAX_AGE_HOURS)
    return newest is None or timezone.now() - newest > max_age


class Reprocess:
    """What a new run does with school-weeks an earlier run already collected."""

    NONE = "none"  # skip schools already collected (done or no data) for a covering window
    FAILED = "failed"  # only schools whose latest attempt at a covering window failed
    ALL = "all"  # every school, collected or not (idempotent, but spends quota)
    CHOICES = (NONE, FAILED, ALL)


def _covering_units(date_from: datetime.date, date_to: datetime.date):
    return SchoolRun.objects.filter(run__date_from__lte=date_from, run__date_to__gte=date_to)


def select_schools(
    levels: list[str],
    offices: Iterable[str] = (),
    codes: Iterable[str] = (),
    *,
    window: tuple[datetime.date, datetime.date] | None = None,
    reprocess: str = Reprocess.ALL,
):
    """Active schools of the levels, offices and codes asked for, less what ``reprocess`` skips."""
    if reprocess not in Reprocess.CHOICES:
        raise PipelineError(f"unknown reprocess mode {reprocess!r}")
    schools = School.objects.filter(level__in=levels, active=True)
    if offices:
        schools = schools.filter(office_id__in=list(offices))
    if codes:
        schools = schools.filter(code__in=list(codes))
    if window and reprocess == Reprocess.NONE:
        collected = _covering_units(*window).filter(
            status__in=[UnitStatus.DONE, UnitStatus.NO_DATA]
        )
        schools = schools.exclude(pk__in=collected.values("school_id"))
    elif window and reprocess == Reprocess.FAILED:
        latest = (
            _covering_units(*window)
            .filter(school_id=OuterRef("pk"))
            .exclude(status=UnitStatus.CANCELLED)
            .order_by("-run__created_at")
            .values("status")[:1]
        )
        schools = schools.annotate(latest=Subquery(latest)).filter(latest=UnitStatus.FAILED)
    return schools.order_by("office_id", "code")


def create_run(
    level: str,
    date_from: datetime.date,
    date_to: datetime.date,
    *,
    offices: Iterable[str] = (),
    school_codes: Iterable[str] = (),
    trigger: str = Trigger.COMMAND,
    trigger_key: str | None = None,
    requested_by: str = "",
    client: NeisClient | None = None,
    refresh_registry: bool | None = None,
    reprocess: str = Reprocess.ALL,
) -> CollectionRun:
    """Create a run and its ledger rows; refresh the school registry first if it is stale.

    Raises ``PipelineError`` for a bad level or window. Returns the run (status pending) with
    one unit per active school of the level(s), office(s) and school code(s) asked for.
    """
    levels = levels_of(level)
    validate_window(date_from, date_to)
    offices, school_codes = sorted(set(offices)), sorted(set(school_codes))
    if refresh_registry is None:
        refresh_registry = registry_is_stale(levels, offices)
    if refresh_registry:
        sync_school_registry(client or NeisClient.from_settings(), offices=offices or None)
    with transaction.atomic():
        run = CollectionRun.objects.create(
            level=level,
            offices=offices,
            school_codes=school_codes,
            date_from=date_from,
            date_to=date_to,
            trigger=trigger,
            trigger_key=trigger_key,
            requested_by=requested_by,
        )
        schools = select_schools(
            levels, offices, school_codes, window=(date_from, date_to), reprocess=reprocess
        ).values_list("pk", flat=True)
        units = [SchoolRun(run=run, school_id=pk) for pk in schools]
        SchoolRun.objects.bulk_create(units, batch_size=2000)
        run.units_total = len(units)
        run.save(update_fields=["units_total"])
    return run


def _budget() -> RequestBudget:
    return budget_from_settings()


def _quota_blocked_until(budget: RequestBudget) -> datetime.datetime | None:
    """When the key's spent quota resets, or None while requests may be made."""
    blocked = budget.blocked_until()
    return datetime.datetime.fromtimestamp(blocked, tz=datetime.UTC) if blocked else None


def dispatch(run: CollectionRun, *, units=None, budget: RequestBudget | None = None) -> int:
    """Enqueue one collect task per pending unit of ``run``; returns how many were sent.

    While the key's daily quota is spent, nothing is sent: the units are deferred until the
    reset instead, and ``resume_deferred`` sends them later.
    """
    from collector.tasks import collect_school

    budget = budget or _budget()
    units = units if units is not None else run.units.filter(status=UnitStatus.PENDING)
    unit_ids = list(units.values_list("pk", flat=True))
    now = timezone.now()
    CollectionRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=now
    )
    if not unit_ids:
        finish_run_if_complete(run.pk)
        return 0
    until = _quota_blocked_until(budget)
    if until:
        SchoolRun.objects.filter(pk__in=unit_ids).update(
            status=UnitStatus.DEFERRED, defer_until=until
        )
        return 0
    SchoolRun.objects.filter(pk__in=unit_ids).update(queued_at=now)
    expires = settings.NEIS_TASK_EXPIRES_HOURS * 3600
    for unit_id in unit_ids:
        collect_school.apply_async(args=[unit_id], expires=expires)
    return len(unit_ids)


def claim(unit_id: int, task_id: str = "") -> str | None:
    """Take a unit for this attempt; returns its claim token, or None if it is not ours.

    A unit is claimable when pending or deferred, when its holder's lease expired, or when the
    same task message comes back (redelivery after its worker died).
    """
    now = timezone.now()
    token = uuid.uuid4().hex
    lease = datetime.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    claimable = Q(status__in=[UnitStatus.PENDING, UnitStatus.DEFERRED]) | Q(
        status=UnitStatus.RUNNING, lease_expires_at__lt=now
    )
    if task_id:
        claimable |= Q(status=UnitStatus.RUNNING, task_id=task_id)
    taken = (
        SchoolRun.objects.filter(pk=unit_id)
        .filter(claimable)
        .update(
            status=UnitStatus.RUNNING,
            claim_token=token,
            lease_expires_at=now + lease,
            attempts=F("attempts") + 1,
            task_id=task_id,
            started_at=now,
            defer_until=None,
        )
    )
    return token if taken else None


def _locked_unit(unit_id: int, token: str) -> SchoolRun | None:
    """The unit, row-locked, if our claim still holds (inside a transaction)."""
    unit = SchoolRun.objects.select_for_update().select_related("school").get(pk=unit_id)
    if unit.status != UnitStatus.RUNNING or unit.claim_token != token:
        return None
    return unit


def _finish(unit: SchoolRun, status: str, **fields) -> None:
    now = timezone.now()
    unit.status = status
    unit.finished_at = now
    unit.lease_expires_at = None
    if unit.started_at:
        unit.duration_ms = int((now - unit.started_at).total_seconds() * 1000)
    for name, value in fields.items():
        setattr(unit, name, value)
    unit.save()


def _error_fields(exc: NeisError) -> dict:
    return {
        "last_error_code": exc.code[:32],
        "last_error": redact(str(exc), configured_key())[:2000],
    }


def collect_unit(
    unit_id: int,
    *,
    task_id: str = "",
    client: NeisClient | None = None,
    budget: RequestBudget | None = None,
) -> Outcome:
    """Collect one school's window: fetch every page, store, record, maybe close the run.

    Raises ``NeisTransientError`` (after putting the unit back to pending) so that the caller
    can retry with backoff; every other outcome is recorded in the ledger and returned.
    """
    token = claim(unit_id, task_id)
    if token is None:
        unit = SchoolRun.objects.only("status").get(pk=unit_id)
        return Outcome(unit_id, "skipped", f"unit is {unit.status}")
    unit = SchoolRun.objects.select_related("school", "run").get(pk=unit_id)
    run = unit.run
    if not run.is_open:
        _release(unit_id, token, UnitStatus.CANCELLED)
        finish_run_if_complete(run.pk)
        return Outcome(unit_id, UnitStatus.CANCELLED, "run is closed")

    budget = budget or _budget()
    until = _quota_blocked_until(budget)
    if until:
        _defer(unit_id, token, until, "ERROR-337", "daily quota spent (seen by another unit)")
        return Outcome(unit_id, UnitStatus.DEFERRED, f"quota spent until {until.isoformat()}")

    client = client or NeisClient.from_settings(limiter=budget)
    school = unit.school
    try:
        fetched = client.timetable(
            Level(school.level), school.office_id, school.code, run.date_from, run.date_to
        )
    except NeisQuotaError as exc:
        budget.block_until(exc.resets_at.timestamp())
        _defer(unit_id, token, exc.resets_at, exc.code, str(exc))
        return Outcome(unit_id, UnitStatus.DEFERRED, exc.code)
    except NeisPermanentError as exc:
        _fail(unit_id, token, exc)
        finish_run_if_complete(run.pk)
        return Outcome(unit_id, UnitStatus.FAILED, exc.code)
    except NeisTransientError as exc:
        _release(unit_id, token, UnitStatus.PENDING, retry=True, **_error_fields(exc))
        raise

    with transaction.atomic():
        unit = _locked_unit(unit_id, token)
        if unit is None:  # another attempt took the unit over; discard this one's work
            return Outcome(unit_id, "superseded")
        counts = {
            "requests": F("requests") + fetched.requests,
            "pages": fetched.pages,
            "rows_fetched": len(fetched.rows),
            "list_total_count": fetched.list_total_count,
            "rows_missing": fetched.missing,
        }
        if not fetched.rows:
            # An empty answer never deletes stored lessons: INFO-200 means "not (yet) there".
            _finish(unit, UnitStatus.NO_DATA, **counts)
        else:
            stored = store_lessons(school, run.date_from, run.date_to, fetched.rows)
            _finish(
                unit,
                UnitStatus.DONE,
                rows_inserted=stored.inserted,
                rows_updated=stored.updated,
                rows_unchanged=stored.unchanged,
                rows_removed=stored.removed,
                **counts,
            )
    if fetched.missing:
        log.warning(
            "school %s: NEIS announced %s rows but served %s",
            school.code,
            fetched.list_total_count,
            fetched.received,
        )
    finish_run_if_complete(run.pk)
    status = UnitStatus.DONE if fetched.rows else UnitStatus.NO_DATA
    return Outcome(unit_id, status, rows=len(fetched.rows))


def _release(unit_id: int, token: str, status: str, *, retry: bool = False, **fields) -> None:
    updates = {"status": status, "lease_expires_at": None, "claim_token": "", **fields}
    if retry:
        updates["retries"] = F("retries") + 1
    if status in (UnitStatus.CANCELLED,):
        updates["finished_at"] = timezone.now()
    SchoolRun.objects.filter(pk=unit_id, claim_token=token).update(**updates)


def _defer(unit_id: int, token: str, until: datetime.datetime, code: str, message: str) -> None:
    SchoolRun.objects.filter(pk=unit_id, claim_token=token).update(
        status=UnitStatus.DEFERRED,
        defer_until=until,
        lease_expires_at=None,
        claim_token="",
        last_error_code=code,
        last_error=redact(message, configured_key())[:2000],
    )


def _fail(unit_id: int, token: str | None, exc: NeisError) -> None:
    with transaction.atomic():
        unit = SchoolRun.objects.select_for_update().get(pk=unit_id)
        if token is not None and unit.claim_token != token:
            return
        if unit.status in (UnitStatus.DONE, UnitStatus.NO_DATA, UnitStatus.CANCELLED):
            return
        _finish(unit, UnitStatus.FAILED, **_error_fields(exc))


def fail_unit(unit_id: int, exc: NeisError) -> None:
    """Mark a unit failed after its retries ran out (called from the task's failure hook)."""
    _fail(unit_id, None, exc)
    run_id = SchoolRun.objects.values_list("run_id", flat=True).get(pk=unit_id)
    finish_run_if_complete(run_id)


def run_counts(run_id: int) -> dict:
    """Live counts of a run from its ledger."""
    by_status = dict(
        SchoolRun.objects.filter(run_id=run_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    sums = SchoolRun.objects.filter(run_id=run_id).aggregate(
        requests=Sum("requests"),
        rows_fetched=Sum("rows_fetched"),
        rows_inserted=Sum("rows_inserted"),
        rows_updated=Sum("rows_updated"),
        rows_unchanged=Sum("rows_unchanged"),
        rows_removed=Sum("rows_removed"),
    )
    counts = {name: value or 0 for name, value in sums.items()}
    counts.update(
        units_total=sum(by_status.values()),
        units_done=by_status.get(UnitStatus.DONE, 0),
        units_no_data=by_status.get(UnitStatus.NO_DATA, 0),
        units_deferred=by_status.get(UnitStatus.DEFERRED, 0),
        units_failed=by_status.get(UnitStatus.FAILED, 0),
    )
    return counts


def refresh_counts(run: CollectionRun) -> CollectionRun:
    counts = run_counts(run.pk)
    for name, value in counts.items():
        setattr(run, name, value)
    run.save(update_fields=list(counts))
    return run


def finish_run_if_complete(run_id: int) -> bool:
    """Close the run when no unit is open; True for the one caller that closed it.

    Race-free: the UPDATE is conditional on the run still being open and on no open unit
    existing at the moment it runs, so of several units finishing together exactly one wins.
    """
    open_units = SchoolRun.objects.filter(run_id=OuterRef("pk"), status__in=OPEN)
    # Status and counts commit together: nobody sees a closed run without its counts.
    with transaction.atomic():
        closed = (
            CollectionRun.objects.filter(
                pk=run_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
            )
            .filter(~Exists(open_units))
            .update(status=RunStatus.DONE, finished_at=timezone.now())
        )
        if not closed:
            return False
        counts = run_counts(run_id)
        status = RunStatus.PARTIAL if counts["units_failed"] else RunStatus.DONE
        CollectionRun.objects.filter(pk=run_id).update(status=status, **counts)
    log.info("run %s finished: %s", run_id, counts)
    return True


def resume_deferred(*, now: datetime.datetime | None = None, budget=None) -> int:
    """Re-queue deferred units whose reset time has passed; returns how many."""
    budget = budget or _budget()
    now = now or timezone.now()
    until = _quota_blocked_until(budget)
    if until and until > now:
        return 0
    budget.clear_block()
    due = SchoolRun.objects.filter(
        status=UnitStatus.DEFERRED, defer_until__lte=now, run__status=RunStatus.RUNNING
    )
    runs = CollectionRun.objects.filter(pk__in=due.values("run_id"))
    total = 0
    for run in runs:
        units = run.units.filter(status=UnitStatus.DEFERRED, defer_until__lte=now)
        ids = list(units.values_list("pk", flat=True))
        SchoolRun.objects.filter(pk__in=ids).update(status=UnitStatus.PENDING, defer_until=None)
        total += dispatch(run, units=SchoolRun.objects.filter(pk__in=ids), budget=budget)
    return total


def requeue_stuck(*, now: datetime.datetime | None = None, budget=None) -> int:
    """Re-send units whose message was lost: pending but queued long ago, or lease expired."""
    now = now or timezone.now()
    stale = now - datetime.timedelta(hours=settings.NEIS_TASK_EXPIRES_HOURS)
    stuck = SchoolRun.objects.filter(run__status=RunStatus.RUNNING).filter(
        Q(status=UnitStatus.RUNNING, lease_expires_at__lt=now)
        | Q(status=UnitStatus.PENDING, queued_at__lt=stale)
        | Q(status=UnitStatus.PENDING, queued_at__isnull=True)
    )
    total = 0
    for run in CollectionRun.objects.filter(pk__in=stuck.values("run_id")):
        ids = list(stuck.filter(run=run).values_list("pk", flat=True))
        total += dispatch(run, units=SchoolRun.objects.filter(pk__in=ids), budget=budget)
    return total


def retry_failed(run: CollectionRun) -> int:
    """Put a run's failed units back to pending and dispatch them; returns how many.

    A cancelled run stays cancelled: an operator who cancelled it meant it.
    """
    if run.status == RunStatus.CANCELLED:
        return 0
    ids = list(run.units.filter(status=UnitStatus.FAILED).values_list("pk", flat=True))
    if not ids:
        return 0
    SchoolRun.objects.filter(pk__in=ids).update(
        status=UnitStatus.PENDING, finished_at=None, retries=0
    )
    CollectionRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None)
    run.refresh_from_db()
    return dispatch(run, units=SchoolRun.objects.filter(pk__in=ids))


def cancel_run(run: CollectionRun) -> int:
    """Cancel the open units of a run and close it; returns how many units were cancelled."""
    cancelled = run.units.filter(status__in=[UnitStatus.PENDING, UnitStatus.DEFERRED]).update(
        status=UnitStatus.CANCELLED, finished_at=timezone.now()
    )
    CollectionRun.objects.filter(
        pk=run.pk, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    ).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
    refresh_counts(run)
    return cancelled


def run_in_process(
    run: CollectionRun,
    *,
    client: NeisClient | None = None,
    budget: RequestBudget | None = None,
    max_retries: int | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> CollectionRun:
    """Collect every unit of ``run`` in this process (``--sync``, the demo, no broker needed).

    Transient errors retry here with the same capped exponential backoff the tasks use.
    """
    budget = budget or _budget()
    client = client or NeisClient.from_settings(limiter=budget)
    max_retries = settings.NEIS_MAX_RETRIES if max_retries is None else max_retries
    CollectionRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    for unit_id in run.units.filter(status=UnitStatus.PENDING).values_list("pk", flat=True):
        for attempt in range(max_retries + 1):
            try:
                outcome = collect_unit(unit_id, client=client, budget=budget)
                break
            except NeisTransientError as exc:
                if attempt == max_retries:
                    fail_unit(unit_id, exc)
                    outcome = Outcome(unit_id, UnitStatus.FAILED, exc.code)
                    break
                time.sleep(min(settings.NEIS_RETRY_BACKOFF_MAX, 2**attempt) * 0.5)
        if progress:
            progress(outcome)
    finish_run_if_complete(run.pk)
    run.refresh_from_db()
    return run


# Rows a school serves per school week, by level, when nothing is stored yet to tell better.
ROWS_PER_WEEK = {"elementary": 560, "middle": 600, "high": 750, "special": 300}


@dataclasses.dataclass
class Plan:
    """What a run would fetch, without fetching: for ``--dry-run``."""

    levels: list[str]
    date_from: datetime.date
    date_to: datetime.date
    schools: int
    skipped: int
    by_office: dict[str, int]
    requests: int
    rows: int


def plan(
    levels: list[str],
    date_from: datetime.date,
    date_to: datetime.date,
    offices: Iterable[str] = (),
    codes: Iterable[str] = (),
    *,
    reprocess: str = Reprocess.NONE,
) -> Plan:
    """Estimate a run from the stored registry and lessons; makes no request, writes nothing."""
    window = (date_from, date_to)
    chosen = select_schools(levels, offices, codes, window=window, reprocess=reprocess)
    every = select_schools(levels, offices, codes)
    weeks = ((date_to - date_from).days + 1) / 7
    by_office: dict[str, int] = {}
    requests = rows = 0
    for office, level in chosen.values_list("office_id", "level"):
        by_office[office] = by_office.get(office, 0) + 1
        school_rows = int(ROWS_PER_WEEK.get(level, 600) * weeks)
        rows += school_rows
        requests += max(1, -(-school_rows // settings.NEIS_PAGE_SIZE))
    count = sum(by_office.values())
    return Plan(levels, date_from, date_to, count, every.count() - count, by_office, requests, rows)
