"""The collection pipeline as plain functions: Celery tasks and commands are thin wrappers.

It orchestrates; the ledger (``collector.ledger``) owns every change of state. A run goes::

    create_run      validate the request, refresh the school registry if stale, one unit per
                    school (refused, with the reason, when it would select no school)
    dispatch        send one collect message per pending unit, or defer them all while the
                    key's daily quota is spent
    collect_unit    claim the unit, fetch every page, store the lessons and the unit's counts
                    in one transaction, close the run if this was its last open unit
    resume_deferred after the quota reset or a NEIS outage, put deferred units back in the
                    queue (while NEIS is down, one at a time as the breaker's probe)
    requeue_stuck   re-send units whose message or worker was lost (the watchdog)

This module never imports the Celery layer: messages go out by task name through a sender
(``send_collect`` by default; commands and tests may pass their own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import OuterRef, Subquery

from collector import clock, quota, registry
from collector.broker import queue_depth
from collector.completeness import SchoolWeek, school_weeks
from collector.ledger import (
    OPEN,
    OPEN_RUN,
    CollectionRun,
    RunStatus,
    SchoolRun,
    Trigger,
    UnitStatus,
    lease_length,
)
from collector.levels import levels_of
from collector.limiter import REJECTION_SECONDS, KeyPool, RequestBudget, as_pool
from collector.models import Office, School
from collector.neis.client import NeisClient
from collector.neis.errors import (
    NeisError,
    NeisKeyError,
    NeisPermanentError,
    NeisQuotaError,
    NeisTransientError,
)
from collector.neis.records import Level
from collector.retry import RetryPolicy
from collector.storage import Observer, known_answer, store_lessons

log = logging.getLogger(__name__)

# The collect task's name: the one thing this layer knows of the Celery layer.
COLLECT_TASK = "collector.collect_school"
# The ledger's code for a unit deferred because NEIS is down for every school (the breaker).
NEIS_DOWN = "NEIS-DOWN"


class PipelineError(ValueError):
    """A request the pipeline refuses: bad level or window, unknown office or school, or one
    that would select no school. The message says which, in one line."""


class RetryLater(Exception):
    """A unit failed transiently and goes back to pending: try it again after ``countdown``
    seconds. ``error`` is the NEIS error it met."""

    def __init__(self, error: NeisTransientError, countdown: float):
        super().__init__(f"{error} (retry in {countdown:.1f} s)")
        self.error = error
        self.countdown = countdown


@dataclasses.dataclass
class Outcome:
    """What one attempt at a unit did; the task returns it as a small dict."""

    unit_id: int
    status: str
    detail: str = ""
    rows: int = 0
    # True when this attempt found NEIS answering after the breaker had opened: the caller
    # resumes the units that wait for it (``resume_deferred``).
    reopened: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- Creating a run -------------------------------------------------------------------------


def check_levels(level: str) -> list[Level]:
    """The levels a run of ``level`` collects; PipelineError for an unknown one."""
    try:
        return levels_of(level)
    except ValueError as exc:
        raise PipelineError(str(exc)) from None


def validate_window(date_from: datetime.date, date_to: datetime.date) -> None:
    if date_from > date_to:
        raise PipelineError(f"the window starts ({date_from}) after it ends ({date_to})")
    days = (date_to - date_from).days + 1
    if days > settings.NEIS_MAX_WINDOW_DAYS:
        raise PipelineError(
            f"the window is {days} days long; the maximum is {settings.NEIS_MAX_WINDOW_DAYS} "
            "(NEIS_MAX_WINDOW_DAYS); split it into several runs"
        )


def check_offices(offices: Iterable[str]) -> None:
    unknown = Office.objects.unknown(offices)
    if unknown:
        known = ", ".join(Office.objects.values_list("code", flat=True))
        raise PipelineError(f"unknown office code(s): {', '.join(unknown)}; known: {known}")


def check_schools(codes: Iterable[str], levels: list[Level], offices: Iterable[str] = ()) -> None:
    """PipelineError unless every code is a known school of the levels and offices asked for."""
    codes = sorted(set(codes))
    if not codes:
        return
    found = dict(
        School.objects.filter(code__in=codes).values_list("code", "level").order_by("code")
    )
    missing = [code for code in codes if code not in found]
    if missing:
        raise PipelineError(
            f"unknown school code(s): {', '.join(missing)} "
            "(run sync_schools if the registry is out of date)"
        )
    wrong = [
        f"{code} is {found[code] or 'not collected'}" for code in codes if found[code] not in levels
    ]
    if wrong:
        raise PipelineError(f"school(s) not of level {'/'.join(levels)}: {', '.join(wrong)}")
    if offices:
        elsewhere = School.objects.filter(code__in=codes).exclude(office_id__in=list(offices))
        outside = list(elsewhere.values_list("code", flat=True).order_by("code"))
        if outside:
            raise PipelineError(
                f"school(s) outside office(s) {', '.join(offices)}: {', '.join(outside)}"
            )


class Reprocess:
    """What a new run does with school-weeks an earlier run already collected."""

    NONE = "none"  # skip schools already collected (done or no data) for a covering window
    FAILED = "failed"  # only schools whose latest attempt at a covering window failed
    ALL = "all"  # every school, collected or not (idempotent, but spends quota)
    CHOICES = (NONE, FAILED, ALL)


def _covering_units(date_from: datetime.date, date_to: datetime.date):
    return SchoolRun.objects.filter(run__date_from__lte=date_from, run__date_to__gte=date_to)


def being_collected(date_from: datetime.date, date_to: datetime.date):
    """Units of open runs, not settled yet, whose window covers this one: their schools are
    being collected for it already (queued, running, or deferred until the quota resets)."""
    return _covering_units(date_from, date_to).filter(status__in=OPEN, run__status__in=OPEN_RUN)


@dataclasses.dataclass(frozen=True)
class Busy:
    """Schools a new run leaves out because an open run is collecting them for the window."""

    schools: int = 0
    runs: tuple[int, ...] = ()

    def __str__(self) -> str:
        if not self.schools:
            return ""
        runs = ", ".join(str(pk) for pk in self.runs)
        return (
            f"{self.schools:,} school{'s' if self.schools != 1 else ''} skipped: being collected "
            f"for this window by open run{'s' if len(self.runs) != 1 else ''} {runs} (a run "
            "spends no request twice; --force collects them again)"
        )


def busy_schools(schools, window: tuple[datetime.date, datetime.date]) -> Busy:
    """How many of ``schools`` (a School queryset) an open run is collecting for ``window``."""
    units = being_collected(*window).filter(school__in=schools.values("pk"))
    found = list(units.values_list("school_id", "run_id"))
    return Busy(len({school for school, _ in found}), tuple(sorted({run for _, run in found})))


def _scope(levels, offices, codes):
    schools = School.objects.filter(level__in=levels, active=True)
    if offices:
        schools = schools.filter(office_id__in=list(offices))
    if codes:
        schools = schools.filter(code__in=list(codes))
    return schools


def select_schools(
    levels: list[str],
    offices: Iterable[str] = (),
    codes: Iterable[str] = (),
    *,
    window: tuple[datetime.date, datetime.date] | None = None,
    reprocess: str = Reprocess.ALL,
    force: bool = False,
):
    """Active schools of the levels, offices and codes asked for, less what ``reprocess``
    skips and, unless ``force``, less the schools an open run is collecting for ``window``
    (``being_collected``): a second run of an open window would spend every request again."""
    if reprocess not in Reprocess.CHOICES:
        raise PipelineError(f"unknown reprocess mode {reprocess!r}")
    schools = _scope(levels, offices, codes)
    if window and not force:
        schools = schools.exclude(pk__in=being_collected(*window).values("school_id"))
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


def validate_request(
    level: str,
    date_from: datetime.date,
    date_to: datetime.date,
    offices: Iterable[str] = (),
    school_codes: Iterable[str] = (),
) -> list[Level]:
    """Check a run request before anything is fetched or written; returns its levels.

    Raises PipelineError for an unknown level or office, a bad window, or a school code the
    registry does not know as a school of that level (and office). Commands, tasks and the
    admin all go through this (``create_run`` calls it).
    """
    levels = check_levels(level)
    validate_window(date_from, date_to)
    check_offices(offices)
    check_schools(school_codes, levels, offices)
    return levels


def schedule_key(
    level: str, offices: Iterable[str], date_from: datetime.date, date_to: datetime.date
) -> str:
    """The trigger key of a scheduled run: its level, offices and window. A second firing
    for the same key is refused (``CollectionRun.trigger_key`` is unique)."""
    scope = ",".join(sorted(offices)) or "all"
    return f"schedule:{level}:{scope}:{date_from.isoformat()}:{date_to.isoformat()}"


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
    force: bool = False,
    note: str = "",
) -> CollectionRun:
    """Create a run and its ledger rows; refresh the school registry first if it is stale.

    Returns the run (status pending) with one unit per active school of the level(s),
    office(s) and school code(s) asked for, less those an open run is collecting for the same
    window unless ``force`` (``run.busy`` says how many and which runs; it is not stored).
    Raises PipelineError, having written nothing and spent no request, when the request is
    invalid (``validate_request``), and after the registry refresh when it would select no
    school: a run with nothing to do is refused, never recorded as done.
    """
    offices, school_codes = sorted(set(offices)), sorted(set(school_codes))
    levels = validate_request(level, date_from, date_to, offices, school_codes)
    if refresh_registry is None:
        refresh_registry = registry.is_stale(levels, offices)
    if refresh_registry:
        registry.sync_school_registry(client or registry_client(), offices=offices or None)
    with transaction.atomic():
        window = (date_from, date_to)
        schools = list(
            select_schools(
                levels, offices, school_codes, window=window, reprocess=reprocess, force=force
            ).values_list("pk", flat=True)
        )
        busy = Busy() if force else busy_schools(_scope(levels, offices, school_codes), window)
        if not schools:
            reason = _nothing_to_collect(level, offices, school_codes, reprocess)
            raise PipelineError(f"{reason}; {busy}" if busy.schools else reason)
        run = CollectionRun.objects.create(
            level=level,
            offices=offices,
            school_codes=school_codes,
            date_from=date_from,
            date_to=date_to,
            trigger=trigger,
            trigger_key=trigger_key,
            requested_by=requested_by,
            note=note,
            units_total=len(schools),
        )
        SchoolRun.objects.bulk_create(
            [SchoolRun(run=run, school_id=pk) for pk in schools], batch_size=2000
        )
    run.busy = busy
    if busy.schools:
        log.info("run %s: %s", run.pk, busy)
    return run


def registry_client() -> NeisClient:
    """A client for schoolInfo with the key that has the most left today, inside its budget:
    the registry's requests count against the key's quota like any other."""
    pool = _pool()
    budget = pool.pick() or pool.budgets[0]
    return NeisClient.from_settings(api_key=budget.api_key, limiter=budget)


def _nothing_to_collect(level, offices, codes, reprocess) -> str:
    scope = f"{level} schools" + (f" of {', '.join(offices)}" if offices else "")
    if codes:
        scope += f" among {', '.join(codes)}"
    if reprocess != Reprocess.ALL:
        return (
            f"nothing to collect: no active {scope} is left to collect for this window with "
            f"--reprocess {reprocess} (use --reprocess all to collect them again)"
        )
    return f"nothing to collect: the registry has no active {scope} (run sync_schools)"


# --- Sending work ---------------------------------------------------------------------------

Sender = Callable[[int, float], None]


def send_collect(unit_id: int, expires: float) -> None:
    """Send one collect message by task name; the broker and routes are Celery's settings."""
    from celery import current_app

    current_app.send_task(COLLECT_TASK, args=[unit_id], expires=expires)


