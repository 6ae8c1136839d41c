"""Korean public holidays and one school's calendar for one academic year.

A school's calendar is the single source for both its timetable (which weekdays have
lessons) and its SchoolSchedule rows (공휴일, 휴업일, events), so the two always agree.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import random

from .clock import ay_bounds
from .vocab import SCHEDULE_EVENTS as EV

D = datetime.date
ONE_DAY = datetime.timedelta(days=1)

_FIXED = (
    (1, 1, "1월1일"),
    (3, 1, "3·1절"),
    (5, 5, "어린이날"),
    (6, 6, "현충일"),
    (8, 15, "광복절"),
    (10, 3, "개천절"),
    (10, 9, "한글날"),
    (12, 25, "기독탄신일"),
)

# Lunar holidays, substitute holidays (대체공휴일), election days and one-off holidays, as
# "MMDD name" lines. Years outside this table get the fixed-date holidays only.
_MOVABLE = {
    2021: """0211 설날, 0212 설날, 0213 설날, 0519 부처님오신날, 0816 대체공휴일,
             0920 추석, 0921 추석, 0922 추석, 1004 대체공휴일, 1011 대체공휴일""",
    2022: """0131 설날, 0201 설날, 0202 설날, 0309 대통령선거일, 0508 부처님오신날,
             0601 전국동시지방선거, 0909 추석, 0910 추석, 0911 추석, 0912 대체공휴일,
             1010 대체공휴일""",
    2023: """0121 설날, 0122 설날, 0123 설날, 0124 대체공휴일, 0527 부처님오신날,
             0529 대체공휴일, 0928 추석, 0929 추석, 0930 추석, 1002 임시공휴일""",
    2024: """0209 설날, 0210 설날, 0211 설날, 0212 대체공휴일, 0410 국회의원선거일,
             0506 대체공휴일, 0515 부처님오신날, 0916 추석, 0917 추석, 0918 추석,
             1001 국군의날""",
    2025: """0127 임시공휴일, 0128 설날, 0129 설날, 0130 설날, 0303 대체공휴일,
             0505 부처님오신날, 0506 대체공휴일, 0603 대통령선거일, 1005 추석, 1006 추석,
             1007 추석, 1008 대체공휴일""",
    2026: """0216 설날, 0217 설날, 0218 설날, 0302 대체공휴일, 0524 부처님오신날,
             0525 대체공휴일, 0603 전국동시지방선거, 0817 대체공휴일, 0924 추석, 0925 추석,
             0926 추석, 1005 대체공휴일""",
    2027: """0206 설날, 0207 설날, 0208 설날, 0209 대체공휴일, 0513 부처님오신날,
             0816 대체공휴일, 0914 추석, 0915 추석, 0916 추석, 1004 대체공휴일,
             1011 대체공휴일, 1227 대체공휴일""",
    2028: """0126 설날, 0127 설날, 0128 설날, 0412 국회의원선거일, 0502 부처님오신날,
             1002 추석, 1003 추석, 1004 추석""",
}

_holiday_cache: dict[int, dict[D, str]] = {}


def holidays(year: int) -> dict[D, str]:
    """Public holidays of a calendar year, date -> name."""
    found = _holiday_cache.get(year)
    if found is None:
        found = {D(year, m, d): name for m, d, name in _FIXED}
        for item in _MOVABLE.get(year, "").split(","):
            if item.strip():
                mmdd, name = item.split()
                found.setdefault(D(year, int(mmdd[:2]), int(mmdd[2:])), name)
        _holiday_cache[year] = found
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One SchoolSchedule row before it is dressed with the school's columns."""

    day: D
    kind: str  # SBTR_DD_SC_NM: 해당없음 / 휴업일 / 공휴일
    name: str  # EVENT_NM
    content: str | None  # EVENT_CNTNT
    grades: str  # which grades take part: "all", "first" or "last"


