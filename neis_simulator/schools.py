"""The national school list (schoolInfo) and each school's fixed traits.

``build_schools`` draws about 12,500 schools from one seeded generator in well under a
second; everything that changes by year or week is generated later, on demand.
"""

from __future__ import annotations

import dataclasses
import datetime
import random

from .config import SimulatorConfig
from .vocab import (
    DEPARTMENTS,
    HIGH_TYPES,
    NAME_STEMS,
    OFFICES,
    OVERSEAS_CITIES,
    ROAD_STEMS,
    SPECIAL_PURPOSE,
    SPS_COURSES,
    SPS_NAME_SUFFIXES,
    VOCATIONAL_NAMES,
    Office,
)

SCHOOL_INFO_FIELDS = (
    "ATPT_OFCDC_SC_CODE",
    "ATPT_OFCDC_SC_NM",
    "SD_SCHUL_CODE",
    "SCHUL_NM",
    "ENG_SCHUL_NM",
    "SCHUL_KND_SC_NM",
    "LCTN_SC_NM",
    "JU_ORG_NM",
    "FOND_SC_NM",
    "ORG_RDNZC",
    "ORG_RDNMA",
    "ORG_RDNDA",
    "ORG_TELNO",
    "HMPG_ADRES",
    "COEDU_SC_NM",
    "ORG_FAXNO",
    "HS_SC_NM",
    "INDST_SPECL_CCCCL_EXST_YN",
    "HS_GNRL_BUSNS_SC_NM",
    "SPCLY_PURPS_HS_ORD_NM",
    "ENE_BFE_SEHF_SC_NM",
    "DGHT_SC_NM",
    "FOND_YMD",
    "FOAS_MEMRD",
    "LOAD_DTM",
)

MAIN_KINDS = {"초등학교": "els", "중학교": "mis", "고등학교": "his", "특수학교": "sps"}


@dataclasses.dataclass(slots=True, eq=False)
class School:
    """One school: its schoolInfo row plus the traits its timetables are drawn from."""

    office: Office
    code: str
    name: str
    kind: str  # SCHUL_KND_SC_NM
    level: str | None  # "els"/"mis"/"his"/"sps": which timetable service serves it
    info: tuple  # the schoolInfo row, in SCHOOL_INFO_FIELDS order
    size: int = 1  # classes per grade in a typical year
    hs_type: str | None = None  # HS_SC_NM for high schools
    ord_name: str = "일반계"  # ORD_SC_NM of its main course
    departments: tuple = ()  # ((ORD_SC_NM, DDDEP_NM, subjects), ...) for vocational schools
    night: bool = False  # also runs a 야간 course
    courses: tuple = ()  # SCHUL_CRSE_SC_NM values of a special school
    memorial: tuple = (3, 2)  # (month, day) of FOAS_MEMRD
    profile: str = "early"  # publication profile, see SimulatorConfig.publish_profiles
    late_sem2: bool = False
    pattern: int = 0  # which day pattern the school uses
    second_language: int = 0
    flags: frozenset = frozenset()  # dirt switched on for this school

    @property
    def prefix(self) -> tuple[str, str, str, str]:
        return self.info[0], self.info[1], self.info[2], self.info[3]

    @property
    def office_code(self) -> str:
        return self.office.code

    def row(self) -> dict:
        """The schoolInfo row as served."""
        return dict(zip(SCHOOL_INFO_FIELDS, self.info, strict=True))


# --- romanisation (Revised Romanisation, syllable by syllable; good enough for names) -----
_INITIAL = (
    "g",
    "kk",
    "n",
    "d",
    "tt",
    "r",
    "m",
    "b",
    "pp",
    "s",
    "ss",
    "",
    "j",
    "jj",
    "ch",
    "k",
    "t",
    "p",
    "h",
)
_MEDIAL = (
    "a",
    "ae",
    "ya",
    "yae",
    "eo",
    "e",
    "yeo",
    "ye",
    "o",
    "wa",
    "wae",
    "oe",
    "yo",
    "u",
    "wo",
    "we",
    "wi",
    "yu",
    "eu",
    "ui",
    "i",
)
_FINAL = (
    "",
    "k",
    "k",
    "k",
    "n",
    "n",
    "n",
    "t",
    "l",
    "k",
    "m",
    "l",
    "l",
    "l",
    "p",
    "l",
    "m",
    "p",
    "p",
    "t",
    "t",
    "ng",
    "t",
    "t",
    "k",
    "t",
    "p",
    "t",
)