def waiting_messages() -> int | None:
    """Collect messages waiting in the broker's queue, or None when the broker cannot say."""
    from celery import current_app

    queue = settings.CELERY_TASK_ROUTES[COLLECT_TASK]["queue"]
    try:
        with current_app.connection_for_read() as conn:
            return queue_depth(conn, queue)
    except Exception as exc:  # an unknown depth only means the watchdog waits longer
        log.warning("cannot read the depth of queue %s: %s", queue, exc)
        return None


def _pool(budget: RequestBudget | KeyPool | None = None) -> KeyPool:
    """The keys to spend requests with: ``budget`` (one key, or a pool) when given, else every
    configured key with its planned daily budget."""
    return quota.key_pool() if budget is None else as_pool(budget)


def _quota_blocked_until(pool: KeyPool) -> datetime.datetime | None:
    """When the first spent quota resets if every usable key's is spent, or None while
    requests may be made with some key."""
    blocked = pool.blocked_until()
    return datetime.datetime.fromtimestamp(blocked, tz=datetime.UTC) if blocked else None


def dispatch(
    run: CollectionRun,
    *,
    units=None,
    budget: RequestBudget | KeyPool | None = None,
    send: Sender | None = None,
) -> int:
    """Send one collect message per pending unit of ``run``; returns how many were sent.

    While every key's daily quota is spent nothing is sent: the units are deferred until the
    reset instead, and ``resume_deferred`` sends them then. When NEIS refused every key the
    units fail untried. ``send`` defaults to ``send_collect``.
    """
    send = send_collect if send is None else send
    units = units if units is not None else run.units.all()
    pending = units.filter(status=UnitStatus.PENDING)
    unit_ids = list(pending.values_list("pk", flat=True))
    run.start()
    if not unit_ids:
        run.close_if_complete()
        return 0
    pool = _pool(budget)
    if _fail_for_rejected_key(run, pool, SchoolRun.objects.filter(pk__in=unit_ids)):
        return 0
    until = _quota_blocked_until(pool)
    if until:
        SchoolRun.objects.filter(pk__in=unit_ids).defer_pending(until)
        return 0
    SchoolRun.objects.filter(pk__in=unit_ids).mark_queued(clock.now())
    expires = settings.NEIS_TASK_EXPIRES_HOURS * 3600
    for unit_id in unit_ids:
        send(unit_id, expires)
    return len(unit_ids)


