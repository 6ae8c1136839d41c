"""The school registry: upsert_schools, sync_school_registry and the kind -> level mapping."""

from __future__ import annotations

import dataclasses
import datetime
import logging

import pytest
from django.utils import timezone

from collector.levels import KIND_LEVELS, SchoolLevel, level_for_kind
from collector.models import Office, School
from collector.neis.records import Level
from collector.registry import Listing, SchoolCounts, sync_school_registry, upsert_schools
from tests.storage.factories import school_record

pytestmark = pytest.mark.django_db

EARLIER = datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC)
LATER = EARLIER + datetime.timedelta(days=1)


def test_it_adds_changes_and_keeps_schools():
    first = [school_record("7010001"), school_record("7010002"), school_record("7010003")]
    assert upsert_schools(first, seen_at=EARLIER) == SchoolCounts(added=3)
    renamed = dataclasses.replace(first[1], name="새이름초등학교")
    counts = upsert_schools([first[0], renamed, school_record("7010004")], seen_at=LATER)
    assert counts == SchoolCounts(added=1, changed=1, unchanged=1)
    school = School.objects.get(code="7010002")
    assert (school.name, school.first_seen, school.last_seen) == ("새이름초등학교", EARLIER, LATER)
    assert School.objects.get(code="7010001").last_seen == LATER
    assert School.objects.get(code="7010003").last_seen == EARLIER


def test_it_deactivates_schools_missing_from_a_complete_office_listing():
    upsert_schools(
        [school_record("7010001"), school_record("7010002"), school_record("9010001", "C10")],
        seen_at=EARLIER,
    )
    counts = upsert_schools(
        [school_record("7010001")], seen_at=LATER, listing=Listing(office_code="B10")
    )
    assert counts == SchoolCounts(unchanged=1, deactivated=1)
    assert dict(School.objects.values_list("code", "active")) == {
        "7010001": True,
        "7010002": False,  # not listed by B10 any more
        "9010001": True,  # another office: not part of the listing
    }


def test_it_deactivates_nothing_without_a_listing():
    upsert_schools([school_record("7010001"), school_record("7010002")], seen_at=EARLIER)
    assert upsert_schools([school_record("7010001")], seen_at=LATER).deactivated == 0
    assert School.objects.filter(active=True).count() == 2


def test_it_limits_a_kind_listing_to_that_kind():
    upsert_schools(
        [school_record("7010001"), school_record("7020001", kind="중학교")], seen_at=EARLIER
    )
    counts = upsert_schools([], seen_at=LATER, listing=Listing("B10", "중학교"))
    assert counts.deactivated == 1
    assert not School.objects.get(code="7020001").active
    assert School.objects.get(code="7010001").active


def test_it_reactivates_a_school_listed_again():
    upsert_schools([school_record("7010001")], seen_at=EARLIER)
    upsert_schools([], seen_at=EARLIER, listing=Listing("B10"))
    counts = upsert_schools([school_record("7010001")], seen_at=LATER)
    assert counts == SchoolCounts(changed=1)
    assert School.objects.get(code="7010001").active


def test_it_maps_the_kind_to_a_level_in_one_place():
    records = [
        school_record("1", kind="초등학교"),
        school_record("2", kind="각종학교(중)"),
        school_record("3", kind="방송통신고등학교"),
        school_record("4", kind="특수학교"),
        school_record("5", kind="공동실습소"),
        school_record("6", kind="외국인학교"),
    ]
    upsert_schools(records, seen_at=EARLIER)
    assert dict(School.objects.values_list("code", "level")) == {
        "1": "elementary",
        "2": "middle",
        "3": "high",
        "4": "special",
        "5": "",
        "6": "",
    }


def test_it_ignores_whitespace_in_kinds():
    assert level_for_kind("각종학교 (고)") == Level.HIGH
    assert level_for_kind(" 중학교 ") == Level.MIDDLE


def test_it_logs_and_skips_unknown_kinds(caplog):
    with caplog.at_level(logging.WARNING, logger="collector.storage"):
        upsert_schools([school_record("1", kind="우주학교")], seen_at=EARLIER)
    assert School.objects.get(code="1").level == ""
    assert "우주학교" in caplog.text


def test_it_keeps_level_choices_in_step_with_the_records():
    assert {level.value for level in Level} | {""} == set(SchoolLevel.values)
    assert all(level is None or isinstance(level, Level) for level in KIND_LEVELS.values())


def test_it_creates_and_renames_offices_by_code():
    Office.objects.filter(code="K10").delete()
    upsert_schools([school_record("1", "K10", office_name="강원도교육청")], seen_at=EARLIER)
    upsert_schools([school_record("1", "K10", office_name="강원특별자치도교육청")], seen_at=LATER)
    assert Office.objects.get(code="K10").name == "강원특별자치도교육청"


class FakeClient:
    """Stands in for NeisClient.schools(): one canned answer per office."""

    def __init__(self, answers, *, missing=0, keyless=False):
        self.answers, self.missing, self.keyless = answers, missing, keyless

    def schools(self, *, office_code=None, kind=None, school_code=None):
        rows = self.answers[office_code]
        return type("Fetched", (), {"rows": rows, "missing": self.missing, "invalid": 0})()


def test_it_syncs_offices_and_deactivates_only_after_a_complete_listing():
    upsert_schools([school_record("7010001"), school_record("7010002")], seen_at=EARLIER)
    short_served = FakeClient({"B10": [school_record("7010001")]}, missing=1)
    assert sync_school_registry(short_served, offices=["B10"]) == SchoolCounts(unchanged=1)
    assert School.objects.filter(active=True).count() == 2
    complete = FakeClient({"B10": [school_record("7010001")]})
    counts = sync_school_registry(complete, offices=["B10"])
    assert counts == SchoolCounts(unchanged=1, deactivated=1)
    assert counts.as_dict() == {"added": 0, "changed": 0, "unchanged": 1, "deactivated": 1}


def test_it_never_deactivates_on_an_empty_or_keyless_listing():
    upsert_schools([school_record("7010001")], seen_at=timezone.now())
    assert sync_school_registry(FakeClient({None: []})).deactivated == 0
    keyless = FakeClient({None: [school_record("7010002")]}, keyless=True)
    assert sync_school_registry(keyless).deactivated == 0
    assert School.objects.filter(active=True).count() == 2
