"""Timetables: a school's classes and weekly plans per year, and its published school-weeks.

The unit of publication is a *school-week* (one school, Monday to Friday). Each has a list
of versions: the first publication and zero or more revisions, each with its own time. A
version's rows are the previous version's rows with a few edits, all stamped with the
version's LOAD_DTM. What is served "as of" time T is, per school-week, the newest version
published at or before T.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import random

from .clock import KST, academic_year, semester
from .config import SimulatorConfig
from .school_calendar import SchoolCalendar, build_calendar
from .schools import School
from .vocab import (
    ELS_SUBJECTS,
    HIS_ELECTIVES_2015,
    HIS_ELECTIVES_2022,
    HIS_G1_2015,
    HIS_G1_2022,
    HIS_G2_2015,
    HIS_G2_2022,
    HIS_G3_2015,
    HIS_G3_2022,
    HIS_NIGHT,
    HIS_VOC_COMMON,
    MIS_SECOND_LANGUAGE,
    MIS_SUBJECTS,
    SPS_GRADES,
    SPS_ROOM_PREFIX,
    SPS_SUBJECTS,
)

ONE_DAY = datetime.timedelta(days=1)
COURSE_OF_LEVEL = {"els": "초등학교", "mis": "중학교", "his": "고등학교"}
GRADES_OF_LEVEL = {"els": 6, "mis": 3, "his": 3}
_ACTIVITIES = frozenset(
    {
        "창의적 체험활동",
        "자율활동",
        "동아리활동",
        "진로활동",
        "자율·자치활동",
        "스포츠클럽",
        "주제선택",
    }
)
AY_INDEX = 4  # position of AY in every timetable row
PERIOS = tuple(str(p) for p in range(1, 13))


def uniforms(key: str, n: int) -> list[float]:
    """``n`` reproducible numbers in [0, 1) derived from ``key`` (cheaper than a Random)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8 * n).digest()
    return [int.from_bytes(digest[i : i + 8], "big") / 2**64 for i in range(0, 8 * n, 8)]


@dataclasses.dataclass(frozen=True, slots=True)
class Klass:
    """One class (학급) of one academic year."""

    grade: int
    number: int
    cols: tuple  # the row's level columns between ALL_TI_YMD and PERIO, as served
    course: str  # SCHUL_CRSE_SC_NM
    dght: str | None  # DGHT_CRSE_SC_NM
    ord: str | None  # ORD_SC_NM
    dddep: str | None  # DDDEP_NM
    clrm: str  # CLRM_NM


class SchoolYear:
    """Everything about one school in one academic year that its weeks are drawn from.

    Weekly plans are drawn per semester on first use (a November query needs only SEM 2).
    """

    __slots__ = ("ay", "calendar", "classes", "_cfg", "_school", "_plans", "_pools")

    def __init__(
        self,
        cfg: SimulatorConfig,
        school: School,
        ay: int,
        calendar: SchoolCalendar,
        classes: tuple[Klass, ...],
    ):
        self.ay, self.calendar, self.classes = ay, calendar, classes
        self._cfg, self._school = cfg, school
        self._plans: dict[int, tuple] = {}
        self._pools: dict[int, tuple[str, ...]] = {}

    def plans(self, sem: int) -> tuple:
        """class index -> weekday (0-4) -> ((PERIO, ITRT_CNTNT), ...) for a semester."""
        found = self._plans.get(sem)
        if found is None:
            found = self._plans[sem] = _semester_plans(self._cfg, self._school, self, sem)
        return found

    def pool(self, sem: int) -> tuple[str, ...]:
        """Subjects taught in a semester, written the way the school writes them."""
        found = self._pools.get(sem)
        if found is None:
            subjects = {s for week in self.plans(sem) for day in week for _, s in day}
            found = self._pools[sem] = tuple(sorted(subjects))
        return found


def _counts(n_classes: int, rng: random.Random) -> int:
    """A year's class count for a grade: the school's usual size, give or take one."""
    if n_classes <= 1:
        return 1 + (rng.random() < 0.05)
    return max(1, n_classes + rng.choice((-1, 0, 0, 0, 0, 1)))


