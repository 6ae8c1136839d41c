"""The school registry: which schools exist, of which office and level, kept from schoolInfo.

``sync_school_registry`` asks NEIS for the listing of each office (or the whole country) and
``upsert_schools`` merges it: new schools are added, changed ones updated, and schools a
complete listing no longer has are deactivated (never deleted: their lessons stay).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections import Counter
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction

from collector import clock
from collector.levels import is_known_kind, level_for_kind
from collector.models import Office, School
from collector.neis.records import SchoolRecord
from collector.storage import batches

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SchoolCounts:
    """What ``upsert_schools`` did to the registry."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    deactivated: int = 0

    def __add__(self, other: SchoolCounts) -> SchoolCounts:
        return SchoolCounts(
            *(
                a + b
                for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
            )
        )

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Listing:
    """The scope a schoolInfo answer lists completely: one office, one kind, both or all."""

    office_code: str | None = None
    kind: str | None = None


def is_stale(levels: Iterable[str], offices: Iterable[str] = ()) -> bool:
    """True when no school of these levels (and offices) is known, or the newest sighting is
    older than ``NEIS_REGISTRY_MAX_AGE_HOURS``."""
    schools = School.objects.filter(level__in=list(levels))
    if offices:
        schools = schools.filter(office_id__in=list(offices))
    newest = schools.order_by("-last_seen").values_list("last_seen", flat=True).first()
    max_age = datetime.timedelta(hours=settings.NEIS_REGISTRY_MAX_AGE_HOURS)
    return newest is None or clock.now() - newest > max_age


# --- Schools --------------------------------------------------------------------------------


def upsert_schools(
    records: Iterable[SchoolRecord],
    *,
    seen_at: datetime.datetime,
    listing: Listing | None = None,
) -> SchoolCounts:
    """Add new schools, update changed ones and mark every one seen at ``seen_at``.

    With ``listing``, ``records`` are the complete schoolInfo answer for that scope: active
    schools of the scope missing from it are marked inactive (never deleted; their lessons
    stay). A school seen again is active again, which counts as a change. Offices are created
    or renamed from the records. Runs in one transaction.
    """
    schools = {record.code: record for record in records}
    unknown = Counter(r.kind for r in schools.values() if not is_known_kind(r.kind))
    for kind, count in unknown.items():
        log.warning("%s schools of unknown kind %r are not collected", count, kind)
    with transaction.atomic():
        _upsert_offices({r.office_code: r.office_name for r in schools.values()})
        existing = School.objects.in_bulk(list(schools), field_name="code")
        added, changed, unchanged = [], [], []
        for code, record in schools.items():
            fields = _school_fields(record)
            school = existing.get(code)
            if school is None:
                added.append(
                    School(code=code, first_seen=seen_at, last_seen=seen_at, active=True, **fields)
                )
            elif school.active and all(getattr(school, k) == v for k, v in fields.items()):
                unchanged.append(school.pk)
            else:
                for name, value in fields.items():
                    setattr(school, name, value)
                school.active, school.last_seen = True, seen_at
                changed.append(school)
        School.objects.bulk_create(added, batch_size=500)
        School.objects.bulk_update(
            changed, [*_SCHOOL_FIELDS, "active", "last_seen"], batch_size=500
        )
        for batch in batches(unchanged, 500):
            School.objects.filter(pk__in=batch).update(last_seen=seen_at)
        deactivated = _deactivate_unlisted(listing, schools) if listing else 0
    return SchoolCounts(len(added), len(changed), len(unchanged), deactivated)


_SCHOOL_FIELDS = ("office_id", "name", "kind", "level", "location", "founding_type")
_SCHOOL_FIELDS += ("day_night", "address")


def _school_fields(record: SchoolRecord) -> dict:
    """The School fields a schoolInfo row sets, its level included."""
    level = level_for_kind(record.kind)
    values = (record.office_code, record.name, record.kind, level.value if level else "")
    values += (record.location, record.founding_type, record.day_night, record.address)
    return dict(zip(_SCHOOL_FIELDS, values, strict=True))


def _upsert_offices(names: dict[str, str]) -> None:
    stored = dict(Office.objects.filter(code__in=list(names)).values_list("code", "name"))
    for code, name in sorted(names.items()):
        if code not in stored:
            Office.objects.create(code=code, name=name)
        elif name and stored[code] != name:
            Office.objects.filter(code=code).update(name=name)


def _deactivate_unlisted(listing: Listing, listed: dict[str, SchoolRecord]) -> int:
    scope = School.objects.filter(active=True)
    if listing.office_code:
        scope = scope.filter(office_id=listing.office_code)
    if listing.kind:
        scope = scope.filter(kind="".join(listing.kind.split()))
    gone = [pk for pk, code in scope.values_list("pk", "code") if code not in listed]
    for batch in batches(gone, 500):
        School.objects.filter(pk__in=batch).update(active=False)
    return len(gone)


def sync_school_registry(client, *, offices: Sequence[str] | None = None) -> SchoolCounts:
    """Refresh the registry from schoolInfo: every school, or those of some offices.

    Each office (or the whole country) is one listing and one transaction. Schools missing
    from a listing are deactivated only when the listing is complete: NEIS served every row
    it announced, none was invalid, the answer was not empty and the client has a key.
    Raises what ``client.schools`` raises; the offices done before that stay done.
    """
    total = SchoolCounts()
    for office in offices or [None]:
        fetched = client.schools(office_code=office)
        complete = (
            bool(fetched.rows)
            and fetched.missing == 0
            and not fetched.invalid
            and not client.keyless
        )
        counts = upsert_schools(
            fetched.rows,
            seen_at=clock.now(),
            listing=Listing(office_code=office) if complete else None,
        )
        log.info("school registry %s: %s", office or "all offices", counts.as_dict())
        total += counts
    return total