# --- Collecting one unit --------------------------------------------------------------------


def collect_unit(
    unit_id: int,
    *,
    task_id: str = "",
    client: NeisClient | None = None,
    budget: RequestBudget | KeyPool | None = None,
    policy: RetryPolicy | None = None,
) -> Outcome:
    """Collect one school's window: fetch every page, store, record, maybe close the run.

    The request goes with the usable key that has the most requests left today
    (``KeyPool.pick``). When NEIS says that key's quota is spent (ERROR-337) or refuses it
    (ERROR-290, INFO-300), the key is set aside for every process and the school is tried at
    once with the next usable key; it is deferred only when no key is left (or failed, when
    NEIS refused them all). A ``client`` given is bound to its own key and never switched.

    A transient NEIS error is retried while ``policy`` (default: the settings') allows it:
    the unit goes back to pending and ``RetryLater`` says after how long; once the retry
    window is spent the unit fails. When the key's circuit breaker is open (NEIS is down for
    every school) the unit is deferred as ``NEIS_DOWN`` instead, until the next probe. Every
    other NEIS outcome is recorded in the ledger and returned.
    An infrastructure error (``retry.is_infrastructure_error``) leaves the unit as it was,
    claimed by this task: a retry of the same task re-claims it, and if no retry comes its
    lease runs out and the watchdog sends it again.
    """
    unit, claimed = SchoolRun.take(unit_id, task_id)
    if not claimed:
        return Outcome(unit_id, "skipped", f"unit is {unit.status}")
    run, school = unit.run, unit.school
    if not run.is_open:
        unit.cancel_claimed()
        run.close_if_complete()
        return Outcome(unit_id, UnitStatus.CANCELLED, "run is closed")

    pool = _pool(budget)
    if budget is None:  # this attempt's own budgets: their state read in one round trip
        pool.look()
    rejected = pool.rejection()
    if rejected:
        unit.fail(_untried(*rejected))
        run.close_if_complete()
        return Outcome(unit_id, UnitStatus.FAILED, rejected[0])
    until = _quota_blocked_until(pool)
    chosen = None if until else pool.pick()
    if chosen is None:
        until = until or _quota_blocked_until(pool) or clock.now() + lease_length()
        unit.defer(until, NeisQuotaError("ERROR-337", "quota spent (seen by another unit)", until))
        return Outcome(unit_id, UnitStatus.DEFERRED, f"quota spent until {until.isoformat()}")
    with heartbeat(unit):
        return _fetch_and_store(unit, run, school, client, pool, chosen, policy)


