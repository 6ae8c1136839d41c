"""The 16 hub services: paths, envelope keys, row layouts, required and optional parameters.

Row layouts follow docs/neis-api.md sections 4.5 and 4.6; the served JSON keeps this order.
"""

from __future__ import annotations

import dataclasses

from .schools import SCHOOL_INFO_FIELDS

PREFIX = ("ATPT_OFCDC_SC_CODE", "ATPT_OFCDC_SC_NM", "SD_SCHUL_CODE", "SCHUL_NM")
_DAY = ("AY", "SEM", "ALL_TI_YMD")

TIMETABLE_FIELDS = {
    "els": PREFIX + _DAY + ("GRADE", "CLASS_NM", "PERIO", "ITRT_CNTNT", "LOAD_DTM"),
    "mis": PREFIX
    + _DAY
    + ("DGHT_CRSE_SC_NM", "GRADE", "CLASS_NM", "PERIO", "ITRT_CNTNT", "LOAD_DTM"),
    "his": PREFIX
    + _DAY
    + (
        "DGHT_CRSE_SC_NM",
        "ORD_SC_NM",
        "DDDEP_NM",
        "GRADE",
        "CLRM_NM",
        "CLASS_NM",
        "PERIO",
        "ITRT_CNTNT",
        "LOAD_DTM",
    ),
    "sps": PREFIX
    + _DAY
    + ("SCHUL_CRSE_SC_NM", "GRADE", "CLRM_NM", "CLASS_NM", "PERIO", "ITRT_CNTNT", "LOAD_DTM"),
}

CLASS_INFO_FIELDS = PREFIX + (
    "AY",
    "GRADE",
    "DGHT_CRSE_SC_NM",
    "SCHUL_CRSE_SC_NM",
    "ORD_SC_NM",
    "DDDEP_NM",
    "CLASS_NM",
    "LOAD_DTM",
)
CLASSROOM_FIELDS = PREFIX + (
    "AY",
    "GRADE",
    "SEM",
    "SCHUL_CRSE_SC_NM",
    "DGHT_CRSE_SC_NM",
    "ORD_SC_NM",
    "DDDEP_NM",
    "CLRM_NM",
    "LOAD_DTM",
)
MAJOR_FIELDS = PREFIX + ("DGHT_CRSE_SC_NM", "ORD_SC_NM", "DDDEP_NM", "LOAD_DTM")
TRACK_FIELDS = PREFIX + ("DGHT_CRSE_SC_NM", "ORD_SC_NM", "LOAD_DTM")
SCHEDULE_FIELDS = PREFIX + (
    "AY",
    "DGHT_CRSE_SC_NM",
    "SCHUL_CRSE_SC_NM",
    "SBTR_DD_SC_NM",
    "AA_YMD",
    "EVENT_NM",
    "EVENT_CNTNT",
    "ONE_GRADE_EVENT_YN",
    "TW_GRADE_EVENT_YN",
    "THREE_GRADE_EVENT_YN",
    "FR_GRADE_EVENT_YN",
    "FIV_GRADE_EVENT_YN",
    "SIX_GRADE_EVENT_YN",
    "LOAD_DTM",
)
MEAL_FIELDS = PREFIX + (
    "MMEAL_SC_CODE",
    "MMEAL_SC_NM",
    "MLSV_YMD",
    "MLSV_FGR",
    "DDISH_NM",
    "ORPLC_INFO",
    "CAL_INFO",
    "NTR_INFO",
    "MLSV_FROM_YMD",
    "MLSV_TO_YMD",
    "LOAD_DTM",
)
ACADEMY_FIELDS = (
    "ATPT_OFCDC_SC_CODE",
    "ATPT_OFCDC_SC_NM",
    "ADMST_ZONE_NM",
    "ACA_INSTI_SC_NM",
    "ACA_ASNUM",
    "ACA_NM",
    "ESTBL_YMD",
    "REG_YMD",
    "REG_STTUS_NM",
    "CAA_BEGIN_YMD",
    "CAA_END_YMD",
    "TOFOR_SMTOT",
    "DTM_RCPTN_ABLTY_NMPR_SMTOT",
    "REALM_SC_NM",
    "LE_ORD_NM",
    "LE_CRSE_LIST_NM",
    "LE_CRSE_NM",
    "PSNBY_THCC_CNTNT",
    "THCC_OTHBC_YN",
    "BRHS_ACA_YN",
    "FA_RDNZC",
    "FA_RDNMA",
    "FA_RDNDA",
    "LOAD_DTM",
)

SCHOOL_KEYS = ("ATPT_OFCDC_SC_CODE", "SD_SCHUL_CODE")
_TI_DATES = ("ALL_TI_YMD", "TI_FROM_YMD", "TI_TO_YMD")