class _YearBase:
    """What every school shares in one academic year: holidays and candidate lesson days."""

    def __init__(self, ay: int):
        first, last = ay_bounds(ay)
        self.holidays = sorted(
            (d, name)
            for year in (ay, ay + 1)
            for d, name in holidays(year).items()
            if first <= d <= last
        )
        hol = {d for d, _ in self.holidays}
        days = [first + ONE_DAY * i for i in range((last - first).days + 1)]
        # Weekdays that are not public holidays: the only days that can have lessons.
        self.candidates = [d.toordinal() for d in days if d.weekday() < 5 and d not in hol]
        self.saturdays = [d for d in days if d.weekday() == 5 and d not in hol]

    def between(self, lo: D, hi: D) -> list[int]:
        """Candidate lesson days in [lo, hi], as ordinals."""
        c = self.candidates
        return c[bisect.bisect_left(c, lo.toordinal()) : bisect.bisect_right(c, hi.toordinal())]

    def pick(self, rng: random.Random, lo: D, hi: D) -> D:
        """A random candidate lesson day in [lo, hi]; ``lo`` itself if there is none."""
        days = self.between(lo, hi)
        return D.fromordinal(rng.choice(days)) if days else lo

    def next_day(self, day: D) -> D:
        """The first candidate lesson day on or after ``day``."""
        c = self.candidates
        i = bisect.bisect_left(c, day.toordinal())
        return D.fromordinal(c[min(i, len(c) - 1)])

    def prev_day(self, day: D) -> D:
        c = self.candidates
        i = bisect.bisect_right(c, day.toordinal()) - 1
        return D.fromordinal(c[max(i, 0)])


_year_bases: dict[int, _YearBase] = {}


def _year_base(ay: int) -> _YearBase:
    base = _year_bases.get(ay)
    if base is None:
        base = _year_bases[ay] = _YearBase(ay)
    return base


class SchoolCalendar:
    """Which days of one academic year have lessons at one school, and its events.

    ``events()`` (the SchoolSchedule rows) is built on first use: timetables only need
    ``school_days``.
    """

    __slots__ = (
        "ay",
        "school_days",
        "_base",
        "_vacations",
        "_off",
        "_notes",
        "_saturdays",
        "_holiday_label",
        "_events",
    )

    def __init__(self, ay, school_days, base, vacations, off, notes, saturdays, holiday_label):
        self.ay = ay
        self.school_days: frozenset[int] = school_days  # date ordinals with lessons
        self._base, self._vacations, self._off, self._notes = base, vacations, off, notes
        self._saturdays, self._holiday_label = saturdays, holiday_label
        self._events: tuple[Event, ...] | None = None

    def has_lessons(self, day: D) -> bool:
        return day.toordinal() in self.school_days

    def events(self) -> tuple[Event, ...]:
        """SchoolSchedule rows of the year, sorted by day."""
        if self._events is None:
            base = self._base
            out = [Event(d, self._holiday_label, name, None, "all") for d, name in base.holidays]
            if self._saturdays:
                out += [Event(d, "휴업일", EV["saturday"], None, "all") for d in base.saturdays]
            out += [Event(d, "휴업일", name, None, "all") for d, name in self._off.items()]
            for lo, hi, name in self._vacations:
                out += [
                    Event(D.fromordinal(o), "휴업일", name, None, "all")
                    for o in base.between(lo, hi)
                    if D.fromordinal(o) not in self._off
                ]
            out += [
                Event(d, "해당없음", name, None, grades)
                for d, name, grades in self._notes
                if d.toordinal() in self.school_days
            ]
            out.sort(key=lambda e: e.day)
            self._events = tuple(out)
        return self._events


