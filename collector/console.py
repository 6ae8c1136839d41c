"""What the operations console shows, as plain functions over the ledger (no admin here).

- ``progress``: each run's counts as they are now. A run's count fields are written when it
  closes (and by "recount"), so an open run's stored counts say 0 done until its very end;
  open runs are counted from the ledger instead, all of a page's in one grouped query.
- ``quota``: the request budget's state per key (by ``limiter.key_id``, never the key): its
  requests today against the daily cap ``collector.quota`` plans with.
- ``kst``: every moment shown to an operator, in Seoul time with its zone.
"""

from __future__ import annotations

import dataclasses
import datetime

from django.db import connection
from django.db.models import Count

from collector import clock
from collector import quota as quota_module
from collector.completeness import SchoolWeek
from collector.ledger import CollectionRun, LatestUnit, RunLevel, SchoolRun, UnitStatus
from collector.limiter import api_keys, budget_from_settings, key_id
from collector.models import Office, School

# Bar segments, in drawing order, and their labels.
SEGMENTS = (
    (UnitStatus.DONE, "done"),
    (UnitStatus.NO_DATA, "no data"),
    (UnitStatus.DEFERRED, "deferred"),
    (UnitStatus.FAILED, "failed"),
    (UnitStatus.RUNNING, "running"),
    (UnitStatus.PENDING, "pending"),
    (UnitStatus.CANCELLED, "cancelled"),
)


def kst(moment: datetime.datetime | None, seconds: bool = False) -> str:
    """``2026-11-21 10:00 KST``; '' for None."""
    if moment is None:
        return ""
    return clock.in_seoul(moment).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "")) + " KST"


def kst_time(moment: datetime.datetime | None) -> str:
    """``10:00 KST``, the time of day only; '' for None."""
    return clock.in_seoul(moment).strftime("%H:%M KST") if moment else ""


def duration(delta: datetime.timedelta | None) -> str:
    """``2 h 05 min``, ``4 min 10 s`` or ``12 s``; '' for None."""
    if delta is None:
        return ""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours:,} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def stored_counts(run: CollectionRun) -> dict[str, int]:
    """A closed run's counts as its fields hold them, in the shape of ``counts_by_run``."""
    counts = {f"units_{status}": 0 for status in UnitStatus.values}
    for name in (
        "units_total",
        "units_done",
        "units_no_data",
        "units_deferred",
        "units_failed",
        "requests",
        "rows_fetched",
        "rows_inserted",
        "rows_updated",
        "rows_unchanged",
        "rows_removed",
    ):
        counts[name] = getattr(run, name)
    settled = sum(counts[f"units_{s}"] for s in ("done", "no_data", "deferred", "failed"))
    # A closed run has nothing open; what is neither counted nor settled was cancelled.
    counts["units_cancelled"] = max(0, counts["units_total"] - settled)
    return counts


@dataclasses.dataclass
class Progress:
    """One run's counts at ``now``: ``live`` when read from the ledger (the run is open)."""

    run: CollectionRun
    counts: dict[str, int]
    live: bool
    now: datetime.datetime

    @property
    def total(self) -> int:
        return self.counts["units_total"]

    def n(self, status: str) -> int:
        return self.counts[f"units_{status}"]

    @property
    def settled(self) -> int:
        """Units that reached an outcome: done, no data or failed."""
        return sum(self.n(s) for s in (UnitStatus.DONE, UnitStatus.NO_DATA, UnitStatus.FAILED))

    @property
    def open(self) -> int:
        return self.n(UnitStatus.PENDING) + self.n(UnitStatus.RUNNING)

    def segments(self) -> list[dict]:
        total = self.total
        return [
            {
                "status": status.value,
                "label": label,
                "n": self.n(status),
                "pct": 100 * self.n(status) / total if total else 0,
            }
            for status, label in SEGMENTS
            if self.n(status)
        ]

    @property
    def percent(self) -> float:
        """Share of units settled (done, no data, failed)."""
        return 100 * self.settled / self.total if self.total else 0.0

    @property
    def elapsed(self) -> datetime.timedelta | None:
        if not self.run.started_at:
            return None
        return (self.run.finished_at or self.now) - self.run.started_at

    @property
    def eta(self) -> datetime.datetime | None:
        """When the open units should be done at the pace so far; None when not knowable.

        Deferred units are left out: they wait for the quota reset, not for the workers.
        """
        elapsed = self.elapsed
        if not self.live or not self.open or not self.settled or not elapsed:
            return None
        per_unit = elapsed.total_seconds() / self.settled
        return self.now + datetime.timedelta(seconds=per_unit * self.open)

    def summary(self) -> str:
        """``1,204 of 3,069 schools settled (39%)``."""
        return f"{self.settled:,} of {self.total:,} schools settled ({self.percent:.0f}%)"