def _classes(school: School, rng: random.Random, general_dept: str) -> tuple[Klass, ...]:
    level, out = school.level, []
    if level == "sps":
        for course in school.courses:
            prefix = SPS_ROOM_PREFIX[course]
            labelled = rng.random() < 0.5
            for g in range(1, SPS_GRADES[course] + 1):
                for c in range(1, _counts(school.size, rng) + 1):
                    clrm = f"{prefix}{g}-{c}" if labelled else str(c)
                    out.append(
                        Klass(g, c, (course, str(g), clrm, str(c)), course, None, None, None, clrm)
                    )
        return tuple(out)
    course = COURSE_OF_LEVEL[level]
    for g in range(1, GRADES_OF_LEVEL[level] + 1):
        n = _counts(school.size, rng)
        if level == "els":
            out += [
                Klass(g, c, (str(g), str(c)), course, None, None, None, str(c))
                for c in range(1, n + 1)
            ]
        elif level == "mis":
            out += [
                Klass(g, c, ("주간", str(g), str(c)), course, "주간", None, None, str(c))
                for c in range(1, n + 1)
            ]
        else:
            deps = school.departments or (("일반계", general_dept, ()),)
            n = max(n, len(deps))
            rooms = school.departments and rng.random() < 0.5
            seen: dict[str, int] = {}
            for c in range(1, n + 1):
                ord_name, dep, _ = deps[(c - 1) * len(deps) // n]
                seen[dep] = seen.get(dep, 0) + 1
                clrm = f"{dep[:2]}{g}-{seen[dep]}" if rooms else str(c)
                out.append(
                    Klass(
                        g,
                        c,
                        ("주간", ord_name, dep, str(g), clrm, str(c)),
                        course,
                        "주간",
                        ord_name,
                        dep,
                        clrm,
                    )
                )
    if level == "his" and school.night:
        for g in range(1, 4):
            out.append(
                Klass(
                    g,
                    1,
                    ("야간", "일반계", general_dept, str(g), "1", "1"),
                    course,
                    "야간",
                    "일반계",
                    general_dept,
                    "1",
                )
            )
    return tuple(out)


def _allocate(weights, total: int) -> list[str]:
    """Weekly hours per subject, proportional to ``weights``, summing to ``total``."""
    mass = sum(w for _, w in weights)
    raw = [(name, total * w / mass) for name, w in weights]
    hours = {name: int(x) for name, x in raw}
    rest = total - sum(hours.values())
    for name, _ in sorted(raw, key=lambda t: int(t[1]) - t[1])[:rest]:
        hours[name] += 1
    return [name for name, _ in weights for _ in range(hours[name])]


class _Styler:
    """How one school writes subject names (the school-level dirt), memoised."""

    def __init__(self, school: School):
        self.flags = school.flags
        self.memo: dict[tuple[str, int | None], str] = {}

    def __call__(self, subject: str, group_pos: int | None = None) -> str:
        found = self.memo.get((subject, group_pos))
        if found is not None:
            return found
        styled = subject
        if "ascii_roman" in self.flags:
            styled = styled.replace("Ⅱ", "II").replace("Ⅰ", "I")
        if "brackets" in self.flags:
            if group_pos is not None:
                styled = f"{styled}({'ABC'[group_pos]})"
            elif styled in _ACTIVITIES:
                styled = f"[창체]{styled}"
        if "dash" in self.flags:
            styled = "-" + styled
        self.memo[subject, group_pos] = styled
        return styled


def _plan(cfg: SimulatorConfig, school: School, ay: int, sem: int, k: Klass, rng: random.Random):
    """(lessons per weekday, weighted subjects, elective pool, elective periods) for a class."""
    level, electives, n_elective = school.level, (), 0
    if level == "els":
        band = "els12" if k.grade <= 2 else "els34" if k.grade <= 4 else "els56"
        weights = ELS_SUBJECTS[band[3:]]
    elif level == "mis":
        band = "mis"
        lang = MIS_SECOND_LANGUAGE[school.second_language % len(MIS_SECOND_LANGUAGE)]
        weights = MIS_SUBJECTS[k.grade] + ((lang, 1),)
    elif level == "sps":
        band = "sps_kinder" if k.course == "유치원" else "sps"
        weights = SPS_SUBJECTS[k.course]
    elif k.dght == "야간":
        band, weights = "his_night", HIS_NIGHT
    elif school.departments:
        band = "his"
        subjects = next(s for o, d, s in school.departments if d == k.dddep)
        weights = HIS_VOC_COMMON + tuple((s, 2 if k.grade == 1 else 3) for s in subjects)
    else:
        band = "his"
        new = ay >= 2024 + k.grade  # the 2022 curriculum reaches grade g in AY 2024 + g
        table = {
            1: (HIS_G1_2015, HIS_G1_2022),
            2: (HIS_G2_2015, HIS_G2_2022),
            3: (HIS_G3_2015, HIS_G3_2022),
        }[k.grade][new]
        weights = tuple((name.format(s=sem), w) for name, w in table)
        if k.grade >= 2:
            electives = HIS_ELECTIVES_2022 if new else HIS_ELECTIVES_2015
            n_elective = rng.randint(*cfg.elective_periods_per_week)
    patterns = cfg.day_patterns[band]
    return patterns[school.pattern % len(patterns)], weights, electives, n_elective


def _semester_plans(cfg: SimulatorConfig, school: School, sy: SchoolYear, sem: int) -> tuple:
    """Weekly plans of every class for one semester.

    Classes that study the same thing (same grade, course and department) share up to three
    drawn weeks; each class rotates its week's lessons by its own offset, so neighbours
    differ without drawing a week per class.
    """
    rng = random.Random(f"{cfg.seed}:plans:{school.code}:{sy.ay}:{sem}")
    style = _Styler(school)
    all_electives = "elective_rows" in school.flags
    drawn: dict[tuple, list] = collections.defaultdict(list)  # group -> its drawn weeks
    seen: collections.Counter = collections.Counter()  # group -> classes so far
    out = []
    for k in sy.classes:
        group = (k.grade, k.course, k.dght, k.dddep)
        weeks = drawn[group]
        per_day, weights, electives, n_elective = _plan(cfg, school, sy.ay, sem, k, rng)
        if len(weeks) < 3:
            items: list = [style(s) for s in _allocate(weights, sum(per_day) - n_elective)]
            for _ in range(n_elective):
                picked = rng.sample(electives, rng.randint(*cfg.elective_group_size))
                options = tuple(style(s, i) for i, s in enumerate(picked))
                items.append(options if all_electives else options[0])
            rng.shuffle(items)
            weeks.append(items)
        nth = seen[group]
        seen[group] += 1
        items = weeks[nth % len(weeks)]
        shift = (nth // len(weeks)) * 7 % len(items)
        items = items[shift:] + items[:shift]
        days, pos = [], 0
        for count in per_day:
            slots = []
            for p in range(count):
                item = items[pos + p]
                if type(item) is tuple:
                    slots += [(PERIOS[p], s) for s in item]
                else:
                    slots.append((PERIOS[p], item))
            pos += count
            days.append(tuple(slots))
        out.append(tuple(days))
    return tuple(out)


def build_year(cfg: SimulatorConfig, school: School, ay: int) -> SchoolYear | None:
    """Draw a school's classes and calendar for ``ay``; None for a school without lessons."""
    if school.level is None:
        return None
    rng = random.Random(f"{cfg.seed}:year:{school.code}:{ay}")
    cal = build_calendar(
        rng,
        ay,
        level=school.level,
        memorial=school.memorial,
        early_year_end=rng.random() < cfg.early_year_end_rate,
        discretionary=cfg.discretionary_days,
        saturday_rows=cfg.schedule_saturday_rows,
        holiday_label=cfg.schedule_holiday_label,
    )
    return SchoolYear(cfg, school, ay, cal, _classes(school, rng, general_department(school)))


def general_department(school: School) -> str:
    """DDDEP_NM of a general high school's classes ("7차일반" is seen in real 2021 data)."""
    return "7차일반" if int(school.code) % 3 == 0 else "일반과"


# ---- school-weeks ------------------------------------------------------------------------


def late_release(cfg: SimulatorConfig, school: School, ay: int) -> datetime.datetime:
    """When a late school finally uploads its 2nd semester of ``ay``."""
    u = uniforms(f"{cfg.seed}:late:{school.code}:{ay}", 2)
    lo, hi = cfg.late_second_semester_days
    start = datetime.datetime(ay, 9, 1, tzinfo=KST)
    return start + datetime.timedelta(days=lo + int(u[0] * (hi - lo + 1)), hours=10 + 8 * u[1])


def versions(cfg: SimulatorConfig, school: School, monday: datetime.date) -> tuple:
    """Publication of one school-week: ((published_at, LOAD_DTM text), ...), oldest first.

    Empty for schools that never publish. Pure function of the seed, school and week.
    """
    if school.profile == "never" or school.level is None:
        return ()
    u = uniforms(f"{cfg.seed}:pub:{school.code}:{monday.toordinal()}", 6)
    _, lo, hi = cfg.publish_profiles[school.profile]
    h0, h1 = cfg.publish_hours
    pub = datetime.datetime.combine(monday, datetime.time(), KST) + datetime.timedelta(
        days=-(lo + int(u[0] * (hi - lo + 1))), seconds=int((h0 + u[1] * (h1 - h0)) * 3600)
    )
    friday = monday + 4 * ONE_DAY
    if school.late_sem2 and semester(friday) == 2:
        pub = max(pub, late_release(cfg, school, academic_year(friday)))
    n = 2 if u[2] < cfg.second_revision_rate else 1 if u[2] < cfg.revision_rate else 0
    times = [pub]
    d0, d1 = cfg.revision_delay_days
    for i in range(n):
        times.append(times[-1] + datetime.timedelta(days=d0 + u[3 + i] * (d1 - d0)))
    fmt = "%Y%m%d%H%M%S" if u[5] < cfg.fourteen_digit_load_dtm_rate else "%Y%m%d"
    return tuple((t, t.strftime(fmt)) for t in times)


def late_classes(
    cfg: SimulatorConfig, school: School, monday: datetime.date, pubs: tuple, year_of
) -> tuple[datetime.datetime, frozenset] | None:
    """(when, the row columns of the classes) a school-week holds back past its first
    publication ``pubs[0]``; None when every class comes with the week. Classes are those
    of the academic year of the week's Friday; a class is named by its ``Klass.cols``.
    """
    if not pubs or cfg.late_class_rate <= 0:
        return None
    u = uniforms(f"{cfg.seed}:lateclass:{school.code}:{monday.toordinal()}", 3)
    if u[0] >= cfg.late_class_rate:
        return None
    sy = year_of(academic_year(monday + 4 * ONE_DAY))
    if sy is None or len(sy.classes) < 2:
        return None
    rng = random.Random(f"{cfg.seed}:lateclass:{school.code}:{monday.toordinal()}")
    lo, hi = cfg.late_classes
    count = min(len(sy.classes) - 1, lo + int(u[1] * (hi - lo + 1)))
    chosen = rng.sample(sy.classes, count)
    d0, d1 = cfg.late_class_delay_days
    when = pubs[0][0] + datetime.timedelta(days=d0 + u[2] * (d1 - d0))
    return when, frozenset(k.cols for k in chosen)


def visible_version(pubs: tuple, as_of: datetime.datetime) -> int:
    """Index of the newest version published at or before ``as_of``; -1 if none yet."""
    v = -1
    for i, (t, _) in enumerate(pubs):
        if t <= as_of:
            v = i
    return v


def _swap(slots: tuple, rng: random.Random) -> tuple:
    perios = list(dict.fromkeys(p for p, _ in slots))
    if len(perios) < 2:
        return slots
    a, b = rng.sample(perios, 2)
    by = {p: [s for q, s in slots if q == p] for p in perios}
    by[a], by[b] = by[b], by[a]
    return tuple((p, s) for p in perios for s in by[p])


def _drop_middle(slots: tuple, rng: random.Random) -> tuple:
    """Free periods: a run of middle periods that simply has no rows."""
    perios = list(dict.fromkeys(p for p, _ in slots))
    if len(perios) < 4:
        return slots
    start = rng.randint(1, len(perios) - 3)
    gone = set(perios[start : start + rng.randint(1, min(3, len(perios) - 1 - start))])
    return tuple((p, s) for p, s in slots if p not in gone)


def _spaced(subject: str, rng: random.Random) -> str:
    pick = rng.randrange(3)
    if pick == 0:
        return " " + subject
    if pick == 1:
        return subject + " "
    return subject.replace(" ", "  ", 1) if " " in subject else subject + "  "


def week_rows(
    cfg: SimulatorConfig, school: School, monday: datetime.date, year_of, last: object
) -> list:
    """First-version rows of a school-week in served order, each ending with ``last`` in
    place of LOAD_DTM (its text, or the index of the version that wrote it).

    ``year_of(ay)`` returns the school's SchoolYear (cached by the caller).
    """
    rng = random.Random(f"{cfg.seed}:unit:{school.code}:{monday.toordinal()}")
    p_null, p_ws, p_dup = cfg.null_subject_rate, cfg.whitespace_rate, cfg.duplicate_row_rate
    p_blank = p_null + p_ws
    p_swap, free = cfg.swap_day_rate, "free_periods" in school.flags
    rows: list = []
    for wd in range(5):
        day = monday + wd * ONE_DAY
        ay = academic_year(day)
        if ay < cfg.first_ay:
            continue
        sy = year_of(ay)
        if sy is None or day.toordinal() not in sy.calendar.school_days:
            continue
        pre = school.prefix + (str(ay), str(semester(day)), day.strftime("%Y%m%d"))
        plans = sy.plans(semester(day))
        for k, klass in enumerate(sy.classes):
            slots = plans[k][wd]
            if rng.random() < p_swap:
                slots = _swap(slots, rng)
            if free and rng.random() < cfg.free_period_day_rate:
                slots = _drop_middle(slots, rng)
            base = pre + klass.cols
            for perio, subject in slots:
                x = rng.random()
                if x < p_blank:
                    subject = None if x < p_null else _spaced(subject, rng)
                row = (*base, perio, subject, last)
                rows.append(row)
                if x > 1.0 - p_dup:
                    rows.append(row)
    if "unsorted" in school.flags:
        rng.shuffle(rows)
    return rows


# What a school does to a published week, one edit at a time (``SimulatorConfig.revision_kinds``):
# a subject swapped in a period, a period cancelled, a period added, a period moved to another
# classroom, NEIS reloading a whole day unchanged (only LOAD_DTM moves), a whole day removed
# (a closure, an exam day). AY and SEM never change: they follow from the date.
EDIT_KINDS = ("swap", "cancel", "add", "classroom", "reload", "day_off")
ROOMS = ("과학실", "음악실", "미술실", "컴퓨터실", "체육관", "시청각실")
# In a working row (served columns up to ITRT_CNTNT, then the index of the version that wrote
# it) of a his or sps school, CLRM_NM comes before CLASS_NM, PERIO and ITRT_CNTNT.
_CLRM = -5
_DAY_AT = 6  # ALL_TI_YMD


@dataclasses.dataclass(frozen=True)
class Edit:
    """One edit of one revision of a school-week: the rows it took away and the rows it wrote,
    as working rows (served columns without LOAD_DTM, then the writing version's index).

    A ``reload`` takes away and writes the same lessons (only the version moves); a
    ``day_off`` writes nothing.
    """

    kind: str
    version: int
    date: str  # ALL_TI_YMD
    before: tuple
    after: tuple


def revised_week(cfg: SimulatorConfig, school: School, monday: datetime.date, v: int, year_of):
    """(working rows of version ``v`` of a school-week, the edits of versions 1..``v``).

    Each edit works on a class-day (or a whole day) no earlier edit of the week touched, so the
    edits never overlap: what changed between two versions is exactly the edits in between.
    """
    rows = week_rows(cfg, school, monday, year_of, 0)
    edits: list[Edit] = []
    touched: set[tuple] = set()  # class-days (row[:-3]) edited so far
    for k in range(1, v + 1):
        rows = _revise(cfg, school, monday, k, rows, year_of, touched, edits)
    return rows, edits


def _revise(cfg, school, monday, k, rows, year_of, touched, edits) -> list:
    """Revision ``k`` (1-based): a few edits of kinds drawn by ``cfg.revision_kinds``."""
    rng = random.Random(f"{cfg.seed}:rev:{school.code}:{monday.toordinal()}:{k}")
    weights = dict(cfg.revision_kinds)
    if school.level not in ("his", "sps"):
        weights.pop("classroom", None)  # els and mis rows have no CLRM_NM
    kinds = [kind for kind in EDIT_KINDS if weights.get(kind, 0) > 0]
    if not kinds:
        return rows
    for _ in range(rng.randint(*cfg.revision_edits)):
        kind = rng.choices(kinds, [weights[kind] for kind in kinds])[0]
        if kind in ("reload", "day_off"):
            rows = _edit_day(kind, k, rows, rng, touched, edits)
        else:
            rows = _edit_period(kind, k, rows, rng, touched, edits, school, year_of)
    return rows


def _edit_day(kind, k, rows, rng, touched, edits) -> list:
    days: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        days.setdefault(row[_DAY_AT], []).append(i)
    free = sorted(day for day, at in days.items() if not any(rows[i][:-3] in touched for i in at))
    # A week never loses its last day: an empty answer is "no data", not a removal.
    if not free or (kind == "day_off" and len(days) < 2):
        return rows
    day = rng.choice(free)
    touched.update(rows[i][:-3] for i in days[day])
    before = tuple(rows[i] for i in days[day])
    if kind == "day_off":
        edits.append(Edit(kind, k, day, before, ()))
        return [row for row in rows if row[_DAY_AT] != day]
    after = tuple((*row[:-1], k) for row in before)
    edits.append(Edit(kind, k, day, before, after))
    return [(*row[:-1], k) if row[_DAY_AT] == day else row for row in rows]


def _edit_period(kind, k, rows, rng, touched, edits, school, year_of) -> list:
    class_days: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        class_days.setdefault(row[:-3], []).append(i)
    free = [cd for cd in class_days if cd not in touched]
    if not free:
        return rows
    class_day = free[rng.randrange(len(free))]
    at = class_days[class_day]
    periods: dict[str, list[int]] = {}
    for i in at:
        periods.setdefault(rows[i][-3], []).append(i)
    pool = year_of(int(class_day[AY_INDEX])).pool(int(class_day[AY_INDEX + 1]))
    if kind == "add":
        taken = {int(p) for p in periods}
        perio = next((p for p in range(1, max(taken)) if p not in taken), max(taken) + 1)
        new = (*class_day, str(perio), rng.choice(pool), k)
        touched.add(class_day)
        edits.append(Edit(kind, k, class_day[_DAY_AT], (), (new,)))
        rows = list(rows)
        if "unsorted" in school.flags:
            rows.insert(rng.randrange(len(rows) + 1), new)
        else:
            later = [i for i in at if int(rows[i][-3]) > perio]
            rows.insert(later[0] if later else at[-1] + 1, new)
        return rows
    # A period of one subject (electives sharing a period are left alone), duplicates and all.
    single = [p for p, ids in periods.items() if len({rows[i][-2] for i in ids}) == 1]
    single = [p for p in single if rows[periods[p][0]][-2] is not None]
    if not single or (kind == "cancel" and len(periods) < 2):
        return rows
    ids = periods[rng.choice(sorted(single))]
    old = rows[ids[0]]
    if kind == "cancel":
        new = None
    elif kind == "swap":
        subject = rng.choice(pool)
        if subject == old[-2]:
            subject = pool[(pool.index(subject) + 1) % len(pool)]
        if subject == old[-2]:
            return rows  # a school teaching one subject
        new = (*old[:-2], subject, k)
    else:
        room = rng.choice([r for r in ROOMS if r != old[_CLRM]])
        new = (*old[:_CLRM], room, *old[_CLRM + 1 : -1], k)
    touched.add(class_day)
    edits.append(Edit(kind, k, class_day[_DAY_AT], (old,), (new,) if new else ()))
    gone = set(ids[1:]) if new else set(ids)
    return [new if i == ids[0] and new else row for i, row in enumerate(rows) if i not in gone]
