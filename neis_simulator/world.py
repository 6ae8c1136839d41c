"""The simulated NEIS world: a deterministic national data set and its ground truth.

A ``World`` is a pure function of its ``SimulatorConfig`` (seed included): it holds the
national school list and generates everything else on demand, caching recent results.
``World.query`` is the one place that decides which rows a request gets; the HTTP server
pages and encodes its answer, and tests use the same answer as ground truth, so the two
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from . import extras
from .cache import LRU
from .clock import KST, academic_year, ay_bounds, monday_of, parse_time
from .config import SimulatorConfig
from .lessons import (
    Edit,
    SchoolYear,
    build_year,
    late_classes,
    revised_week,
    versions,
    visible_version,
    week_rows,
)
from .schools import School, build_schools
from .services import SERVICES, Service
from .vocab import OFFICE_BY_CODE

ONE_DAY = datetime.timedelta(days=1)
WEEK = datetime.timedelta(days=7)


class WeekTruth(NamedTuple):
    """What one school-week holds as of a moment, from the world itself (not the wire).

    ``classes_expected`` are the classes classInfo lists for the academic year of the week's
    Friday; ``days_expected`` the week's days with lessons by the school's calendar (the
    weekdays SchoolSchedule does not mark 휴업일 or 공휴일). A published school-week serves
    every expected day and every class but those held back (``late``): it is *partial* while
    any is, and only then.
    """

    published: bool
    classes_expected: int
    classes_with_lessons: int
    days_expected: tuple[datetime.date, ...]
    days_with_lessons: tuple[datetime.date, ...]
    late: frozenset  # Klass.cols of the classes not served yet
    late_until: datetime.datetime | None  # when they will be

    @property
    def partial(self) -> bool:
        return bool(self.days_with_lessons) and bool(self.late)


_DATE_PARAMS = frozenset(
    {
        "ALL_TI_YMD",
        "TI_FROM_YMD",
        "TI_TO_YMD",
        "AA_YMD",
        "AA_FROM_YMD",
        "AA_TO_YMD",
        "MLSV_YMD",
        "MLSV_FROM_YMD",
        "MLSV_TO_YMD",
    }
)


class Result:
    """The full answer to one query before paging: rows in served order."""

    __slots__ = ("service", "rows")

    def __init__(self, service: Service, rows: list[tuple]):
        self.service = service
        self.rows = rows

    def dicts(self) -> list[dict]:
        """Rows as served in JSON: field -> string or None, in documented order."""
        fields = self.service.fields
        return [dict(zip(fields, row, strict=True)) for row in self.rows]


class Plan(NamedTuple):
    """One query as of one moment, before its rows are computed.

    ``key`` holds everything the rows depend on (the service, the honoured parameters, and
    for time-dependent services the window and the version of each school-week visible at
    that moment): two plans with equal keys have equal rows, whatever the clock said. It
    keys the world's query cache, and may key caches of anything rendered from the rows.
    """

    key: tuple
    service: Service
    compute: Callable[[], list[tuple]]
    cache: LRU

    def result(self) -> Result:
        """The query's rows, from the query cache or computed and cached."""
        found = self.cache.get(self.key)
        if found is None:
            rows = self.compute()
            found = self.cache.put(self.key, Result(self.service, rows), len(rows) + 1)
        return found


def _text(day: datetime.date | str) -> str:
    return day if isinstance(day, str) else day.strftime("%Y%m%d")


def _ymd(text: str) -> datetime.date | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _window(
    params: Mapping[str, str],
    exact: str,
    lo_key: str,
    hi_key: str,
    lo: datetime.date,
    hi: datetime.date,
):
    """Narrow [lo, hi] by an exact-date and a from/to pair of parameters; None if malformed."""
    for key in (exact, lo_key, hi_key):
        if key in params:
            day = _ymd(params[key])
            if day is None:
                return None
            if key != hi_key:
                lo = max(lo, day)
            if key != lo_key:
                hi = min(hi, day)
    return lo, hi