def progress(runs) -> dict[int, Progress]:
    """Each run's ``Progress``: open runs counted from the ledger (one query for all of them),
    closed runs from their stored counts. Returns an empty dict for no runs."""
    runs = list(runs)
    now = clock.now()
    open_ids = [run.pk for run in runs if run.is_open]
    live = SchoolRun.objects.filter(run_id__in=open_ids).counts_by_run() if open_ids else {}
    found = {}
    for run in runs:
        if run.is_open:
            counts = live.get(run.pk) or stored_counts(run) | {"units_total": 0}
            found[run.pk] = Progress(run, counts, True, now)
        else:
            found[run.pk] = Progress(run, stored_counts(run), False, now)
    return found


def estimated_lessons() -> int | None:
    """The planner's row estimate over every lesson partition (PostgreSQL), else None."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'collector_lesson'::regclass"
        )
        return cursor.fetchone()[0]


# --- The request budget ----------------------------------------------------------------------


@dataclasses.dataclass
class KeyState:
    key: str  # limiter.key_id: a short hash, never the key
    blocked_until: datetime.datetime | None
    rejection: tuple[str, str] | None
    error: str = ""
    requests_today: int | None = None  # requests started with the key this quota day
    plan: quota_module.KeyPlan | None = None  # its daily cap and budget (collector.quota)

    @property
    def blocked_kst(self) -> str:
        return kst(self.blocked_until)

    @property
    def left_today(self) -> int | None:
        """Requests the plan may still spend with the key today."""
        if self.plan is None or self.requests_today is None:
            return None
        return max(0, self.plan.budget - self.requests_today)


def quota() -> list[KeyState]:
    """Every configured key's budget state: requests today against its daily cap (observed or
    configured, ``collector.quota``), the quota block and a refusal by NEIS, if any.

    A budget store that cannot be read (Redis away) is reported, not raised: the console must
    still open when the thing it would warn about is down.
    """
    keys = api_keys()
    try:
        plans = {plan.key: plan for plan in quota_module.plan_for([key_id(k) for k in keys])}
    except Exception:  # the table may be missing before migrate
        plans = {}
    states = []
    for key in keys:
        plan = plans.get(key_id(key))
        try:
            budget = budget_from_settings(key)
            blocked = budget.blocked_until()
            rejection = budget.rejection()
            used = budget.used_today()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            states.append(KeyState(key_id(key), None, None, error=error, plan=plan))
            continue
        until = datetime.datetime.fromtimestamp(blocked, tz=datetime.UTC) if blocked else None
        states.append(KeyState(key_id(key), until, rejection, "", used, plan))
    return states


# --- Completeness by school and week -----------------------------------------------------------

# A school-week's state: its latest unit's, folded for the grid ("running" is pending or
# running), or "never" when no run covering the week has a unit of it (cancelled ones aside).
CELL_STATES = (
    ("done", "done"),
    ("partial", "partial (classes or days missing)"),
    ("no_data", "no data"),
    ("deferred", "deferred (quota)"),
    ("failed", "failed"),
    ("running", "running or queued"),
    ("never", "never attempted"),
)
_FOLD = {UnitStatus.PENDING: "running", UnitStatus.RUNNING: "running"}
COMPLETE = ("done", "no_data")


def week_runs(weeks: list[datetime.date], level: str) -> dict[datetime.date, list[int]]:
    """Each week's covering runs that can hold schools of ``level``, newest first."""
    if not weeks:
        return {}
    runs = CollectionRun.objects.filter(
        date_from__lte=max(weeks), date_to__gte=min(weeks) + datetime.timedelta(days=4)
    )
    if level != RunLevel.ALL:
        runs = runs.filter(level__in=[level, RunLevel.ALL])
    runs = list(runs.order_by("-created_at", "-pk").values_list("pk", "date_from", "date_to"))
    return {
        week: [
            pk
            for pk, first, last in runs
            if first <= week and last >= week + datetime.timedelta(days=4)
        ]
        for week in weeks
    }