def _fetch_and_store(unit, run, school, client, pool, budget, policy) -> Outcome:
    unit_id = unit.pk
    own_client = client is None
    while True:
        probe_at = budget.allow()
        if probe_at:  # NEIS is down and this is not the probe: wait for it with the others
            unit.defer(_moment(probe_at), _neis_down("the breaker is open", probe_at))
            return Outcome(unit_id, UnitStatus.DEFERRED, NEIS_DOWN)
        if own_client:
            client = NeisClient.from_settings(api_key=budget.api_key, limiter=budget)
        try:
            fetched = client.timetable(
                Level(school.level),
                school.office_id,
                school.code,
                run.date_from,
                run.date_to,
                peek=unit.window_answered,  # else no digest can match: decoded as they come
            )
            break
        except NeisQuotaError as exc:
            budget.block_until(exc.resets_at.timestamp())
            quota_spent(budget, exc)
            pool.look_again()  # the other keys as they are now, not as the attempt began
            budget = pool.pick() if own_client else None
            if budget is not None:
                continue  # the same school with a key that has quota left
            unit.defer(_quota_blocked_until(pool) or exc.resets_at, exc)
            return Outcome(unit_id, UnitStatus.DEFERRED, exc.code)
        except NeisKeyError as exc:
            key_refused(budget, exc)
            pool.look_again()
            budget = pool.pick() if own_client else None
            if budget is not None and not pool.rejection():
                continue
            # Every request with these keys would fail alike: fail the run's waiting units
            # now instead of spending one request per school to learn the same.
            unit.fail(exc)
            if not _fail_for_rejected_key(run, pool, run.units.all()):
                run.close_if_complete()
            return Outcome(unit_id, UnitStatus.FAILED, exc.code)
        except NeisPermanentError as exc:
            unit.fail(exc)
            run.close_if_complete()
            return Outcome(unit_id, UnitStatus.FAILED, exc.code)
        except NeisTransientError as exc:
            return _transient(unit, run, exc, budget, policy or RetryPolicy.from_settings())
    reopened = budget.record_success()
    if reopened:
        log.warning("NEIS answers again (school %s): breaker closed", school.code)

    counts = {
        "requests": fetched.requests,  # added to the unit's (earlier attempts' are kept)
        "pages": fetched.pages,
        "list_total_count": fetched.list_total_count,
        "rows_missing": fetched.missing,
    }
    try:
        return _store(unit, run, school, fetched, counts, reopened)
    except NeisTransientError as exc:  # a page json refuses, found once its rows were read
        return _transient(unit, run, exc, budget, policy or RetryPolicy.from_settings())