@dataclasses.dataclass(frozen=True)
class Service:
    """One hub path: how it is asked and how it answers."""

    name: str  # the case-sensitive path segment
    envelope: str  # top-level JSON key / XML root
    fields: tuple[str, ...]
    required: tuple[str, ...]
    filters: tuple[str, ...]  # optional parameters it honours; anything else is ignored
    level: str | None = None  # timetable level, for timetable services
    archive: bool = False  # a *Timetablebgs service

    def index(self, field: str) -> int:
        return self.fields.index(field)


def _timetables() -> list[Service]:
    filters = {
        "els": ("AY", "SEM", *_TI_DATES, "GRADE", "CLASS_NM", "PERIO"),
        "mis": ("AY", "SEM", *_TI_DATES, "DGHT_CRSE_SC_NM", "GRADE", "CLASS_NM", "PERIO"),
        "his": (
            "AY",
            "SEM",
            *_TI_DATES,
            "DGHT_CRSE_SC_NM",
            "ORD_SC_NM",
            "DDDEP_NM",
            "GRADE",
            "CLRM_NM",
            "CLASS_NM",
            "PERIO",
        ),
        "sps": (
            "AY",
            "SEM",
            *_TI_DATES,
            "SCHUL_CRSE_SC_NM",
            "GRADE",
            "CLRM_NM",
            "CLASS_NM",
            "PERIO",
        ),
    }
    out = []
    for level, fields in TIMETABLE_FIELDS.items():
        name = f"{level}Timetable"
        out.append(Service(name, name, fields, SCHOOL_KEYS, filters[level], level))
        out.append(Service(name + "bgs", name, fields, SCHOOL_KEYS, filters[level], level, True))
    return out


SERVICES: dict[str, Service] = {
    s.name: s
    for s in [
        Service(
            "schoolInfo",
            "schoolInfo",
            SCHOOL_INFO_FIELDS,
            (),
            (
                "ATPT_OFCDC_SC_CODE",
                "SD_SCHUL_CODE",
                "SCHUL_NM",
                "SCHUL_KND_SC_NM",
                "LCTN_SC_NM",
                "FOND_SC_NM",
            ),
        ),
        Service(
            "classInfo",
            "classInfo",
            CLASS_INFO_FIELDS,
            SCHOOL_KEYS,
            ("AY", "GRADE", "DGHT_CRSE_SC_NM", "SCHUL_CRSE_SC_NM", "ORD_SC_NM", "DDDEP_NM"),
        ),
        *_timetables(),
        Service(
            "tiClrminfo",
            "tiClrminfo",
            CLASSROOM_FIELDS,
            SCHOOL_KEYS,
            ("AY", "GRADE", "SEM", "SCHUL_CRSE_SC_NM", "DGHT_CRSE_SC_NM", "ORD_SC_NM", "DDDEP_NM"),
        ),
        Service(
            "schoolMajorinfo",
            "schoolMajorinfo",
            MAJOR_FIELDS,
            ("ATPT_OFCDC_SC_CODE",),
            ("SD_SCHUL_CODE", "DGHT_CRSE_SC_NM", "ORD_SC_NM"),
        ),
        Service(
            "schulAflcoinfo",
            "schulAflcoinfo",
            TRACK_FIELDS,
            ("ATPT_OFCDC_SC_CODE",),
            ("SD_SCHUL_CODE", "DGHT_CRSE_SC_NM"),
        ),
        Service(
            "SchoolSchedule",
            "SchoolSchedule",
            SCHEDULE_FIELDS,
            SCHOOL_KEYS,
            ("AY", "DGHT_CRSE_SC_NM", "SCHUL_CRSE_SC_NM", "AA_YMD", "AA_FROM_YMD", "AA_TO_YMD"),
        ),
        Service(
            "mealServiceDietInfo",
            "mealServiceDietInfo",
            MEAL_FIELDS,
            SCHOOL_KEYS,
            ("MMEAL_SC_CODE", "MLSV_YMD", "MLSV_FROM_YMD", "MLSV_TO_YMD"),
        ),
        Service(
            "acaInsTiInfo",
            "acaInsTiInfo",
            ACADEMY_FIELDS,
            ("ATPT_OFCDC_SC_CODE",),
            ("ADMST_ZONE_NM", "ACA_ASNUM", "ACA_NM", "REALM_SC_NM", "LE_ORD_NM", "LE_CRSE_NM"),
        ),
    ]
}

TIMETABLE_SERVICE = {level: f"{level}Timetable" for level in TIMETABLE_FIELDS}