def latest_states_sql(
    covering: dict[datetime.date, list[int]],
    level: str,
    office: str | None,
    *,
    active_only: bool = True,
) -> tuple[str, list]:
    """SQL (with its parameters) of each active school's latest unit per week: rows
    ``(week, school_id, status, unit_id, office_id, monday)``, ``week`` the index of the week
    in ``covering`` and ``monday`` the week itself.

    On PostgreSQL the database keeps each school-week's latest unit (``LatestUnit``): the
    weeks' rows are read from its index, a few hundred thousand units never sorted (for one
    level, only the rows of that level's runs count: ``_of_level_runs``). Elsewhere
    (SQLite) each week's covering runs are known here, newest first, so a school's latest
    unit is the one of the first of those runs that holds it (cancelled units aside), which a
    window function picks.
    """
    weeks = [(index, runs) for index, runs in enumerate(covering.values()) if runs]
    if not weeks:
        empty = (
            "SELECT 0 AS week, 0 AS school_id, '' AS status, 0 AS unit_id, '' AS office_id, "
            "CAST(NULL AS date) AS monday"
        )
        return f"{empty} WHERE 1 = 0", []
    cancelled = UnitStatus.CANCELLED.value
    params: list = []
    if LatestUnit.kept():
        # A week without a covering run (of the level) has no latest unit: it is left out.
        mondays = list(covering)
        weeks_params = [mondays, [mondays[index] for index, _ in weeks]]
        latest = (
            "SELECT array_position(%s::date[], l.monday) - 1 AS week, l.school_id, l.status, "
            f"l.unit_id, l.monday, l.run_id FROM {LatestUnit._meta.db_table} l "
            "WHERE l.monday = ANY(%s::date[])"
        )
        params += weeks_params
        other = _other_levels_runs(covering, level)
        if other:
            latest = _of_level_runs(latest, weeks_params, other, weeks, level, params)
    else:
        values = []
        mondays = list(covering)
        for index, runs in weeks:
            for rank, run_id in enumerate(runs):
                values.append("(%s, %s, %s, %s)")
                params += [index, run_id, rank, mondays[index]]
        params.append(cancelled)
        latest = f"""
            WITH cover(week, run_id, rnk, monday) AS (VALUES {", ".join(values)}),
            ranked AS (
                SELECT c.week, u.school_id, u.status, u.id AS unit_id, c.monday,
                       ROW_NUMBER() OVER (PARTITION BY c.week, u.school_id ORDER BY c.rnk) AS n
                FROM cover c JOIN collector_schoolrun u ON u.run_id = c.run_id
                WHERE u.status <> %s
            )
            SELECT week, school_id, status, unit_id, monday FROM ranked WHERE n = 1
        """
    # Which schools count: the active ones of the level (and office), or with ``active_only``
    # off every school. Filtering after the choice of the latest unit gives the same answer:
    # each school's choice is its own.
    where = ["1 = 1"]
    if active_only:
        where.append("s.active")
    if level != RunLevel.ALL:
        where.append("s.level = %s")
        params.append(level)
    elif active_only:
        where.append("s.level <> ''")
    if office:
        where.append("s.office_id = %s")
        params.append(office)
    sql = (
        "SELECT l.week, l.school_id, l.status, l.unit_id, s.office_id, l.monday "
        f"FROM ({latest}) l "
        f"JOIN collector_school s ON s.id = l.school_id WHERE {' AND '.join(where)}"
    )
    return sql, params


def _other_levels_runs(covering: dict[datetime.date, list[int]], level: str) -> list[int]:
    """Runs of another level than ``level`` (and not of every level) over ``covering``'s
    weeks: none for a grid of every level."""
    if level == RunLevel.ALL:
        return []
    return list(
        CollectionRun.objects.filter(
            date_from__lte=max(covering), date_to__gte=min(covering) + datetime.timedelta(days=4)
        )
        .exclude(level__in=[level, RunLevel.ALL])
        .values_list("pk", flat=True)
    )


def _of_level_runs(latest: str, weeks_params, other, weeks, level: str, params: list) -> str:
    """``latest`` (the table's rows) as a grid of one level counts them: the table holds the
    newest unit of a run of any level, the grid only runs of its level and of every level
    (``week_runs``). They differ only for a school whose level changed since a newer run of
    its old level (one of ``other``): its week goes to its unit in the newest run of the
    grid's (the ledger, read through the runs' unique index for those rows alone), or is
    left out. Two reads of the weeks' rows, each estimated from the table's statistics."""
    params += [other, *weeks_params, other, level]
    values = []
    for index, ids in weeks:
        for rank, run_id in enumerate(ids):
            values.append("(%s::int, %s::bigint, %s::int)")
            params += [index, run_id, rank]
    params.append(UnitStatus.CANCELLED.value)
    cover = ", ".join(values)
    return f"""
        {latest} AND NOT l.run_id = ANY(%s::bigint[])
        UNION ALL
        SELECT l.week, l.school_id, f.status, f.unit_id, l.monday, l.run_id
        FROM ({latest} AND l.run_id = ANY(%s::bigint[])) l
        JOIN collector_school s ON s.id = l.school_id AND s.level = %s
        CROSS JOIN LATERAL (
            SELECT u.status, u.id AS unit_id FROM (VALUES {cover}) AS c(week, run_id, rnk)
            JOIN collector_schoolrun u ON u.run_id = c.run_id AND u.school_id = l.school_id
            WHERE c.week = l.week AND u.status <> %s ORDER BY c.rnk LIMIT 1
        ) f
    """