def _store(unit, run, school, fetched, counts, reopened) -> Outcome:
    unit_id = unit.pk
    with transaction.atomic():
        # An answer whose window was last merged from the same bytes is known before any row
        # is decoded or converted: most of a weekly run costs a hash and this one look, and
        # no lock on the unit either: nothing is written but the unit's counts, by
        # ``finish``, which moves the unit only while this attempt holds its claim.
        # A window with no digest when its unit was taken (a first load) has none to match:
        # not looked for (the school's lock and a query), and store_lessons merges as it
        # would (a digest stored meanwhile by another attempt only costs that a merge).
        stored = None
        if fetched.received and unit.window_answered:
            stored = known_answer(school, run.date_from, run.date_to, fetched.digest)
        if stored is None:
            fetched.check()  # NeisTransientError: rolled back, and retried as any other
            if not unit.lock_claim():
                return Outcome(unit_id, "superseded")  # another attempt took the unit over
        if stored is None and fetched.rows:
            stored = store_lessons(
                school,
                run.date_from,
                run.date_to,
                fetched.rows,
                history=Observer(run_id=run.pk, unit_id=unit_id),
                digest=fetched.digest,
                unknown=True,  # known_answer said None just now, or there was none to ask
                savepoint=False,  # any failure rolls back this whole transaction
            )
        if stored is not None:
            counts.update(
                rows_inserted=stored.inserted,
                rows_updated=stored.updated,
                rows_unchanged=stored.unchanged,
                rows_removed=stored.removed,
            )
        # Records: what the rows converted to, or what they converted to when last merged.
        records = stored.stored + stored.collapsed if stored is not None else 0
        status = UnitStatus.DONE if records else UnitStatus.NO_DATA
        # An empty answer never deletes stored lessons: INFO-200 means "not (yet) there".
        if not unit.finish(status, rows_fetched=records, **counts):
            return Outcome(unit_id, "superseded")  # (only when known: no lesson was written)
        if records:  # its weeks' classes and days, counted with the lessons they count
            weeks = school_weeks(run.date_from, run.date_to)
            SchoolWeek.objects.recount_school(school.pk, weeks, stored, savepoint=False)
    if fetched.missing:
        log.warning(
            "school %s: NEIS announced %s rows but served %s",
            school.code,
            fetched.list_total_count,
            fetched.received,
        )
    run.close_if_complete()
    return Outcome(unit_id, status, rows=records, reopened=reopened)


def _transient(unit, run, exc: NeisTransientError, budget, policy: RetryPolicy) -> Outcome:
    """A transient failure: defer the unit if NEIS is down for everyone, else retry it after a
    backoff (raising ``RetryLater``) until the policy's window is spent, then fail it."""
    probe_at = budget.record_failure()
    if probe_at:
        unit.defer(_moment(probe_at), _neis_down(str(exc), probe_at))
        log.warning("NEIS is down (%s); school %s waits for the next probe", exc, unit.school.code)
        return Outcome(unit.pk, UnitStatus.DEFERRED, NEIS_DOWN)
    now = clock.now()
    if policy.exhausted(unit.retries, unit.failing_for(now)):
        unit.fail(exc)
        run.close_if_complete()
        return Outcome(unit.pk, UnitStatus.FAILED, exc.code)
    countdown = policy.countdown(unit.retries)
    unit.release(exc, due=now + datetime.timedelta(seconds=countdown))
    raise RetryLater(exc, countdown)


def key_refused(budget: RequestBudget, exc: NeisKeyError) -> None:
    """NEIS refused the key (ERROR-290, INFO-300): out of rotation for every process for
    ``limiter.REJECTION_SECONDS`` (the console's quota panel says so), loudly."""
    budget.reject(exc.code, exc.message)
    log.error(
        "key %s refused by NEIS (%s: %s): out of rotation for %s s; other keys go on",
        budget.key,
        exc.code,
        exc.message,
        REJECTION_SECONDS,
    )


