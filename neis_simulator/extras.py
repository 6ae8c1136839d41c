"""Rows of the services around the timetables: classes, rooms, schedule, majors, meals, academies.

Each function returns row tuples in its service's field order (see ``services``), in the
order they are served. They read schools and school years through the ``World``.
"""

from __future__ import annotations

import datetime
import random

from .clock import KST, ay_bounds
from .lessons import COURSE_OF_LEVEL, GRADES_OF_LEVEL, general_department, uniforms
from .schools import School
from .vocab import (
    ACADEMY_REALMS,
    ACADEMY_WORDS,
    MEAL_DISHES,
    MEAL_NAMES,
    MEAL_SIDES,
    MEAL_SOUPS,
    NAME_STEMS,
    OFFICE_BY_CODE,
    ROAD_STEMS,
    SPS_GRADES,
)

ONE_DAY = datetime.timedelta(days=1)


def year_published(cfg, school: School, ay: int, month_day: tuple[int, int], salt: str):
    """(when an AY's yearly data of a school appears, its LOAD_DTM): a few days around a date."""
    u = uniforms(f"{cfg.seed}:{salt}:{school.code}:{ay}", 1)[0]
    day = datetime.datetime(ay, month_day[0], month_day[1], 9, tzinfo=KST)
    day += datetime.timedelta(days=int(u * 6) - 3)
    return day, day.strftime("%Y%m%d")


def visible_years(cfg, school: School, as_of, month_day, salt) -> list[tuple[int, str]]:
    """Academic years (with LOAD_DTM) whose yearly data is public at ``as_of``."""
    out = []
    for ay in range(cfg.first_ay, as_of.year + 2):
        when, load = year_published(cfg, school, ay, month_day, salt)
        if when <= as_of:
            out.append((ay, load))
    return out


def class_rows(world, school: School, ay: int, load: str) -> list[tuple]:
    sy = world.year(school, ay)
    if sy is None:
        return []
    return [
        (
            *school.prefix,
            str(ay),
            str(k.grade),
            k.dght,
            k.course,
            k.ord,
            k.dddep,
            str(k.number),
            load,
        )
        for k in sy.classes
    ]


def classroom_rows(world, school: School, ay: int, load: str) -> list[tuple]:
    sy = world.year(school, ay)
    if sy is None:
        return []
    return [
        (
            *school.prefix,
            str(ay),
            str(k.grade),
            str(sem),
            k.course,
            k.dght,
            k.ord,
            k.dddep,
            k.clrm,
            load,
        )
        for sem in (1, 2)
        for k in sy.classes
    ]


def _courses(school: School) -> list[tuple[str, str | None, int]]:
    """(SCHUL_CRSE_SC_NM, DGHT_CRSE_SC_NM, grades) the school keeps a schedule for."""
    if school.level == "sps":
        return [(c, None, SPS_GRADES[c]) for c in school.courses]
    dght = "주간" if school.level in ("mis", "his") else None
    return [(COURSE_OF_LEVEL[school.level], dght, GRADES_OF_LEVEL[school.level])]


def schedule_rows(world, school: School, ay: int, load: str) -> list[tuple]:
    sy = world.year(school, ay)
    if sy is None:
        return []
    rows = []
    courses = _courses(school)
    for ev in sy.calendar.events():
        ymd = ev.day.strftime("%Y%m%d")
        for course, dght, n in courses:
            flags = []
            for g in range(1, 7):
                if g > n:
                    flags.append("*")
                elif (
                    ev.grades == "all"
                    or (ev.grades == "first" and g == 1)
                    or (ev.grades == "last" and g == n)
                ):
                    flags.append("Y")
                else:
                    flags.append("N")
            rows.append(
                (
                    *school.prefix,
                    str(ay),
                    dght,
                    course,
                    ev.kind,
                    ymd,
                    ev.name,
                    ev.content,
                    *flags,
                    load,
                )
            )
    return rows


def structure(school: School) -> list[tuple[str, str, str]]:
    """(DGHT_CRSE_SC_NM, ORD_SC_NM, DDDEP_NM) courses of a high school."""
    if school.level != "his":
        return []
    general = general_department(school)
    out = [("주간", o, d) for o, d, _ in school.departments] or [("주간", "일반계", general)]
    if school.night:
        out.append(("야간", "일반계", general))
    return out


def major_rows(school: School) -> list[tuple]:
    load = "20250301"
    return [(*school.prefix, dght, o, d, load) for dght, o, d in structure(school)]


def track_rows(school: School) -> list[tuple]:
    seen = dict.fromkeys((dght, o) for dght, o, _ in structure(school))
    return [(*school.prefix, dght, o, "20250301") for dght, o in seen]