@dataclasses.dataclass
class Coverage:
    """School-weeks by state for one level (and office): ``weeks`` (Mondays), ``offices``
    (code -> name), ``registry`` (office -> active schools), ``counts`` ((office, week) ->
    state -> n, "never" included), and for one office ``cells`` (school id -> week -> state)."""

    level: str
    weeks: list[datetime.date]
    offices: dict[str, str]
    registry: dict[str, int]
    counts: dict[tuple[str, datetime.date], dict[str, int]]
    cells: dict[int, dict[datetime.date, str]] | None = None

    def cell(self, office: str | None, week: datetime.date) -> dict:
        """Counts of one office (None: the nation) in one week, with the complete share."""
        offices = [office] if office else list(self.registry)
        counts = dict.fromkeys((state for state, _ in CELL_STATES), 0)
        for code in offices:
            for state, n in self.counts.get((code, week), {}).items():
                counts[state] += n
        total = sum(self.registry.get(code, 0) for code in offices)
        complete = sum(counts[state] for state in COMPLETE)
        return {
            "counts": counts,
            "total": total,
            "complete": complete,
            "missing": counts["never"] + counts["failed"],
            "pct": 100 * complete / total if total else 0.0,
        }


def coverage(level: str, weeks: list[datetime.date], office: str | None = None) -> Coverage:
    """Which active schools of ``level`` (and ``office``) were collected in each week.

    Every active school of the registry counts: one no run ever covered is "never", and
    counts as missing. With ``office``, ``cells`` holds each school's state per week.
    """
    schools = School.objects.filter(active=True)
    schools = schools.filter(level=level) if level != RunLevel.ALL else schools.exclude(level="")
    if office:
        schools = schools.filter(office_id=office)
    registry = dict(schools.values_list("office_id").annotate(n=Count("id")).order_by("office_id"))
    offices = dict(Office.objects.values_list("code", "name"))
    covering = week_runs(weeks, level)
    sql, params = latest_states_sql(covering, level, office)
    counts: dict[tuple[str, datetime.date], dict[str, int]] = {}
    cells: dict[int, dict[datetime.date, str]] | None = None
    with connection.cursor() as cursor:
        if office:
            cursor.execute(sql, params)
            cells = {}
            for index, school_id, status, *_ in cursor.fetchall():
                cells.setdefault(school_id, {})[weeks[index]] = _FOLD.get(status, status)
            partial = SchoolWeek.objects.filter(
                school__office_id=office, monday__in=weeks, partial=True
            ).values_list("school_id", "monday")
            for school_id, monday in partial:
                states = cells.get(school_id, {})
                if states.get(monday) == UnitStatus.DONE:
                    states[monday] = "partial"
            for states in cells.values():
                for week, state in states.items():
                    bucket = counts.setdefault((office, week), {})
                    bucket[state] = bucket.get(state, 0) + 1
        else:
            # A done school-week whose classes or days fall short counts as partial.
            cursor.execute(
                "SELECT l.week, l.office_id, CASE WHEN l.status = %s AND w.id IS NOT NULL "
                f"THEN 'partial' ELSE l.status END AS state, COUNT(*) FROM ({sql}) l "
                f"LEFT JOIN {SchoolWeek._meta.db_table} w ON w.school_id = l.school_id "
                "AND w.partial = %s AND w.monday = l.monday "
                "GROUP BY l.week, l.office_id, state",
                [UnitStatus.DONE.value, *params, True],
            )
            for index, code, status, n in cursor.fetchall():
                bucket = counts.setdefault((code, weeks[index]), {})
                state = _FOLD.get(status, status)
                bucket[state] = bucket.get(state, 0) + n
    for code, total in registry.items():
        for week in weeks:
            bucket = counts.setdefault((code, week), {})
            bucket["never"] = total - sum(bucket.values())
    return Coverage(level, weeks, offices, registry, counts, cells)