def quota_spent(budget: RequestBudget, exc: NeisQuotaError) -> None:
    """NEIS said the key's daily quota is spent: record the count it came at (the observed
    cap) and write the day's history now, not at the next watchdog."""
    cap = budget.note_quota_hit()
    log.warning(
        "key %s: daily quota spent (ERROR-337) after %s requests today; blocked until %s",
        budget.key,
        cap,
        exc.resets_at.isoformat(),
    )
    try:
        quota.flush_key(budget)
    except Exception as error:  # the watchdog writes it a minute later
        log.warning("key %s: quota history not written: %s", budget.key, error)


def _moment(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)


def _neis_down(reason: str, probe_at: float) -> NeisError:
    return NeisError(
        NEIS_DOWN,
        f"NEIS is down for every school ({reason}); waiting for a probe at "
        f"{_moment(probe_at).isoformat()}",
    )


@contextlib.contextmanager
def heartbeat(unit: SchoolRun) -> Iterator[None]:
    """Renew ``unit``'s lease every third of its length while the block runs.

    From a thread with its own database connection (``_LeaseKeeper``: one per process, for
    every unit the process is working on), so a long fetch or merge keeps its claim while a
    dead worker's claim runs out within one lease. A renewal that fails (the database
    restarting) is only logged: the worst case is that another attempt takes the unit over,
    and the token then refuses this one's result.
    """
    held = _keeper.hold(unit, lease_length().total_seconds() / 3)
    try:
        yield
    finally:
        _keeper.release(held)


class _LeaseKeeper:
    """The thread that renews the leases of the units its process is working on.

    A thread a unit cost about 160 microseconds of CPU to start and to end, for renewals
    that only a unit working longer than a third of its lease ever needs. This one is
    started once a process (again in a forked child, which has none) and sleeps until the
    first renewal falls due: holding and releasing a unit takes a lock and a dict entry, and
    wakes it only when the new unit falls due before it would wake anyway.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # In a forked child, the parent's thread does not exist and its lock may be held.
        self._changed = threading.Condition()
        self._held: dict[object, tuple[SchoolRun, float, float]] = {}  # token: unit, due, every
        self._wakes_at = math.inf
        self._every = _KEEPER_IDLE_SECONDS  # the last unit's renewal interval
        self._thread: threading.Thread | None = None

    def hold(self, unit: SchoolRun, every: float) -> object:
        token = object()
        due = time.monotonic() + every
        with self._changed:
            self._held[token] = (unit, due, every)
            self._every = every
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()
            elif due < self._wakes_at:
                self._changed.notify()
        return token

    def release(self, token: object) -> None:
        with self._changed:
            self._held.pop(token, None)

    def _due(self) -> list[tuple[object, SchoolRun]]:
        """Wait until a lease falls due; the units due, each due again ``every`` later."""
        with self._changed:
            while True:
                now = time.monotonic()
                due = [(token, unit) for token, (unit, at, _) in self._held.items() if at <= now]
                if due:
                    for token, _ in due:
                        unit, _, every = self._held[token]
                        self._held[token] = (unit, now + every, every)
                    self._wakes_at = math.inf
                    return due
                # With none held, it wakes one interval on: a unit held meanwhile falls due
                # after that, so holding it need not wake the keeper (a process works on one
                # unit at a time, and would otherwise wake it for each).
                self._wakes_at = min(
                    (at for _, at, _ in self._held.values()), default=now + self._every
                )
                self._changed.wait(self._wakes_at - now)

    def _run(self) -> None:
        while True:
            for token, unit in self._due():
                try:
                    if not unit.renew_lease():
                        self.release(token)  # superseded: nothing left to keep alive
                except DatabaseError as exc:
                    log.warning("unit %s: lease not renewed: %s", unit.pk, exc)
                except Exception:  # the keeper serves every unit of the process: it goes on
                    log.exception("unit %s: lease not renewed", unit.pk)
            connections.close_all()  # this thread's own connection, until renewals are due


# How long the keeper sleeps before any unit was held in its process.
_KEEPER_IDLE_SECONDS = 20.0
_keeper = _LeaseKeeper()


def _untried(code: str, message: str) -> NeisKeyError:
    return NeisKeyError(code, f"not tried: NEIS refused the key ({message})")


def _fail_for_rejected_key(run: CollectionRun, pool: KeyPool, units) -> bool:
    """Fail ``units`` still waiting, untried, when NEIS refused every key; True if it had."""
    rejected = pool.rejection()
    if not rejected:
        return False
    failed = units.fail_waiting(_untried(*rejected), clock.now())
    log.error(
        "NEIS refused the key (%s); %s waiting schools of run %s failed untried",
        rejected[0],
        failed,
        run.pk,
    )
    run.close_if_complete()
    return True


def retry_due(unit_id: int, countdown: float) -> None:
    """Note when a unit's retry message falls due, so that the watchdog does not take a
    message waiting out its countdown for a lost one. Best effort: without the database,
    the unit's lease covers it."""
    due = clock.now() + datetime.timedelta(seconds=countdown)
    with contextlib.suppress(DatabaseError):
        SchoolRun.objects.filter(pk=unit_id).mark_queued(due)


