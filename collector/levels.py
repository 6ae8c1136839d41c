"""Which timetable service, if any, each NEIS school kind (SCHUL_KND_SC_NM) is collected from.

This is the one place that decides it. ``schoolInfo`` lists about 12,500 schools of some twenty
kinds; the timetable services exist for four levels only (``els``/``mis``/``his``/``sps``).
A kind maps to the level whose curriculum it follows; a kind that maps to nothing is stored
with an empty level and never collected.
"""

from __future__ import annotations

from django.db import models

from collector.neis.records import Level

# The levels are ``records.Level`` (the client's, which knows each one's NEIS service); the model
# choices below are built from it, so a level is spelled in exactly one place.
SchoolLevel = models.TextChoices(
    "SchoolLevel",
    [
        *((level.name, (level.value, f"{level.value} ({level.service})")) for level in Level),
        ("NOT_COLLECTED", ("", "not collected")),
    ],
)
SchoolLevel.__doc__ = 'A school\'s level as model choices; ``""`` marks a school not collected.'

RunLevel = models.TextChoices(
    "RunLevel",
    [
        ("ALL", ("all", "All levels")),
        *((level.name, (level.value, level.value.capitalize())) for level in Level),
    ],
)
RunLevel.__doc__ = "What a run collects: one level, or every level."


def levels_of(run_level: str) -> list[Level]:
    """The levels a run of ``run_level`` collects; ValueError for anything else."""
    if run_level == RunLevel.ALL:
        return list(Level)
    try:
        return [Level(run_level)]
    except ValueError:
        raise ValueError(
            f"unknown level {run_level!r}; choose one of {', '.join(RunLevel.values)}"
        ) from None


# Keys are SCHUL_KND_SC_NM without any whitespace, as parse.normalise_kind makes them.
KIND_LEVELS: dict[str, Level | None] = {
    "초등학교": Level.ELEMENTARY,
    "중학교": Level.MIDDLE,
    "고등학교": Level.HIGH,
    "특수학교": Level.SPECIAL,
    # 각종학교 follow the regular curriculum of their stage; neis.kt routes them the same way.
    "각종학교(초)": Level.ELEMENTARY,
    "각종학교(중)": Level.MIDDLE,
    "각종학교(고)": Level.HIGH,
    # Overseas Korean schools (office V10) teach the Korean curriculum on NEIS.
    "재외한국학교(초)": Level.ELEMENTARY,
    "재외한국학교(중)": Level.MIDDLE,
    "재외한국학교(고)": Level.HIGH,
    # Distance-learning schools are attached to a regular middle or high school.
    "방송통신중학교": Level.MIDDLE,
    "방송통신고등학교": Level.HIGH,
    "고등기술학교": Level.HIGH,
    "고등공민학교": Level.MIDDLE,
    # Adult literacy schools keep their stage in brackets; a few hundred requests a week at most,
    # and an empty answer (INFO-200) costs nothing to store.
    "평생학교(초)-3년6학기": Level.ELEMENTARY,
    "평생학교(초)-4년12학기": Level.ELEMENTARY,
    "평생학교(중)-2년6학기": Level.MIDDLE,
    "평생학교(중)-3년6학기": Level.MIDDLE,
    "평생학교(고)-2년6학기": Level.HIGH,
    "평생학교(고)-3년6학기": Level.HIGH,
    # Not collected: a 공동실습소 is a shared workshop whose lessons already appear in its
    # high schools' timetables (ORD_SC_NM), and foreign schools do not publish on NEIS.
    "공동실습소": None,
    "외국인학교": None,
}


def level_for_kind(kind: str) -> Level | None:
    """The level a school of this kind is collected as; None if it is not collected.

    Whitespace is ignored (``각종학교 (중)`` is ``각종학교(중)``). A kind missing from
    ``KIND_LEVELS`` is not collected; ``registry.upsert_schools`` logs it so that a new NEIS kind
    does not go unnoticed.
    """
    return KIND_LEVELS.get("".join(kind.split()))


def is_known_kind(kind: str) -> bool:
    return "".join(kind.split()) in KIND_LEVELS
