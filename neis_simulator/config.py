"""Every tunable number and uncertain choice of the NEIS simulator, in one place.

docs/neis-api.md marks facts nobody could confirm with ``[?]``; each such choice is a field
here, with a ``[?]`` comment, so changing the simulator's mind is one edit (section 10 of that
file lists them with their defaults). Bare "section" numbers in this package refer to it.

Fields tagged ``runtime`` only shape how the server answers (keys, quota, paging, faults,
clock) and can be changed while it runs; every other field shapes the generated world, and
two worlds built from equal non-runtime fields are identical.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

_RUNTIME = {"runtime": True}


def _runtime(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    return dataclasses.field(default=default, metadata=_RUNTIME, **kw)


# Portal result messages (section 5). The long form is the portal table; the short form is
# its first sentence. Whether the live MESSAGE carries the second sentence is unknown [?].
MESSAGES = {
    "INFO-000": "정상 처리되었습니다.",
    "INFO-100": "해당 자료는 단순 참고용으로만 활용하시기 바랍니다.",
    "INFO-200": "해당하는 데이터가 없습니다.",
    "INFO-300": "관리자에 의해 인증키 사용이 제한되었습니다.",
    "ERROR-290": (
        "인증키가 유효하지 않습니다. 인증키가 없는 경우, 홈페이지에서 인증키를 신청하십시오."
    ),
    "ERROR-300": "필수 값이 누락되어 있습니다. 요청인자를 참고 하십시오.",
    # [?] fixtures disagree: "해당 서비스를" vs "해당하는 서비스를".
    "ERROR-310": "해당하는 서비스를 찾을 수 없습니다. 요청인자 중 SERVICE를 확인하십시오.",
    # [?] fixtures disagree on the space after the first full stop; the portal table has none.
    "ERROR-333": "요청위치 값의 타입이 유효하지 않습니다.요청위치 값은 정수를 입력하세요.",
    "ERROR-336": "데이터요청은 한번에 최대 1,000건을 넘을 수 없습니다.",
    "ERROR-337": "일별 트래픽 제한을 넘은 호출입니다. 오늘은 더이상 호출할 수 없습니다.",
    "ERROR-500": "서버 오류입니다. 지속적으로 발생시 홈페이지로 문의(Q&A) 바랍니다.",
    "ERROR-600": "데이터베이스 연결 오류입니다. 지속적으로 발생시 홈페이지로 문의(Q&A) 바랍니다.",
    "ERROR-601": "SQL 문장 오류 입니다. 지속적으로 발생시 홈페이지로 문의(Q&A) 바랍니다.",
}

# Approximate school counts per office (elementary, middle, high, special), from 2024
# statistics, with J10 raised to about a quarter of all schools and I10 to about 150, as the
# project brief asks. Only the proportions matter: kind totals below are met exactly.
OFFICE_WEIGHTS = {
    "B10": (605, 389, 318, 32),
    "C10": (304, 171, 140, 15),
    "D10": (242, 125, 93, 10),
    "E10": (268, 139, 126, 12),
    "F10": (155, 92, 68, 5),
    "G10": (148, 88, 62, 6),
    "H10": (121, 64, 56, 4),
    "I10": (78, 42, 29, 3),
    "J10": (1660, 830, 605, 50),
    "K10": (351, 163, 117, 10),
    "M10": (259, 128, 85, 11),
    "N10": (410, 190, 117, 10),
    "P10": (419, 209, 133, 10),
    "Q10": (426, 248, 147, 9),
    "R10": (466, 271, 183, 9),
    "S10": (501, 266, 191, 10),
    "T10": (120, 46, 30, 3),
}

# Extra SCHUL_KND_SC_NM values of section 4.6 and how many schools of each; they bring the
# list to about 12,500 rows. The split is invented [?]; only the total is documented.
EXTRA_KINDS = {
    "각종학교(초)": 15,
    "각종학교(중)": 40,
    "각종학교(고)": 75,
    "고등기술학교": 8,
    "고등공민학교": 5,
    "방송통신중학교": 58,
    "방송통신고등학교": 48,
    "공동실습소": 12,
    "외국인학교": 55,
    "평생학교(초)-3년6학기": 8,
    "평생학교(초)-4년12학기": 6,
    "평생학교(중)-2년6학기": 18,
    "평생학교(중)-3년6학기": 20,
    "평생학교(고)-2년6학기": 24,
    "평생학교(고)-3년6학기": 32,
    # V10 only. Whether NEIS labels them this way is unknown [?].
    "재외한국학교(초)": 16,
    "재외한국학교(중)": 14,
    "재외한국학교(고)": 12,
}

# Which timetable service (by level) answers for each kind. Kinds not listed have no
# timetable at all. neis.kt sends 각종학교(x) to els/mis/his; the rest is a choice [?].
LEVEL_BY_KIND = {
    "초등학교": "els",
    "중학교": "mis",
    "고등학교": "his",
    "특수학교": "sps",
    "각종학교(초)": "els",
    "각종학교(중)": "mis",
    "각종학교(고)": "his",
    "방송통신중학교": "mis",
    "방송통신고등학교": "his",
    "재외한국학교(초)": "els",
    "재외한국학교(중)": "mis",
    "재외한국학교(고)": "his",
}


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    """Configuration of one simulated NEIS hub: its world, its rules and its faults."""

    seed: int = 1

    # ---- Clock (runtime). None means the real current time; otherwise an ISO timestamp
    # (naive values are read as KST). A frozen clock only moves when told to.
    clock: str | None = _runtime(None)
    freeze_clock: bool = _runtime(False)

    # ---- National school list (section 6, 7.6).
    kind_totals: dict = dataclasses.field(
        default_factory=lambda: {
            "초등학교": 6183,
            "중학교": 3272,
            "고등학교": 2380,
            "특수학교": 195,
        }
    )
    office_weights: dict = dataclasses.field(default_factory=lambda: dict(OFFICE_WEIGHTS))
    extra_kinds: dict = dataclasses.field(default_factory=lambda: dict(EXTRA_KINDS))
    level_by_kind: dict = dataclasses.field(default_factory=lambda: dict(LEVEL_BY_KIND))
    v10_office_name: str = "재외한국학교교육청"  # [?] seen in two client tables only
    # [?] neis_plus (2026) says F10 and Q10 both answer with this name; None keeps them apart.
    merged_f10_q10_name: str | None = None
    private_share: dict = dataclasses.field(
        default_factory=lambda: {"els": 0.012, "mis": 0.19, "his": 0.40, "sps": 0.35}
    )
    national_share: float = 0.004
    fourteen_digit_school_load_dtm_rate: float = 0.05  # schoolInfo LOAD_DTM as 14 digits

    # ---- Classes. National class totals (section 7.6 arithmetic) the generator calibrates to.
    class_totals: dict = dataclasses.field(
        default_factory=lambda: {"els": 125_000, "mis": 54_000, "his": 56_000}
    )
    class_size_sigma: float = 0.75  # spread of school sizes (lognormal)
    max_classes_per_grade: int = 16
    special_classes_per_grade: tuple = (1, 3)
    extra_classes_per_grade: tuple = (1, 2)
    night_course_rate: float = 0.03  # high schools with a 야간 course too
    # Lessons per weekday (Mon..Fri) per level and grade band; one pattern is drawn per school.
    day_patterns: dict = dataclasses.field(
        default_factory=lambda: {
            "els12": ((5, 4, 5, 4, 5), (4, 5, 4, 5, 4), (5, 5, 4, 5, 4)),
            "els34": ((5, 6, 5, 5, 5), (6, 5, 5, 6, 5), (5, 5, 6, 5, 5)),
            "els56": ((6, 6, 5, 6, 6), (6, 6, 6, 5, 6), (6, 5, 6, 6, 5)),
            "mis": ((7, 6, 7, 6, 7), (6, 7, 6, 7, 7), (7, 7, 6, 7, 6)),
            "his": ((7, 7, 6, 7, 7), (7, 7, 7, 7, 6), (7, 6, 7, 7, 7)),
            "his_night": ((4, 4, 4, 4, 4), (5, 4, 5, 4, 4)),
            "sps": ((5, 6, 5, 5, 5), (6, 5, 5, 6, 5)),
            "sps_kinder": ((4, 4, 4, 4, 4), (5, 4, 4, 4, 4)),
        }
    )
    elective_group_size: tuple = (2, 3)  # subjects sharing one elective period
    elective_periods_per_week: tuple = (3, 8)  # elective periods in grades 2-3 of his

    # ---- Calendar. The AY runs March to February; SEM 1 is March-August, SEM 2 the rest.
    first_ay: int = 2021  # no timetables before this academic year
    horizon_days: int = 35  # how far past "now" the world is ever generated
    discretionary_days: tuple = (2, 4)  # 재량휴업일 per school year
    early_year_end_rate: float = 0.6  # schools ending the year in January (no February days)
    schedule_saturday_rows: bool = True  # SchoolSchedule lists every Saturday as 토요휴업일
    schedule_holiday_label: str = "공휴일"  # SBTR_DD_SC_NM for public holidays

    # ---- Publication model (driven by the simulated clock).
    # Profiles: share of schools, and lead days before the week's Monday (negative = after).
    publish_profiles: dict = dataclasses.field(
        default_factory=lambda: {
            "early": (0.62, 7, 13),
            "week_before": (0.22, 2, 5),
            "late": (0.13, -4, -1),
            "never": (0.03, 0, 0),
        }
    )
    extra_kind_never_rate: float = 0.3  # schools of extra kinds without any timetable
    publish_hours: tuple = (8, 19)  # uploads happen in office hours, KST
    late_second_semester_rate: float = 0.04
    late_second_semester_days: tuple = (21, 100)  # after 1 September
    revision_rate: float = 0.10  # school-weeks changed once after first publication
    second_revision_rate: float = 0.02
    revision_delay_days: tuple = (1, 10)
    revision_edits: tuple = (1, 3)  # edits per revision
    # [?] What each edit is, by weight (lessons.EDIT_KINDS): a subject swapped in a period, a
    # period cancelled, a period added, a period moved to another room (his and sps only), a
    # day reloaded by NEIS unchanged (only LOAD_DTM moves), a whole day removed. Only the rows
    # an edit writes get the revision's LOAD_DTM.
    revision_kinds: dict = dataclasses.field(
        default_factory=lambda: {
            "swap": 35,
            "cancel": 15,
            "add": 10,
            "classroom": 10,
            "reload": 25,
            "day_off": 5,
        }
    )
    fourteen_digit_load_dtm_rate: float = 0.12  # timetable LOAD_DTM as YYYYMMDDhhmmss
    # Some classes of a school-week are uploaded after the rest of the school (a homeroom
    # teacher late with the class's plan) [?]: share of published school-weeks of schools with
    # two classes or more that hold some back, how many classes, and how long after the
    # week's first publication they appear. The rest of the week is served meanwhile.
    late_class_rate: float = 0.05
    late_classes: tuple = (1, 3)
    late_class_delay_days: tuple = (1, 10)
    # (month, day) an AY's SchoolSchedule / classInfo appear, give or take three days per school.
    schedule_publish: tuple = (2, 18)
    class_info_publish: tuple = (2, 20)
    meal_publish_day: int = 25  # meals of a month appear on this day of the month before

    # ---- Dirt (section 7.4); each rate can be set to 0 to switch it off.
    dash_school_rate: float = 0.08  # schools prefixing ITRT_CNTNT with '-'
    bracket_school_rate: float = 0.05  # schools marking electives like '(A)' or '[선택]'
    ascii_roman_school_rate: float = 0.04  # schools typing 'I'/'II' instead of 'Ⅰ'/'Ⅱ'
    whitespace_rate: float = 0.004  # per lesson: stray spaces in ITRT_CNTNT
    null_subject_rate: float = 0.001  # per lesson: ITRT_CNTNT null
    duplicate_row_rate: float = 0.002  # per lesson: byte-identical duplicate row
    elective_rows_school_rate: float = 0.45  # his schools listing every elective of a period
    free_period_school_rate: float = 0.15  # schools whose free periods are missing rows
    free_period_day_rate: float = 0.12  # per class-day in such schools
    unsorted_school_rate: float = 0.10  # schools whose rows come in no particular order
    swap_day_rate: float = 0.04  # per class-day: two lessons swapped that week

    # ---- Other services (small but plausible).
    academies_per_office: int = 40
    dorm_meal_rate: float = 0.15  # high schools also serving breakfast and dinner

    # ---- Request rules (sections 2, 3, 7).
    max_page_size: int = 1000
    default_page_size: int = 100
    keyless_rows: int = 5
    ignore_ay_on_schedule: bool = True
    ignore_perio_on_his: bool = True
    # [?] Archive split: None means "AY < current AY - archive_lag_years"; 2023 is neispy's rule.
    archive_before_ay: int | None = None
    archive_lag_years: int = 1
    archive_pad_class: bool = True  # [?] archive CLASS_NM zero-padded ("01")
    archive_pad_width: int = 2

    # ---- Answer format (runtime).
    json_content_type: str = _runtime("text/html;charset=UTF-8")  # [?] section 7.1
    xml_content_type: str = _runtime("text/xml;charset=UTF-8")
    long_messages: bool = _runtime(True)  # [?] portal table text vs first sentence only
    xml_split_head: bool = _runtime(False)  # [?] one fixture uses two <head> elements
    page_mode: str = _runtime("info200")  # [?] past the last page: "info200" or "repeat"
    overstate: int = _runtime(0)  # [?] list_total_count larger than the rows by this much

    # ---- Keys and quota (runtime). The real quota is not published [?].
    daily_quota: int = _runtime(10_000)
    keyless_daily_cap: int = _runtime(1000)  # [?] one client's claim
    quota_reset: str = _runtime("00:00")  # [?] assumed midnight KST
    keys: tuple = _runtime(())  # extra (key, state) pairs; the default key is always valid
    key_quotas: tuple = _runtime(())  # (key, calls a day) pairs overriding daily_quota

    # ---- Faults (runtime).
    fault_rate: float = _runtime(0.0)
    fault_kinds: tuple = _runtime(())  # () means every kind, equally likely
    latency_ms: float = _runtime(0.0)  # added to every /hub answer
    latency_jitter_ms: float = _runtime(0.0)
    fault_latency_ms: float = _runtime(200.0)  # the "latency" fault
    hang_seconds: float = _runtime(30.0)  # the "hang" fault: longer than a client timeout
    maintenance: tuple = _runtime(())  # ((start ISO, end ISO), ...) in simulated time
    maintenance_status: int = _runtime(200)

    # ---- Observability and caches.
    log_size: int = _runtime(2000)
    # Finished answers to data queries, by body bytes; 0 turns the cache off. A weekly re-run
    # asks for the same pages again: 256 MiB holds about 900,000 timetable rows of JSON.
    page_cache_bytes: int = _runtime(256 * 2**20)
    query_cache_rows: int = 400_000
    unit_cache_rows: int = 400_000

    def world_key(self) -> tuple:
        """Fields that shape the generated world; equal keys give identical worlds."""
        return tuple(
            (f.name, repr(getattr(self, f.name)))
            for f in dataclasses.fields(self)
            if not f.metadata.get("runtime")
        )

    def without_dirt(self) -> SimulatorConfig:
        """A copy with every dirt rate at zero (sorted, clean rows; publication unchanged)."""
        return dataclasses.replace(self, **dict.fromkeys(DIRT_FIELDS, 0.0))

    def message(self, code: str) -> str:
        """The MESSAGE text for a RESULT code, in the configured form."""
        text = MESSAGES[code]
        if self.long_messages:
            return text
        head, dot, _ = text.partition(".")
        return head + dot

    def quota_reset_time(self) -> datetime.time:
        return datetime.time.fromisoformat(self.quota_reset)


DIRT_FIELDS = (
    "dash_school_rate",
    "bracket_school_rate",
    "ascii_roman_school_rate",
    "whitespace_rate",
    "null_subject_rate",
    "duplicate_row_rate",
    "elective_rows_school_rate",
    "free_period_school_rate",
    "unsorted_school_rate",
    "swap_day_rate",
)

RUNTIME_FIELDS = frozenset(
    f.name for f in dataclasses.fields(SimulatorConfig) if f.metadata.get("runtime")
)