def internal_error(exc: BaseException) -> NeisError:
    """How the ledger records a failure that is not a NEIS error (a bug, bad data)."""
    return NeisError("INTERNAL", f"{type(exc).__name__}: {exc}")


def fail_unit(unit_id: int, error: NeisError) -> None:
    """Record a unit as failed whoever holds it (its task's retries ran out), then close its
    run if that was the last open unit."""
    SchoolRun.fail_unclaimed(unit_id, error)
    unit = SchoolRun.objects.select_related("run").only("run").get(pk=unit_id)
    unit.run.close_if_complete()


# --- Keeping runs moving --------------------------------------------------------------------


def resume_deferred(*, now: datetime.datetime | None = None, budget=None, send=None) -> int:
    """Re-send deferred units that may go now; returns how many were sent.

    Units deferred by the quota go once its reset has passed. Units waiting for NEIS
    (``NEIS_DOWN``) go all together once the breaker has closed; while it is open, one of them
    goes when a probe is due, to find out whether NEIS is back.
    """
    pool = _pool(budget)
    now = now or clock.now()
    until = _quota_blocked_until(pool)
    if until and until > now:
        return 0
    pool.clear_block(now.timestamp())
    deferred = SchoolRun.objects.filter(status=UnitStatus.DEFERRED, run__status=RunStatus.RUNNING)
    down = deferred.filter(last_error_code=NEIS_DOWN)
    probe_at = pool.probe_at()
    if not probe_at:
        due = SchoolRun.objects.due(now) | down
    elif probe_at <= now.timestamp():
        due = deferred.filter(pk__in=down.order_by("defer_until", "pk").values("pk")[:1])
    else:
        return 0
    total = 0
    for run in CollectionRun.objects.filter(pk__in=due.values("run_id")):
        ids = list(due.filter(run=run).values_list("pk", flat=True))
        SchoolRun.objects.filter(pk__in=ids).resume()
        total += dispatch(run, units=SchoolRun.objects.filter(pk__in=ids), budget=pool, send=send)
    return total


def requeue_stuck(
    *,
    now: datetime.datetime | None = None,
    budget=None,
    send=None,
    waiting: Callable[[], int | None] = lambda: waiting_messages(),
) -> int:
    """Re-send units whose message or worker was lost (``SchoolRunQuerySet.stuck``).

    When the broker's collect queue is empty, a pending unit due more than one lease ago lost
    its message (a broker restarted without persistence, a task that failed before it could
    record anything): a worker claims a unit as soon as it starts the message, and hands a
    message only to an idle child, so a message taken but not yet claimed after a whole lease
    is gone. Otherwise only units whose message expired are re-sent. A message re-sent
    needlessly costs nothing in effect: its unit is claimed once.
    """
    now = now or clock.now()
    lost_after = lease_length() if waiting() == 0 else None
    stuck = SchoolRun.objects.stuck(now, lost_after=lost_after)
    total = 0
    for run in CollectionRun.objects.filter(pk__in=stuck.values("run_id")):
        ids = list(stuck.filter(run=run).values_list("pk", flat=True))
        SchoolRun.objects.filter(pk__in=ids).expire_leases(now)
        total += dispatch(run, units=SchoolRun.objects.filter(pk__in=ids), budget=budget, send=send)
    return total


def watchdog(*, now: datetime.datetime | None = None, send=None, **options) -> dict[str, int]:
    """Re-send lost units and close running runs that have nothing open; safe to run in
    several places at once (every transition it makes is conditional)."""
    requeued = requeue_stuck(now=now, send=send, **options)
    try:
        quota.flush()
    except Exception as exc:  # the history waits for the next minute; the rest must go on
        log.warning("quota history not written: %s", exc)
    closed = sum(
        run.close_if_complete() for run in CollectionRun.objects.filter(status=RunStatus.RUNNING)
    )
    return {"requeued": requeued, "closed": closed}


def retry_failed(run: CollectionRun, *, send=None) -> int:
    """Put a run's failed units back to pending and send them; returns how many were sent.

    A cancelled run stays cancelled (``CollectionRun.reopen_failed``).
    """
    ids = run.reopen_failed()
    if not ids:
        return 0
    return dispatch(run, units=SchoolRun.objects.filter(pk__in=ids), send=send)


# --- Calendars (classInfo, SchoolSchedule) ---------------------------------------------------

#: Most requests one calendar refresh may spend (its ``max_requests`` is checked against it).
MAX_CALENDAR_REQUESTS = 100_000