class World:
    """Schools, timetables and every other service's data for one seed.

    Thread-safe; generation is deterministic, so concurrent cache misses are harmless.
    """

    def __init__(self, config: SimulatorConfig | None = None):
        self.config = config or SimulatorConfig()
        self._schools = build_schools(self.config)
        self._by_code = {s.code: s for s in self._schools}
        self._years = LRU(4000)
        self._units = LRU(self.config.unit_cache_rows)
        self._results = LRU(self.config.query_cache_rows)
        self._academies: dict[str, list] = {}

    # ---- schools ---------------------------------------------------------------------

    def schools(
        self, office: str | None = None, kind: str | None = None, level: str | None = None
    ) -> list[School]:
        """Schools in schoolInfo order, optionally by office code, SCHUL_KND_SC_NM or level."""
        return [
            s
            for s in self._schools
            if (office is None or s.office.code == office)
            and (kind is None or s.kind == kind)
            and (level is None or s.level == level)
        ]

    def school(self, code: str) -> School:
        """The school with this SD_SCHUL_CODE; KeyError if there is none."""
        return self._by_code[code]

    def school_info_rows(self, **filters: str) -> list[dict]:
        """schoolInfo rows as served for these filters (none: the whole national list)."""
        return self.rows("schoolInfo", filters)

    # ---- ground truth ----------------------------------------------------------------

    def rows(self, service: str, params: Mapping[str, str], *, as_of=None) -> list[dict]:
        """Every row the hub serves for a query (all pages), as JSON dicts, in served order.

        ``as_of`` (datetime or ISO text) is the simulated time of the request; it only
        matters for time-dependent services and defaults to the configured clock.
        """
        return self.query(service, params, self._as_of(as_of)).dicts()

    def timetable(
        self,
        code: str,
        start: datetime.date | str,
        end: datetime.date | str,
        *,
        as_of,
        archive: bool = False,
    ) -> list[dict]:
        """What ``{level}Timetable`` (or its archive twin) serves for one school and range.

        Equivalent to asking with ATPT_OFCDC_SC_CODE, SD_SCHUL_CODE, TI_FROM_YMD and
        TI_TO_YMD and paging through every page; empty for a school without timetables.
        """
        school = self.school(code)
        if school.level is None:
            return []
        service = f"{school.level}Timetable" + ("bgs" if archive else "")
        params = {
            "ATPT_OFCDC_SC_CODE": school.office.code,
            "SD_SCHUL_CODE": code,
            "TI_FROM_YMD": _text(start),
            "TI_TO_YMD": _text(end),
        }
        return self.rows(service, params, as_of=as_of)

    def publications(self, code: str, monday: datetime.date) -> list[datetime.datetime]:
        """When each version of a school-week is published (first, then revisions)."""
        return [t for t, _ in versions(self.config, self.school(code), monday_of(monday))]

    def late_classes(
        self, code: str, monday: datetime.date
    ) -> tuple[datetime.datetime, frozenset] | None:
        """(when, Klass.cols of the classes) a school-week publishes after the rest of it."""
        school, monday = self.school(code), monday_of(monday)
        pubs = versions(self.config, school, monday)
        return late_classes(self.config, school, monday, pubs, lambda ay: self.year(school, ay))

    def classes(self, code: str, ay: int) -> tuple:
        """The classes (``lessons.Klass``) a school has in ``ay``: what classInfo lists."""
        sy = self.year(self.school(code), ay)
        return sy.classes if sy is not None else ()

    def school_days(self, code: str, monday: datetime.date) -> tuple[datetime.date, ...]:
        """The days of a school week with lessons by the school's calendar: its weekdays
        that are neither public holidays nor 휴업일 nor vacation (SchoolSchedule says which)."""
        school, monday = self.school(code), monday_of(monday)
        days = []
        for n in range(5):
            day = monday + n * ONE_DAY
            sy = self.year(school, academic_year(day))
            first = datetime.date(self.config.first_ay, 3, 1)
            if sy is not None and day >= first and sy.calendar.has_lessons(day):
                days.append(day)
        return tuple(days)

    def week_truth(self, code: str, monday: datetime.date, *, as_of) -> WeekTruth:
        """Expected and served classes and days of one school-week as of ``as_of``."""
        as_of, monday = self._as_of(as_of), monday_of(monday)
        school = self.school(code)
        classes = self.classes(code, academic_year(monday + 4 * ONE_DAY))
        days = self.school_days(code, monday)
        pubs = versions(self.config, school, monday)
        published = visible_version(pubs, as_of) >= 0
        late, late_until = frozenset(), None
        found = self.late_classes(code, monday)
        if published and found is not None and found[0] > as_of:
            late_until, late = found
        served = published and bool(days)
        return WeekTruth(
            published,
            len(classes),
            len(classes) - len(late) if served else 0,
            days,
            days if served else (),
            late if served else frozenset(),
            late_until if served else None,
        )

    def edits(
        self, code: str, start: datetime.date | str, end: datetime.date | str, *, since, until
    ) -> list[Edit]:
        """What revisions did to a school's timetable between two dates, between two moments.

        The edits of every revision published after ``since`` and at or before ``until``, of
        school-weeks already published at ``since`` (a week first published in between is new
        as a whole, not edited), oldest first, with their rows as served (dicts, LOAD_DTM
        included). Edits never overlap, so together they are exactly the difference between
        ``timetable(..., as_of=since)`` and ``timetable(..., as_of=until)``, save classes
        uploaded late in between (``late_classes``; none with ``late_class_rate=0``).
        """
        school = self.school(code)
        if school.level is None:
            return []
        since, until = self._as_of(since), self._as_of(until)
        first, last = _ymd(_text(start)), _ymd(_text(end))
        fields = SERVICES[f"{school.level}Timetable"].fields[:-1]  # all but LOAD_DTM

        def year_of(ay: int) -> SchoolYear | None:
            return self.year(school, ay)

        out: list[Edit] = []
        monday = monday_of(first)
        while monday <= last:
            pubs = versions(self.config, school, monday)
            old, new = visible_version(pubs, since), visible_version(pubs, until)
            if 0 <= old < new:
                for edit in revised_week(self.config, school, monday, new, year_of)[1]:
                    if edit.version > old and first <= _ymd(edit.date) <= last:
                        before, after = (
                            tuple(
                                {
                                    **dict(zip(fields, row[:-1], strict=True)),
                                    "LOAD_DTM": pubs[row[-1]][1],
                                }
                                for row in rows
                            )
                            for rows in (edit.before, edit.after)
                        )
                        out.append(dataclasses.replace(edit, before=before, after=after))
            monday += WEEK
        return out

    def archive_cutoff(self, as_of) -> int:
        """Academic years before this one are served by *Timetablebgs only."""
        cfg = self.config
        if cfg.archive_before_ay is not None:
            return cfg.archive_before_ay
        return academic_year(self._as_of(as_of).date()) - cfg.archive_lag_years

    def year(self, school: School, ay: int) -> SchoolYear | None:
        """A school's classes, calendar and weekly plans for one academic year (cached)."""
        key = (school.code, ay)
        found = self._years.get(key)
        if found is None:
            found = self._years.put(key, build_year(self.config, school, ay) or False)
        return found or None

    def weekly_lessons_estimate(self, ay: int, every: int = 1) -> int:
        """Lesson rows in one full school week nationally, from the 1st-semester plans (no
        dirt, no holidays); ``every`` > 1 samples one school in ``every`` and scales up."""
        total = 0
        for school in self._schools[::every]:
            sy = self.year(school, ay)
            if sy is not None:
                total += sum(len(day) for week in sy.plans(1) for day in week)
        return total * every

    # ---- the query engine ------------------------------------------------------------

    def query(self, service: str, params: Mapping[str, str], as_of) -> Result:
        """All rows of a query, before paging. Parameters a service does not honour, and
        empty ones, are ignored; missing required parameters give no rows (the server
        answers ERROR-300 before asking)."""
        return self.plan(service, params, as_of).result()

    def plan(self, service: str, params: Mapping[str, str], as_of) -> Plan:
        """A query made ready to run: its key now, its rows when asked (``Plan.result``)."""
        svc = SERVICES[service]
        as_of = self._as_of(as_of)
        honoured = set(svc.filters) | set(svc.required)
        if svc.name == "SchoolSchedule" and self.config.ignore_ay_on_schedule:
            honoured.discard("AY")
        if svc.level == "his" and self.config.ignore_perio_on_his:
            honoured.discard("PERIO")
        params = {k: v for k, v in params.items() if k in honoured and v != ""}
        key, compute = self._plan(svc, params, as_of)
        return Plan(key, svc, compute, self._results)

    def _as_of(self, as_of) -> datetime.datetime:
        if as_of is None:
            as_of = self.config.clock or datetime.datetime.now(KST)
        return parse_time(as_of)

    def _school_of(self, params: Mapping[str, str]) -> School | None:
        school = self._by_code.get(params.get("SD_SCHUL_CODE", ""))
        if school is None or school.office.code != params.get("ATPT_OFCDC_SC_CODE"):
            return None
        return school

    def _plan(self, svc: Service, params: dict, as_of: datetime.datetime):
        """(cache key, function computing the rows) for a query."""
        frozen = tuple(sorted(params.items()))
        name = svc.name
        if svc.level:
            return self._timetable_plan(svc, params, as_of, frozen)
        if name == "schoolInfo":
            return (name, frozen), lambda: self._filtered(
                svc, (s.info for s in self._schools), params, substring=("SCHUL_NM",)
            )
        if name in ("schoolMajorinfo", "schulAflcoinfo"):
            maker = extras.major_rows if name == "schoolMajorinfo" else extras.track_rows
            office = params.get("ATPT_OFCDC_SC_CODE")
            schools = self.schools(office=office, level="his") if office else []
            return (name, frozen), lambda: self._filtered(
                svc, (r for s in schools for r in maker(s)), params
            )
        if name == "acaInsTiInfo":
            return (name, frozen), lambda: self._filtered(
                svc,
                self._academy_list(params.get("ATPT_OFCDC_SC_CODE", "")),
                params,
                substring=("ACA_NM",),
            )
        school = self._school_of(params)
        if school is None:
            return (name, "none"), list
        if name == "mealServiceDietInfo":
            lo = datetime.date(self.config.first_ay, 3, 1)
            window = _window(
                params,
                "MLSV_YMD",
                "MLSV_FROM_YMD",
                "MLSV_TO_YMD",
                lo,
                extras.meal_horizon(self.config, as_of),
            )
            if window is None:
                return (name, "none"), list
            return (name, frozen, window), lambda: self._filtered(
                svc, extras.meal_rows(self, school, *window), params, skip=_DATE_PARAMS
            )
        publish, salt, maker = {
            "classInfo": (self.config.class_info_publish, "classinfo", extras.class_rows),
            "tiClrminfo": (self.config.class_info_publish, "classinfo", extras.classroom_rows),
            "SchoolSchedule": (self.config.schedule_publish, "schedule", extras.schedule_rows),
        }[name]
        years = extras.visible_years(self.config, school, as_of, publish, salt)
        if name == "SchoolSchedule":
            window = _window(
                params,
                "AA_YMD",
                "AA_FROM_YMD",
                "AA_TO_YMD",
                datetime.date(1900, 1, 1),
                datetime.date(2999, 12, 31),
            )
            if window is None:
                return (name, "none"), list
            lo_s, hi_s = (d.strftime("%Y%m%d") for d in window)
            ymd = svc.index("AA_YMD")
            years = [
                (ay, load)
                for ay, load in years
                if ay_bounds(ay)[0] <= window[1] and ay_bounds(ay)[1] >= window[0]
            ]
            return (name, frozen, tuple(years)), lambda: [
                r
                for r in self._filtered(
                    svc,
                    (r for ay, load in years for r in maker(self, school, ay, load)),
                    params,
                    skip=_DATE_PARAMS,
                )
                if lo_s <= r[ymd] <= hi_s
            ]
        return (name, frozen, tuple(years)), lambda: self._filtered(
            svc, (r for ay, load in years for r in maker(self, school, ay, load)), params
        )

    def _filtered(
        self,
        svc: Service,
        rows: Iterable[tuple],
        params: Mapping[str, str],
        substring: tuple = (),
        skip: frozenset = frozenset(),
    ) -> list[tuple]:
        """Rows whose fields equal the parameters (or contain them, for ``substring``)."""
        exact = [
            (svc.index(k), v)
            for k, v in params.items()
            if k in svc.fields and k not in substring and k not in skip
        ]
        contains = [(svc.index(k), v) for k, v in params.items() if k in substring]
        return [
            r
            for r in rows
            if all(r[i] == v for i, v in exact)
            and all(r[i] is not None and v in r[i] for i, v in contains)
        ]

    def _academy_list(self, office: str) -> list[tuple]:
        if office not in self._academies:
            if office not in OFFICE_BY_CODE:
                return []
            self._academies[office] = extras.academy_rows(self.config, office)
        return self._academies[office]

    # ---- timetables ------------------------------------------------------------------

    def _timetable_plan(self, svc: Service, params: dict, as_of: datetime.datetime, frozen):
        cfg = self.config
        school = self._school_of(params)
        if school is None or school.level != svc.level:
            return (svc.name, "none"), list
        cutoff = self.archive_cutoff(as_of)
        lo = datetime.date(cfg.first_ay, 3, 1)
        hi = as_of.date() + datetime.timedelta(days=cfg.horizon_days)
        if svc.archive:
            hi = min(hi, datetime.date(cutoff, 3, 1) - ONE_DAY)
        else:
            lo = max(lo, datetime.date(cutoff, 3, 1))
        window = _window(params, "ALL_TI_YMD", "TI_FROM_YMD", "TI_TO_YMD", lo, hi)
        if window is not None and "AY" in params:
            ay = int(params["AY"]) if params["AY"].isdigit() else 0
            first, last = ay_bounds(ay) if ay else (hi, lo)
            window = (max(window[0], first), min(window[1], last))
        if window is None or window[0] > window[1]:
            return (svc.name, "none"), list
        lo, hi = window
        units = []
        monday = monday_of(lo)
        while monday <= hi:
            pubs = versions(cfg, school, monday)
            v = visible_version(pubs, as_of)
            if v >= 0:
                held = late_classes(cfg, school, monday, pubs, lambda ay: self.year(school, ay))
                hidden = held[1] if held is not None and held[0] > as_of else frozenset()
                units.append((monday, v, tuple(load for _, load in pubs[: v + 1]), hidden))
            monday += WEEK
        key = (
            svc.name,
            frozen,
            lo,
            hi,
            tuple((m.toordinal(), v, bool(h)) for m, v, _, h in units),
        )
        return key, lambda: self._timetable_rows(svc, school, params, lo, hi, units)

    def _timetable_rows(self, svc: Service, school: School, params, lo, hi, units) -> list:
        cfg = self.config
        checks = [
            (svc.index(k), v)
            for k, v in params.items()
            if k in svc.fields
            and k not in _DATE_PARAMS
            and k not in ("ATPT_OFCDC_SC_CODE", "SD_SCHUL_CODE")
        ]
        pad = svc.archive and cfg.archive_pad_class
        class_at, width = svc.index("CLASS_NM"), cfg.archive_pad_width
        # A class's columns (Klass.cols) run from after ALL_TI_YMD to before PERIO.
        cols_from, cols_to = svc.index("ALL_TI_YMD") + 1, svc.index("PERIO")
        lo_s, hi_s = lo.strftime("%Y%m%d"), hi.strftime("%Y%m%d")
        out: list = []
        for monday, v, loads, hidden in units:
            rows = self._unit(school, monday, v, loads)
            if hidden:  # classes not uploaded yet
                rows = [r for r in rows if r[cols_from:cols_to] not in hidden]
            if monday < lo or monday + 4 * ONE_DAY > hi:
                rows = [r for r in rows if lo_s <= r[6] <= hi_s]
            if pad:
                rows = [(*r[:class_at], r[class_at].zfill(width), *r[class_at + 1 :]) for r in rows]
            if checks:
                rows = [r for r in rows if all(r[i] == val for i, val in checks)]
            out += rows
        return out

    def _unit(self, school: School, monday: datetime.date, v: int, loads: tuple) -> tuple:
        """Rows of version ``v`` of a school-week, LOAD_DTM included (cached); ``loads`` holds
        each version's LOAD_DTM text."""
        key = (school.code, monday.toordinal(), v)
        rows = self._units.get(key)
        if rows is None:

            def year_of(ay: int) -> SchoolYear | None:
                return self.year(school, ay)

            if v == 0:
                rows = tuple(week_rows(self.config, school, monday, year_of, loads[0]))
            else:
                work, _ = revised_week(self.config, school, monday, v, year_of)
                rows = tuple((*h[:-1], loads[h[-1]]) for h in work)
            rows = self._units.put(key, rows, len(rows) + 1)
        return rows