def build_calendar(
    rng: random.Random,
    ay: int,
    *,
    level: str,
    memorial: tuple[int, int],
    early_year_end: bool,
    discretionary: tuple[int, int],
    saturday_rows: bool,
    holiday_label: str,
) -> SchoolCalendar:
    """Draw one school's calendar for ``ay`` (vacations, 휴업일, events) from ``rng``."""
    base = _year_base(ay)
    _, last = ay_bounds(ay)
    nxt = ay + 1
    opening = base.next_day(D(ay, 3, 2))
    summer_from = base.pick(rng, D(ay, 7, 17), D(ay, 7, 26))
    resume = base.next_day(base.pick(rng, D(ay, 8, 12), D(ay, 8, 24)))
    # Vacation ranges: (first day, last day, event name); lessons happen only in the gaps.
    vacations = [(summer_from, resume - ONE_DAY, EV["summer"])]
    if early_year_end:
        year_end = base.pick(rng, D(nxt, 1, 3), D(nxt, 1, 10))
        winter_start = year_end
        vacations.append((year_end + ONE_DAY, last, EV["year_break"]))
    else:
        winter_from = base.pick(rng, D(ay, 12, 26), D(ay, 12, 31))
        back = base.next_day(base.pick(rng, D(nxt, 1, 29), D(nxt, 2, 6)))
        year_end = base.pick(rng, back + ONE_DAY * 5, back + ONE_DAY * 12)
        winter_start = base.prev_day(winter_from - ONE_DAY)
        vacations.append((winter_from, back - ONE_DAY, EV["winter"]))
        vacations.append((year_end + ONE_DAY, last, EV["spring"]))
    term = set(base.between(opening, year_end))
    for lo, hi, _ in vacations:
        term.difference_update(base.between(lo, hi))

    # 휴업일 the school chooses: its founding day, bridge days next to holidays, then others.
    off: dict[D, str] = {}
    founding = None if memorial == (2, 29) else D(ay if memorial[0] >= 3 else nxt, *memorial)
    if founding and founding.toordinal() in term:
        off[founding] = EV["founding"]
    wanted = rng.randint(*discretionary)
    bridges = []
    for day, _ in base.holidays:
        for step in (ONE_DAY, -ONE_DAY):
            near, beyond = day + step, day + 2 * step
            if near.toordinal() in term and beyond.weekday() >= 5:
                bridges.append(near)
    rng.shuffle(bridges)
    for day in bridges:
        if len(off) >= wanted:
            break
        off.setdefault(day, EV["discretionary"])
    for _ in range(200):
        if len(off) >= wanted:
            break
        day = D(ay, rng.choice((5, 6, 10, 11)), rng.randint(1, 28))
        if day.toordinal() in term:
            off.setdefault(day, EV["discretionary"])
    school_days = frozenset(term.difference(d.toordinal() for d in off))

    notes = [
        (opening, EV["open"], "first"),
        (opening, EV["start"], "all"),
        (base.prev_day(summer_from - ONE_DAY), EV["summer_start"], "all"),
        (resume, EV["resume"], "all"),
        (winter_start, EV["winter_start"], "all"),
        (year_end, EV["year_end"], "all"),
        (year_end, EV["graduation"], "last"),
    ]
    if level in ("mis", "his"):
        for lo, hi, key in (
            ((4, 22), (4, 30), "midterm"),
            ((7, 1), (7, 10), "final"),
            ((10, 5), (10, 20), "midterm2"),
            ((12, 1), (12, 12), "final2"),
        ):
            start = base.pick(rng, D(ay, *lo), D(ay, *hi))
            notes += [(start + ONE_DAY * i, EV[key], "all") for i in range(3)]
    else:
        notes.append((base.pick(rng, D(ay, 5, 7), D(ay, 5, 28)), EV["field_trip"], "all"))
        notes.append((base.pick(rng, D(ay, 9, 20), D(ay, 10, 20)), EV["sports"], "all"))
    return SchoolCalendar(
        ay, school_days, base, tuple(vacations), off, tuple(notes), saturday_rows, holiday_label
    )