def refresh_calendars(
    levels: Iterable[str] = (),
    offices: Iterable[str] = (),
    *,
    max_requests: int = 2000,
    client: NeisClient | None = None,
    budget: RequestBudget | None = None,
) -> dict:
    """Ask classInfo and SchoolSchedule of the active schools whose answers are due
    (``completeness.due``), inside the shared request budget, at most ``max_requests``.

    Schools whose weeks are partial or miss days come first, then the rest by code. Each page
    takes a slot of the key's budget like a timetable page, and a spent quota stops the
    refresh (and blocks the key for the runs too) until the reset.
    """
    from django.db.models import Exists

    from collector.completeness import Refresh
    from collector.completeness import refresh_calendars as refresh

    if not 1 <= max_requests <= MAX_CALENDAR_REQUESTS:
        raise PipelineError(f"max_requests must be 1..{MAX_CALENDAR_REQUESTS}, got {max_requests}")
    if budget is None:  # the key with the most requests left today
        budget = _pool().pick()
        if budget is None:
            return Refresh(stopped="no key is usable (quota spent or refused)").as_dict()
    client = client or NeisClient.from_settings(api_key=budget.api_key, limiter=budget)
    schools = School.objects.filter(active=True).exclude(level="")
    if levels:
        schools = schools.filter(level__in=list(levels))
    if offices:
        schools = schools.filter(office_id__in=list(offices))
    short = SchoolWeek.objects.filter(school=OuterRef("pk"), partial=True)
    schools = schools.annotate(short=Exists(short)).order_by("-short", "code")
    # A list, not .iterator(): a server-side cursor dies with the first savepoint rolled back
    # under it (inside a caller's transaction), and closing it then aborts that transaction.
    return refresh(client, list(schools), max_requests=max_requests, budget=budget).as_dict()


# --- Collecting in this process -------------------------------------------------------------


def run_in_process(
    run: CollectionRun,
    *,
    client: NeisClient | None = None,
    budget: RequestBudget | KeyPool | None = None,
    policy: RetryPolicy | None = None,
    progress: Callable[[Outcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CollectionRun:
    """Collect every pending unit of ``run`` here (``--sync``, the demo; no broker needed).

    Transient errors retry with the same policy as the tasks (``RetryPolicy.from_settings``),
    sleeping out each countdown; a unit deferred because NEIS is down waits here for the
    breaker's next probe and tries again.
    """
    pool = _pool(budget)
    policy = policy or RetryPolicy.from_settings()
    run.start()
    for unit_id in run.units.filter(status=UnitStatus.PENDING).values_list("pk", flat=True):
        while True:
            try:
                outcome = collect_unit(unit_id, client=client, budget=pool, policy=policy)
                if outcome.detail != NEIS_DOWN:
                    break
                sleep(max(1.0, pool.probe_at() - clock.now().timestamp()))
            except RetryLater as later:
                sleep(later.countdown)
            except Exception as exc:
                # One bad school never stops the run: record why, go on with the next.
                log.exception("unit %s failed", unit_id)
                fail_unit(unit_id, internal_error(exc))
                outcome = Outcome(unit_id, UnitStatus.FAILED, "INTERNAL")
                break
        if progress:
            progress(outcome)
    run.close_if_complete()
    run.refresh_from_db()
    return run


# --- Planning -------------------------------------------------------------------------------

# Rows a school serves per school week, by level, when nothing is stored yet to tell better.
ROWS_PER_WEEK = {Level.ELEMENTARY: 560, Level.MIDDLE: 600, Level.HIGH: 750, Level.SPECIAL: 300}


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
    busy: Busy = Busy()


def plan(
    levels: list[str],
    date_from: datetime.date,
    date_to: datetime.date,
    offices: Iterable[str] = (),
    codes: Iterable[str] = (),
    *,
    reprocess: str = Reprocess.NONE,
    force: bool = False,
) -> Plan:
    """Estimate a run from the stored registry and lessons; makes no request, writes nothing."""
    window = (date_from, date_to)
    chosen = select_schools(levels, offices, codes, window=window, reprocess=reprocess, force=force)
    every = select_schools(levels, offices, codes)
    busy = Busy() if force else busy_schools(every, window)
    weeks = ((date_to - date_from).days + 1) / 7
    by_office: dict[str, int] = {}
    requests = rows = 0
    for office, level in chosen.values_list("office_id", "level"):
        by_office[office] = by_office.get(office, 0) + 1
        school_rows = int(ROWS_PER_WEEK[Level(level)] * weeks)
        rows += school_rows
        requests += max(1, -(-school_rows // settings.NEIS_PAGE_SIZE))
    count = sum(by_office.values())
    skipped = every.count() - count
    return Plan(levels, date_from, date_to, count, skipped, by_office, requests, rows, busy)