def meal_horizon(cfg, as_of: datetime.datetime) -> datetime.date:
    """Last day whose meals are public: next month's menus appear on a set day."""
    first = as_of.date().replace(day=1)
    months = 2 if as_of.day >= cfg.meal_publish_day else 1
    year, month = first.year + (first.month + months - 1) // 12, (first.month + months - 1) % 12 + 1
    return datetime.date(year, month, 1) - ONE_DAY


def meal_rows(world, school: School, lo: datetime.date, hi: datetime.date) -> list[tuple]:
    cfg = world.config
    dorm = school.level == "his" and uniforms(f"{cfg.seed}:dorm:{school.code}", 1)[0] < (
        cfg.dorm_meal_rate
    )
    codes = ("1", "2", "3") if dorm else ("2",)
    rows = []
    for ay in range(max(cfg.first_ay, lo.year - 1), hi.year + 1):
        sy = world.year(school, ay)
        if sy is None:
            continue
        diners = str(len(sy.classes) * 22)
        first, last = ay_bounds(ay)
        day = max(first, lo)
        while day <= min(last, hi):
            if day.toordinal() in sy.calendar.school_days:
                rows += _meals(cfg, school, day, codes, diners)
            day += ONE_DAY
    return rows


def _meals(cfg, school: School, day: datetime.date, codes, diners: str) -> list[tuple]:
    rng = random.Random(f"{cfg.seed}:meal:{school.code}:{day.toordinal()}")
    month_first = day.replace(day=1)
    month_last = (month_first + 32 * ONE_DAY).replace(day=1) - ONE_DAY
    loaded = (month_first - ONE_DAY).replace(day=cfg.meal_publish_day).strftime("%Y%m%d")
    out = []
    for code in codes:
        dishes = [rng.choice(MEAL_DISHES), rng.choice(MEAL_SOUPS), *rng.sample(MEAL_SIDES, 3)]
        marks = [
            f" ({'.'.join(str(n) for n in sorted(rng.sample(range(1, 19), 2)))}.)"
            if rng.random() < 0.7
            else ""
            for _ in dishes
        ]
        out.append(
            (
                *school.prefix,
                code,
                MEAL_NAMES[code],
                day.strftime("%Y%m%d"),
                diners,
                "<br/>".join(d + m for d, m in zip(dishes, marks, strict=True)),
                "쌀 : 국내산<br/>김치류 : 국내산<br/>고춧가루(김치류) : 국내산",
                f"{rng.uniform(480, 900):.1f} Kcal",
                f"탄수화물(g) : {rng.uniform(80, 130):.1f}"
                f"<br/>단백질(g) : {rng.uniform(20, 45):.1f}"
                f"<br/>지방(g) : {rng.uniform(12, 30):.1f}",
                month_first.strftime("%Y%m%d"),
                month_last.strftime("%Y%m%d"),
                loaded,
            )
        )
    return out


def academy_rows(cfg, office_code: str) -> list[tuple]:
    """A small, fixed list of 학원/교습소 for one office."""
    office = OFFICE_BY_CODE[office_code]
    rng = random.Random(f"{cfg.seed}:academies:{office_code}")
    rows = []
    for i in range(cfg.academies_per_office if office_code != "V10" else 0):
        _, districts = rng.choice(office.support)
        district = rng.choice(districts)
        realm, ord_name, crse_list, crse = rng.choice(ACADEMY_REALMS)
        kind = rng.choice(("학원", "학원", "교습소"))
        name = f"{rng.choice(NAME_STEMS)}{rng.choice(ACADEMY_WORDS)}{kind}"
        opened = datetime.date(rng.randint(1995, 2025), rng.randint(1, 12), rng.randint(1, 28))
        where = office.province if district == office.province else f"{office.province} {district}"
        rows.append(
            (
                office.code,
                office.name,
                district,
                kind,
                f"{office.code_prefix}{i + 1:07d}",
                name,
                opened.strftime("%Y%m%d"),
                opened.strftime("%Y%m%d"),
                "개원",
                None,
                None,
                str(rng.choice((9, 15, 30, 45, 60))),
                str(rng.choice((5, 9, 20, 30))),
                realm,
                ord_name,
                crse_list,
                crse,
                f"{crse}:{rng.randint(10, 60) * 10000}",
                "Y",
                "N",
                f"{rng.randint(*office.zip_range):05d}",
                f"{where} {rng.choice(ROAD_STEMS)}로 {rng.randint(1, 300)}",
                f"{rng.randint(2, 6)}층",
                "20250102",
            )
        )
    return rows
