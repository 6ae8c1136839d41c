"""The world's ground truth equals what the HTTP hub serves, row for row (item 8 of the brief).

Later tests prove the database equals NEIS by comparing it with ``World`` answers; these
tests prove those answers equal the HTTP output, paged with pSize=1000.
"""

pytest_plugins = ["tests.fixtures_neis"]

RANGES = (("20261102", "20261127"), ("20260302", "20260327"), ("20250825", "20250912"))


def _sample(world):
    """Schools of every level, and of each kind of quirk."""
    picked = {}
    for level in ("els", "mis", "his", "sps"):
        schools = [s for s in world.schools(level=level) if s.profile != "never"]
        picked[f"{level} small"] = min(schools[:300], key=lambda s: s.size)
        picked[f"{level} large"] = max(schools[:300], key=lambda s: s.size)
        picked[f"{level} unsorted"] = next(s for s in schools if "unsorted" in s.flags)
    highs = world.schools(level="his")
    picked["electives"] = next(s for s in highs if "elective_rows" in s.flags)
    picked["vocational"] = next(s for s in highs if s.departments)
    picked["night"] = next(s for s in highs if s.night)
    picked["late publisher"] = next(s for s in world.schools() if s.profile == "late")
    picked["late 2nd semester"] = next(s for s in world.schools() if s.late_sem2 and s.level)
    picked["never"] = next(s for s in world.schools() if s.level and s.profile == "never")
    picked["overseas"] = next(s for s in world.schools(office="V10") if s.level)
    return picked


def test_it_serves_exactly_the_ground_truth_timetables(neis_sim):
    world, now = neis_sim.world, neis_sim.control.now()
    compared = 0
    for label, school in _sample(world).items():
        keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
        for start, end in RANGES:
            served = neis_sim.fetch_all(
                f"{school.level}Timetable", TI_FROM_YMD=start, TI_TO_YMD=end, **keys
            )
            truth = world.timetable(school.code, start, end, as_of=now)
            assert served == truth, (label, start)
            compared += len(truth)
        archive = neis_sim.fetch_all(
            f"{school.level}Timetablebgs", TI_FROM_YMD="20240902", TI_TO_YMD="20240927", **keys
        )
        assert archive == world.timetable(
            school.code, "20240902", "20240927", as_of=now, archive=True
        ), label
        compared += len(archive)
    assert compared > 20_000


def test_it_serves_a_whole_semester_over_many_pages_exactly(neis_sim):
    world, now = neis_sim.world, neis_sim.control.now()
    school = max(world.schools(level="els"), key=lambda s: s.size)
    keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
    served = neis_sim.fetch_all("elsTimetable", AY="2026", SEM="1", **keys)
    assert len(served) > 20_000
    assert served == world.rows("elsTimetable", {"AY": "2026", "SEM": "1", **keys}, as_of=now)


def test_it_serves_exactly_the_ground_truth_school_list(neis_sim):
    assert neis_sim.fetch_all("schoolInfo") == neis_sim.world.school_info_rows()
    assert neis_sim.world.school_info_rows(ATPT_OFCDC_SC_CODE="I10") == [
        s.row() for s in neis_sim.world.schools(office="I10")
    ]


def test_it_serves_exactly_the_ground_truth_of_the_other_services(neis_sim):
    world, now = neis_sim.world, neis_sim.control.now()
    for level in ("els", "his", "sps"):
        school = next(s for s in world.schools(level=level) if s.profile != "never")
        keys = {"ATPT_OFCDC_SC_CODE": school.office.code, "SD_SCHUL_CODE": school.code}
        for service, params in (
            ("classInfo", {"AY": "2026"}),
            ("classInfo", {}),
            ("tiClrminfo", {"AY": "2026"}),
            ("SchoolSchedule", {"AA_FROM_YMD": "20260301", "AA_TO_YMD": "20260831"}),
            ("mealServiceDietInfo", {"MLSV_FROM_YMD": "20261101"}),
            ("schoolMajorinfo", {}),
            ("schulAflcoinfo", {}),
        ):
            query = {**keys, **params}
            truth = world.rows(service, query, as_of=now)
            assert neis_sim.fetch_all(service, **query) == truth, (level, service)
            if service in ("classInfo", "SchoolSchedule", "mealServiceDietInfo"):
                assert truth, (level, service)