def romanise(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch) - 0xAC00
        if 0 <= code < 11172:
            out.append(_INITIAL[code // 588] + _MEDIAL[(code % 588) // 28] + _FINAL[code % 28])
        else:
            out.append(ch)
    return "".join(out)


def _largest_remainder(total: int, weights: dict) -> dict:
    """Split ``total`` over the keys in proportion to ``weights``, exactly."""
    mass = sum(weights.values()) or 1
    raw = {k: total * w / mass for k, w in weights.items()}
    out = {k: int(v) for k, v in raw.items()}
    rest = total - sum(out.values())
    for k in sorted(raw, key=lambda k: (out[k] - raw[k], k))[:rest]:
        out[k] += 1
    return out


def _calibrated_sizes(
    rng: random.Random, n: int, target: float, sigma: float, cap: int
) -> list[int]:
    """``n`` school sizes (classes per grade), skewed like real schools, summing to ``target``."""
    raw = [rng.lognormvariate(0.0, sigma) for _ in range(n)]
    lo, hi = 0.01, 100.0
    for _ in range(40):
        k = (lo + hi) / 2
        if sum(min(cap, max(1, round(r * k))) for r in raw) > target:
            hi = k
        else:
            lo = k
    return [min(cap, max(1, round(r * lo))) for r in raw]


_KIND_SUFFIX = {
    "초등학교": ("초등학교", "Elementary School"),
    "중학교": ("중학교", "Middle School"),
    "고등학교": ("고등학교", "High School"),
    "각종학교(초)": ("국제학교", "International School"),
    "각종학교(중)": ("학교", "School"),
    "각종학교(고)": ("학교", "School"),
    "고등기술학교": ("고등기술학교", "Technical High School"),
    "고등공민학교": ("고등공민학교", "Civic High School"),
    "방송통신중학교": ("중학교부설방송통신중학교", "Broadcasting Middle School"),
    "방송통신고등학교": ("고등학교부설방송통신고등학교", "Broadcasting High School"),
    "외국인학교": ("외국인학교", "Foreign School"),
}


class _Builder:
    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.rng = random.Random(f"schools:{config.seed}")
        self.stems = tuple(dict.fromkeys(NAME_STEMS))
        self.used_names: set[tuple[str, str, str]] = set()

    def counts(self) -> dict[tuple[str, str], int]:
        """(office code, kind) -> number of schools."""
        cfg = self.config
        out: dict[tuple[str, str], int] = {}
        domestic = list(cfg.office_weights)
        for i, kind in enumerate(MAIN_KINDS):
            weights = {c: cfg.office_weights[c][i] for c in domestic}
            for code, n in _largest_remainder(cfg.kind_totals.get(kind, 0), weights).items():
                out[code, kind] = n
        totals = {c: sum(cfg.office_weights[c]) for c in domestic}
        for kind, total in cfg.extra_kinds.items():
            if kind.startswith("재외한국학교"):
                out["V10", kind] = total
                continue
            for code, n in _largest_remainder(total, totals).items():
                out[code, kind] = n
        return out

    def place(self, office: Office) -> tuple[str, str]:
        support, districts = self.rng.choice(office.support)
        return support, self.rng.choice(districts)

    def base_name(self, office: Office, district: str, kind: str) -> str:
        short = district[:-1] if len(district) > 2 and district[-1] in "구시군" else ""
        for attempt in range(40):
            stem = self.rng.choice(self.stems)
            base = stem if attempt < 6 and self.rng.random() < 0.7 else short + stem
            if attempt > 25:
                base = short + stem + self.rng.choice(("제일", "중앙", "새", "신"))
            if (office.code, kind, base) not in self.used_names:
                self.used_names.add((office.code, kind, base))
                return base
        return base + str(self.rng.randint(2, 9))

    def build(self) -> list[School]:
        rng = self.rng
        counts = self.counts()
        schools: list[School] = []
        for office in OFFICES:
            kinds = [(k, n) for (c, k), n in sorted(counts.items()) if c == office.code and n]
            total = sum(n for _, n in kinds)
            if not total:
                continue
            suffixes = rng.sample(range(10000), total)
            i = 0
            for kind, n in kinds:
                for _ in range(n):
                    code = office.code_prefix + f"{suffixes[i]:04d}"
                    i += 1
                    schools.append(self.school(office, kind, code))
        self.size_schools(schools)
        schools.sort(key=lambda s: (s.office.code, s.code))
        return schools

    def size_schools(self, schools: list[School]) -> None:
        cfg, rng = self.config, self.rng
        for level, grades in (("els", 6), ("mis", 3), ("his", 3)):
            group = [s for s in schools if MAIN_KINDS.get(s.kind) == level]
            target = cfg.class_totals.get(level, 0) / grades
            sizes = _calibrated_sizes(
                rng, len(group), target, cfg.class_size_sigma, cfg.max_classes_per_grade
            )
            for school, size in zip(group, sizes, strict=True):
                school.size = size
        for s in schools:
            if s.kind == "특수학교":
                s.size = rng.randint(*cfg.special_classes_per_grade)
            elif s.kind not in MAIN_KINDS:
                s.size = rng.randint(*cfg.extra_classes_per_grade)

    def school(self, office: Office, kind: str, code: str) -> School:
        cfg, rng = self.config, self.rng
        level = cfg.level_by_kind.get(kind)
        main = MAIN_KINDS.get(kind)
        support, district = self.place(office)
        office_name = office.name
        if office.code == "V10":
            office_name = cfg.v10_office_name
        elif cfg.merged_f10_q10_name and office.code in ("F10", "Q10"):
            office_name = cfg.merged_f10_q10_name
        coedu = "남여공학"
        if main in ("mis", "his"):
            coedu = rng.choices(("남여공학", "남", "여"), (0.72, 0.14, 0.14))[0]
        hs_type = ord_name = spcly = None
        departments: tuple = ()
        eng_extra = name_extra = ""
        ord_name = "일반계"
        if main == "his":
            hs_type = rng.choices([t[0] for t in HIGH_TYPES], [t[1] for t in HIGH_TYPES])[0]
            if hs_type == "특성화고":
                name_extra, eng_extra, ord_name = rng.choice(VOCATIONAL_NAMES)
            elif hs_type == "특목고":
                _, name_extra, eng_extra, spcly = rng.choice(SPECIAL_PURPOSE)
                if name_extra == "마이스터":
                    ord_name = "공업계"
            if ord_name != "일반계":
                pool = DEPARTMENTS[ord_name]
                picked = rng.sample(pool, min(len(pool), rng.randint(2, 4)))
                departments = tuple((ord_name, d, subjects) for d, subjects in picked)
        city = country = None
        if office.code == "V10":
            city, country = rng.choice(OVERSEAS_CITIES)
            name = f"{city}한국학교"
            eng = f"Korean School in {romanise(city).title()}"
        elif kind == "특수학교":
            base = self.base_name(office, district, kind)
            name = base + rng.choice(SPS_NAME_SUFFIXES)
            eng = f"{romanise(base).title()} School"
        elif kind == "공동실습소":
            base = district[:-1] if len(district) > 2 else district
            name = f"{base}공동실습소"
            eng = f"{romanise(base).title()} Joint Training Center"
        elif kind.startswith("평생학교"):
            base = self.base_name(office, district, kind)
            name, eng = f"{base}평생학교", f"{romanise(base).title()} Lifelong School"
        else:
            base = self.base_name(office, district, kind)
            suffix, eng_suffix = _KIND_SUFFIX[kind]
            girls = coedu == "여" and rng.random() < 0.6 and not name_extra
            if main in ("mis", "his") and girls:
                suffix = "여자" + suffix
            name = base + name_extra + suffix
            eng = " ".join(filter(None, (romanise(base).title(), eng_extra, eng_suffix)))
            if girls:
                eng = eng.replace("Middle", "Girls' Middle").replace("High", "Girls' High")
        if rng.random() < 0.08:
            eng = eng.upper()
        elif rng.random() < 0.02:
            eng = None

        fond = "공립"
        if rng.random() < cfg.private_share.get(main or "his", 0.3):
            fond = "사립"
        elif rng.random() < cfg.national_share:
            fond = "국립"
        if office.code == "V10" or kind == "외국인학교":
            fond = "사립"
        ju_org = office_name
        if main in ("els", "mis") and office.support[0][0]:
            ju_org = (office.province if office.support_prefix else "") + support + "교육지원청"
        lvl = {"els": "es", "mis": "ms", "his": "hs"}.get(main or "", "sc")
        rom = romanise(name[:2]).lower()
        homepage = rng.choice(
            (
                f"http://{rom}.{office.domain}.{lvl}.kr",
                f"www.{rom}.{lvl}.kr",
                f"https://{rom}-{lvl}.{office.domain}.kr",
                f"http://{rom}{lvl}.{office.domain}.kr",
            )
        )
        if rng.random() < 0.03 or office.code == "V10":
            homepage = None
        if office.code == "V10":
            zipc = tel = fax = None
            address, detail, province = f"{country} {city}", None, office.province
        else:
            zipc = f"{rng.randint(*office.zip_range):05d}" + (" " if rng.random() < 0.7 else "")
            street = rng.choice(ROAD_STEMS) + rng.choice(("로", "로", "대로"))
            if rng.random() < 0.4:
                street += f"{rng.randint(1, 120)}번길"
            where = (
                office.province
                if district == office.province
                else (f"{office.province} {district}")
            )
            address = f"{where} {street} {rng.randint(1, 480)}"
            if rng.random() < 0.15:
                address += f"-{rng.randint(1, 40)}"
            dong = rng.choice(self.stems) + rng.choice(("동", "동", "동", "읍", "면"))
            detail = rng.choice((f"({dong})", f"({dong}/ {name})", f"/ {name} ({dong})", None))
            phone = f"{office.phone}-{rng.randint(200, 989)}-{rng.randint(0, 9999):04d}"
            tel = phone
            fax = f"{office.phone}-{rng.randint(200, 989)}-{rng.randint(0, 9999):04d}"
            province = office.province
        founded = datetime.date(
            rng.randint(1900 if main == "els" else 1945, 2024),
            rng.randint(1, 12),
            rng.randint(1, 28),
        )
        memorial = (
            founded
            if rng.random() < 0.5
            else datetime.date(
                founded.year + rng.randint(0, 3), rng.randint(3, 12), rng.randint(1, 28)
            )
        )
        load = f"2025{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        if rng.random() < cfg.fourteen_digit_school_load_dtm_rate:
            load += f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"
        hs_sc = {"els": None, "mis": "  ", "his": hs_type}.get(main or "")
        general = {"els": "해당없음", "mis": "일반계"}.get(main or "", "해당없음")
        if main == "his":
            general = "일반계" if ord_name == "일반계" else "전문계"
        indst = "Y" if hs_type == "특성화고" and rng.random() < 0.3 else "N"
        before_after = "후기" if hs_type in ("일반고", "자율고") else "전기"
        info = (
            office.code,
            office_name,
            code,
            name,
            eng,
            kind,
            province,
            ju_org,
            fond,
            zipc,
            address,
            detail,
            tel,
            homepage,
            coedu,
            fax,
            hs_sc,
            indst,
            general,
            spcly,
            before_after,
            "주간",
            founded.strftime("%Y%m%d"),
            memorial.strftime("%Y%m%d"),
            load,
        )
        school = School(
            office=office,
            code=code,
            name=name,
            kind=kind,
            level=level,
            info=info,
            hs_type=hs_type,
            ord_name=ord_name,
            departments=departments,
            memorial=(memorial.month, memorial.day),
        )
        self.traits(school)
        return school

    def traits(self, s: School) -> None:
        """Publication profile and dirt flags: fixed per school for the whole run."""
        cfg, rng = self.config, self.rng
        profiles = cfg.publish_profiles
        names = list(profiles)
        s.profile = rng.choices(names, [profiles[n][0] for n in names])[0]
        if s.kind not in MAIN_KINDS and rng.random() < cfg.extra_kind_never_rate:
            s.profile = "never"
        if s.level is None:
            s.profile = "never"
        s.late_sem2 = rng.random() < cfg.late_second_semester_rate
        s.pattern = rng.randrange(64)
        s.second_language = rng.randrange(64)
        general = s.kind == "고등학교" and s.ord_name == "일반계"
        s.night = general and rng.random() < cfg.night_course_rate
        if s.kind == "특수학교":
            courses = [c for c in SPS_COURSES if c in ("초등학교", "중학교", "고등학교")]
            if rng.random() < 0.4:
                courses.insert(0, "유치원")
            if rng.random() < 0.6:
                courses.append("전공과")
            if rng.random() < 0.15:
                courses.remove("초등학교")
            s.courses = tuple(courses)
        flags = set()
        for flag, rate in (
            ("dash", cfg.dash_school_rate),
            ("brackets", cfg.bracket_school_rate),
            ("ascii_roman", cfg.ascii_roman_school_rate),
            ("unsorted", cfg.unsorted_school_rate),
            ("free_periods", cfg.free_period_school_rate),
            ("elective_rows", cfg.elective_rows_school_rate if s.level == "his" else 0.0),
        ):
            if rng.random() < rate:
                flags.add(flag)
        s.flags = frozenset(flags)


def build_schools(config: SimulatorConfig) -> list[School]:
    """The national school list, sorted by office then code; deterministic for a seed."""
    return _Builder(config).build()
