"""Completeness down to the class and the day: what a school-week should hold, and whether it does.

A request that succeeded is not a complete school-week: NEIS may serve some classes or days
only (a class uploaded late, a school still typing). Two yearly services say what to expect:

- ``classInfo`` lists a school's classes of a school year (``SchoolClass``), asked once a
  semester;
- ``SchoolSchedule`` lists its days without lessons, 휴업일 and public holidays
  (``SchoolDayOff``), asked once a semester for the whole semester (one page), and again during
  the month for a school whose weeks miss days (a day off announced late).

``CalendarFetch`` records which of those answers are stored, so that "nothing known" is never
read as "nothing expected". For each school-week ``SchoolWeek`` keeps classes expected versus
classes with lessons and school days expected versus days with lessons, computed set-based in
SQL (``SchoolWeekQuerySet.recompute``) after each school is collected and after its calendar
changes. A school-week with lessons whose classes or days fall short is *partial*:
``SchoolWeek.objects.partial()`` is what a refresh plan re-polls first. A school-week without
any lesson is not partial: that is "no data" (not published yet), which the ledger says.

Requests go through the client with the shared request budget (``limiter``): every page takes
a slot like a timetable page, a spent quota blocks the key for everyone, and a refresh stops
at its own ``max_requests``.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections import Counter
from collections.abc import Iterable

from django.apps import apps
from django.db import connection, models, transaction

from collector import clock
from collector.neis.errors import NeisError, NeisQuotaError
from collector.neis.records import ClassRecord, Level, ScheduleRecord

log = logging.getLogger(__name__)

ONE_DAY = datetime.timedelta(days=1)
#: SBTR_DD_SC_NM values of a day without lessons (docs/neis-api.md section 4.7).
NO_LESSONS = frozenset({"휴업일", "공휴일"})


def school_weeks(date_from: datetime.date, date_to: datetime.date) -> list[datetime.date]:
    """Mondays of the school weeks (Monday to Friday) lying wholly between two dates."""
    monday = clock.monday_of(date_from)
    if monday < date_from:
        monday += 7 * ONE_DAY
    out = []
    while monday + 4 * ONE_DAY <= date_to:
        out.append(monday)
        monday += 7 * ONE_DAY
    return out


class FetchKind(models.TextChoices):
    CLASSES = "classes", "classInfo"
    SCHEDULE = "schedule", "SchoolSchedule"


def semester_bounds(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    """First and last day of ``day``'s semester: March-August, or September-February."""
    ay = clock.academic_year(day)
    if datetime.date(ay, 3, 1) <= day < datetime.date(ay, 9, 1):
        return datetime.date(ay, 3, 1), datetime.date(ay, 8, 31)
    return datetime.date(ay, 9, 1), datetime.date(ay + 1, 3, 1) - ONE_DAY


def class_key(record: ClassRecord, level: str) -> dict:
    """The columns naming a class as its level's timetable rows do (docs section 4.7): the
    day/night course only in middle and high schools, the course only in special schools."""
    return {
        "grade": record.grade,
        "class_name": record.class_name,
        "day_night": record.day_night if level in (Level.MIDDLE, Level.HIGH) else "",
        "course": record.course if level == Level.SPECIAL else "",
    }


class SchoolClass(models.Model):
    """One class of one school year, as classInfo lists it."""

    school = models.ForeignKey("collector.School", on_delete=models.CASCADE, related_name="+")
    academic_year = models.SmallIntegerField("academic year", help_text="AY.")
    grade = models.SmallIntegerField("grade", help_text="GRADE.")
    class_name = models.TextField("class", help_text="CLASS_NM.")
    day_night = models.TextField(
        "day/night course", blank=True, help_text="DGHT_CRSE_SC_NM, middle and high only."
    )
    course = models.TextField("course", blank=True, help_text="SCHUL_CRSE_SC_NM, special only.")
    track = models.TextField("track", blank=True, help_text="ORD_SC_NM.")
    department = models.TextField("department", blank=True, help_text="DDDEP_NM.")

    class Meta:
        verbose_name = "class (classInfo)"
        verbose_name_plural = "classes (classInfo)"
        constraints = [
            models.UniqueConstraint(
                fields=["school", "academic_year", "grade", "class_name", "day_night", "course"],
                name="school_class_unique",
            )
        ]

    def __str__(self):
        return f"{self.school_id} {self.academic_year} {self.grade}-{self.class_name}"


class SchoolDayOff(models.Model):
    """A weekday without lessons at one school, as SchoolSchedule lists it."""

    school = models.ForeignKey("collector.School", on_delete=models.CASCADE, related_name="+")
    date = models.DateField("date", help_text="AA_YMD.")
    kind = models.CharField("kind", max_length=20, help_text="SBTR_DD_SC_NM.")
    name = models.CharField("event", max_length=200, blank=True, help_text="EVENT_NM.")

    class Meta:
        verbose_name = "day without lessons"
        verbose_name_plural = "days without lessons"
        constraints = [
            models.UniqueConstraint(fields=["school", "date"], name="school_day_off_unique")
        ]

    def __str__(self):
        return f"{self.school_id} {self.date} {self.name}"


class CalendarFetch(models.Model):
    """Which stored answer covers which period: a school year's classes, or the days off of
    a range of dates. Without one, a school-week's expectation is unknown, never zero."""

    school = models.ForeignKey("collector.School", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField("service", max_length=10, choices=FetchKind.choices)
    period_start = models.DateField("from")
    period_end = models.DateField("to")
    fetched_at = models.DateTimeField("fetched")
    rows = models.IntegerField("rows", default=0)
    requests = models.IntegerField("requests", default=0)

    class Meta:
        verbose_name = "calendar answer"
        constraints = [
            models.UniqueConstraint(
                fields=["school", "kind", "period_start"], name="calendar_fetch_unique"
            )
        ]

    def __str__(self):
        return f"{self.school_id} {self.kind} {self.period_start}..{self.period_end}"


class SchoolWeekQuerySet(models.QuerySet):
    def partial(self) -> SchoolWeekQuerySet:
        """School-weeks with lessons but classes or school days missing: what NEIS has not
        published yet. Newest week first, the most classes missing first within a week.

        The hook for a refresh plan: ``SchoolWeek.objects.partial().filter(monday__in=weeks)``
        gives the school-weeks to re-poll before any other (``values_list("school_id",
        "monday")``); a new collection of the school recomputes its weeks, so a completed one
        leaves this set by itself.
        """
        return self.filter(partial=True).order_by("-monday", "classes_seen", "school_id")

    def recount_school(
        self, school_id: int, mondays: list[datetime.date], stored, *, savepoint: bool = True
    ) -> int:
        """Recount one school's weeks after a store, unless the store changed no lesson and
        every week is counted already (an unchanged re-run, most of a weekly run: a recount
        reads the weeks' lessons twice, some 30 ms of the database a week). ``stored`` is the
        ``storage.StoreResult``; calendars changing recount through their own path.

        A store that compared or wrote says its window and the lessons it now holds by date
        (``stored.window``, ``stored.by_day``): when the weeks lie wholly inside that window,
        as the pipeline's do (``school_weeks``), their lessons and days are counted from it
        instead of read back (the database's recount of a first-loaded unit, 1.5 ms, drops
        to 0.9). ``savepoint=False``: inside a caller's transaction, which the caller rolls
        back whole on any failure (the pipeline's), it takes no savepoint of its own."""
        if not mondays:
            return 0
        weeks = sorted(set(mondays))
        if not (stored.inserted or stored.removed):
            with connection.cursor() as cursor:  # plain SQL: once a unit, most of a weekly run
                marks = ", ".join(["%s"] * len(weeks))
                cursor.execute(f"{_COUNTED_WEEKS} ({marks})", [school_id, *weeks])
                if cursor.fetchone()[0] == len(weeks):
                    return 0
        inside = stored.window is not None and (
            stored.window[0] <= weeks[0] and weeks[-1] + 4 * ONE_DAY <= stored.window[1]
        )
        if not inside or any(monday.weekday() for monday in weeks):
            return self.recompute(mondays, [school_id])
        with transaction.atomic(savepoint=savepoint):
            return _recompute_weeks(weeks, [school_id], stored.by_day)

    def recompute(
        self, mondays: Iterable[datetime.date], schools: Iterable[int] | None = None
    ) -> int:
        """Recount the school-weeks of ``mondays`` for ``schools`` (ids; None: every active
        school with a level) from the stored lessons, classes and days off; returns rows written.

        Set-based: for given schools, one DELETE and one INSERT ... SELECT for all the weeks;
        for every school, one pair a week (``_recompute_weeks``).
        """
        ids = None if schools is None else sorted(set(schools))
        if ids == []:
            return 0
        weeks = sorted({clock.monday_of(m) for m in mondays})
        if not weeks:
            return 0
        with transaction.atomic():
            if ids is None:  # every school: a week at a time, as a week's lessons are many
                return sum(_recompute_weeks([monday], None) for monday in weeks)
            return _recompute_weeks(weeks, ids)


_COUNTED_WEEKS = "SELECT count(*) FROM collector_schoolweek WHERE school_id = %s AND monday IN"


class SchoolWeek(models.Model):
    """One school's week: classes and school days expected against those with lessons.

    ``classes_expected`` is null until classInfo of the week's school year is stored, and
    ``days_expected`` until SchoolSchedule covers the week: unknown is not missing.
    """

    school = models.ForeignKey("collector.School", on_delete=models.CASCADE, related_name="+")
    monday = models.DateField("week of")
    lessons = models.IntegerField("lessons", default=0)
    classes_expected = models.IntegerField("classes expected", null=True, blank=True)
    classes_seen = models.IntegerField("classes with lessons", default=0)
    days_expected = models.SmallIntegerField("school days expected", null=True, blank=True)
    days_seen = models.SmallIntegerField("days with lessons", default=0)
    partial = models.BooleanField(
        "partial", default=False, help_text="Lessons stored, but classes or days missing."
    )
    computed_at = models.DateTimeField("computed")

    objects = SchoolWeekQuerySet.as_manager()

    class Meta:
        verbose_name = "school week"
        constraints = [
            models.UniqueConstraint(fields=["school", "monday"], name="school_week_unique")
        ]
        indexes = [models.Index(fields=["monday", "partial"], name="school_week_partial")]

    def __str__(self):
        return f"{self.school_id} week of {self.monday}"

    @property
    def classes_missing(self) -> int | None:
        if self.classes_expected is None:
            return None
        return max(0, self.classes_expected - self.classes_seen)

    @property
    def days_missing(self) -> int | None:
        if self.days_expected is None:
            return None
        return max(0, self.days_expected - self.days_seen)


def _in(column: str, ids: list[int] | None) -> tuple[str, list]:
    if ids is None:
        return "", []
    return f" AND {column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _recompute_weeks(
    mondays: list[datetime.date], ids: list[int] | None, by_day: Counter | None = None
) -> int:
    """Recount the school-weeks of ``mondays`` for ``ids`` (None: every active school with a
    level) in one DELETE and one INSERT ... SELECT, whatever the number of weeks: a unit's
    three weeks were three of each, and planning these statements costs the database as much
    as running them for one school.

    ``by_day``: the one school's lessons by date, known to the caller, for every day of the
    weeks (a day not in it has none); the weeks' lessons and days are then not read."""
    weeks = []  # (monday, friday, academic year, its first day[, lessons, days]): a table
    for monday in mondays:
        friday = monday + 4 * ONE_DAY
        ay = clock.academic_year(friday)
        weeks.append((monday, friday, ay, datetime.date(ay, 3, 1)))
        if by_day is not None:
            counts = [by_day[monday + n * ONE_DAY] for n in range(5)]
            weeks[-1] += (sum(counts), len(counts) - counts.count(0))
    now = connection.ops.adapt_datetimefield_value(clock.now())
    week, classes, offs, fetches = (
        SchoolWeek._meta.db_table,
        SchoolClass._meta.db_table,
        SchoolDayOff._meta.db_table,
        CalendarFetch._meta.db_table,
    )
    lessons = apps.get_model("collector", "Lesson")._meta.db_table
    school = apps.get_model("collector", "School")._meta.db_table
    s_in, s_p = _in("s.id", ids)
    l_in, l_p = _in("l.school_id", ids)
    c_in, c_p = _in("c.school_id", ids)
    o_in, o_p = _in("o.school_id", ids)
    w_in, w_p = _in("school_id", ids)
    table = ", ".join(["(" + ", ".join(["%s"] * len(weeks[0])) + ")"] * len(weeks))
    # The school's scope: the schools asked for, or every active school with a level.
    scope = "s.level <> ''" + ("" if ids is not None else " AND s.active")
    covered = (
        f"EXISTS (SELECT 1 FROM {fetches} f WHERE f.school_id = s.id AND f.kind = %s "
        "AND f.period_start <= {day} AND f.period_end >= {day})"
    )
    classes_known = covered.format(day="wk.year_start")
    monday_known, friday_known = covered.format(day="wk.monday"), covered.format(day="wk.friday")
    # The weeks' lessons and days: read from the lessons (lw), or the caller's (wk's own).
    lessons_read = by_day is None
    if lessons_read:
        columns, lessons_seen, days_seen = "", "COALESCE(lw.lessons, 0)", "COALESCE(lw.days, 0)"
        lessons_of_weeks = f"""
        LEFT JOIN (SELECT wk.monday, l.school_id, COUNT(*) AS lessons,
                          COUNT(DISTINCT l.date) AS days
                   FROM wk JOIN {lessons} l ON l.date BETWEEN wk.monday AND wk.friday{l_in}
                   GROUP BY wk.monday, l.school_id) lw
               ON lw.school_id = s.id AND lw.monday = wk.monday"""
    else:
        columns, lessons_seen, days_seen = ", lessons, days", "wk.lessons", "wk.days"
        lessons_of_weeks = ""
    # A lesson's week is the row of ``wk`` whose Monday to Friday holds its date (one index
    # range of the natural key per school and week); classes are matched on their timetable
    # columns with leading zeros aside (archive years pad CLASS_NM).
    select = f"""
        WITH wk (monday, friday, ay, year_start{columns}) AS (VALUES {table})
        SELECT s.id AS school_id, wk.monday AS monday,
               {lessons_seen} AS lessons,
               CASE WHEN {classes_known} THEN COALESCE(ce.n, 0) END AS classes_expected,
               COALESCE(cs.n, 0) AS classes_seen,
               CASE WHEN {monday_known} AND {friday_known}
                    THEN 5 - COALESCE(o.n, 0) END AS days_expected,
               {days_seen} AS days_seen
        FROM {school} s CROSS JOIN wk{lessons_of_weeks}
        LEFT JOIN (SELECT wk.monday, c.school_id, COUNT(*) AS n
                   FROM wk JOIN {classes} c ON c.academic_year = wk.ay{c_in}
                   GROUP BY wk.monday, c.school_id) ce
               ON ce.school_id = s.id AND ce.monday = wk.monday
        LEFT JOIN (SELECT wk.monday, c.school_id, COUNT(*) AS n
                   FROM wk JOIN {classes} c ON c.academic_year = wk.ay{c_in}
                   JOIN (SELECT DISTINCT wk.monday, l.school_id, l.grade,
                                LTRIM(l.class_name, '0') AS cn, l.day_night, l.course
                         FROM wk JOIN {lessons} l
                           ON l.date BETWEEN wk.monday AND wk.friday{l_in}
                         -- no class listed, none to match: the sort is not needed
                         WHERE EXISTS (SELECT 1 FROM {classes} k WHERE k.school_id = l.school_id
                                       AND k.academic_year = wk.ay)) l
                     ON l.monday = wk.monday AND l.school_id = c.school_id
                    AND l.grade = c.grade AND l.cn = LTRIM(c.class_name, '0')
                    AND l.day_night = c.day_night AND l.course = c.course
                   GROUP BY wk.monday, c.school_id) cs
               ON cs.school_id = s.id AND cs.monday = wk.monday
        LEFT JOIN (SELECT wk.monday, o.school_id, COUNT(*) AS n
                   FROM wk JOIN {offs} o ON o.date BETWEEN wk.monday AND wk.friday{o_in}
                   GROUP BY wk.monday, o.school_id) o
               ON o.school_id = s.id AND o.monday = wk.monday
        WHERE {scope}{s_in}
    """
    kinds = [FetchKind.CLASSES.value, FetchKind.SCHEDULE.value, FetchKind.SCHEDULE.value]
    params = [*[v for w in weeks for v in w], *kinds, *(l_p if lessons_read else [])]
    params += [*c_p, *c_p, *l_p, *o_p, *s_p]
    insert = f"""
        INSERT INTO {week} (school_id, monday, lessons, classes_expected, classes_seen,
                            days_expected, days_seen, partial, computed_at)
        SELECT school_id, monday, lessons, classes_expected, classes_seen, days_expected,
               days_seen,
               CASE WHEN lessons > 0 AND (classes_seen < classes_expected
                                          OR days_seen < days_expected)
                    THEN %s ELSE %s END,
               %s
        FROM ({select}) counted
    """
    marks = ", ".join(["%s"] * len(weeks))
    delete = f"DELETE FROM {week} WHERE monday IN ({marks}){w_in}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one round trip: once a unit
            cursor.execute(f"{delete};\n{insert}", [*mondays, *w_p, True, False, now, *params])
            cursor.nextset()  # the INSERT's count
        else:
            cursor.execute(delete, [*mondays, *w_p])
            cursor.execute(insert, [True, False, now, *params])
        return cursor.rowcount


# --- Storing classInfo and SchoolSchedule answers ------------------------------------------


def store_classes(
    school, academic_year: int, records: Iterable[ClassRecord], *, requests: int = 0
) -> int:
    """Make the stored classes of a school year equal a classInfo answer; returns how many.

    An empty answer stores nothing (classInfo not published yet: expectations stay unknown).
    """
    keys = {}
    for record in records:
        key = class_key(record, school.level)
        keys[tuple(key.values())] = SchoolClass(
            school=school,
            academic_year=academic_year,
            track=record.track,
            department=record.department,
            **key,
        )
    if not keys:
        return 0
    start = datetime.date(academic_year, 3, 1)
    with transaction.atomic():
        SchoolClass.objects.filter(school=school, academic_year=academic_year).delete()
        SchoolClass.objects.bulk_create(list(keys.values()), batch_size=500)
        _fetched(school, FetchKind.CLASSES, start, datetime.date(academic_year + 1, 3, 1) - ONE_DAY)
        CalendarFetch.objects.filter(
            school=school, kind=FetchKind.CLASSES, period_start=start
        ).update(rows=len(keys), requests=requests)
    return len(keys)


def store_schedule(
    school,
    date_from: datetime.date,
    date_to: datetime.date,
    records: Iterable[ScheduleRecord],
    *,
    requests: int = 0,
) -> int:
    """Make a school's stored weekdays without lessons between two dates equal a
    SchoolSchedule answer; returns how many. Weekends never count, so they are not kept.
    An empty answer stores nothing (not published yet: expectations stay unknown).
    """
    records = list(records)
    if not records:
        return 0
    off = {}
    for record in records:
        if record.day_kind in NO_LESSONS and record.date.weekday() < 5:
            off.setdefault(
                record.date,
                SchoolDayOff(
                    school=school, date=record.date, kind=record.day_kind, name=record.name
                ),
            )
    with transaction.atomic():
        SchoolDayOff.objects.filter(school=school, date__range=(date_from, date_to)).delete()
        SchoolDayOff.objects.bulk_create(list(off.values()), batch_size=500)
        # A new answer replaces the ones it covers.
        CalendarFetch.objects.filter(
            school=school,
            kind=FetchKind.SCHEDULE,
            period_start__gte=date_from,
            period_end__lte=date_to,
        ).delete()
        _fetched(school, FetchKind.SCHEDULE, date_from, date_to)
        CalendarFetch.objects.filter(
            school=school, kind=FetchKind.SCHEDULE, period_start=date_from
        ).update(rows=len(records), requests=requests)
    return len(off)


def _fetched(school, kind: str, start: datetime.date, end: datetime.date) -> None:
    CalendarFetch.objects.update_or_create(
        school=school,
        kind=kind,
        period_start=start,
        defaults={"period_end": end, "fetched_at": clock.now()},
    )


# --- Refreshing ------------------------------------------------------------------------------


@dataclasses.dataclass
class Refresh:
    """What ``refresh_calendars`` did."""

    schools: int = 0
    classes: int = 0  # classInfo answers stored
    schedules: int = 0  # SchoolSchedule answers stored
    requests: int = 0
    stopped: str = ""  # why it stopped before the end, if it did

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def due(school, today: datetime.date) -> tuple[bool, bool]:
    """(classInfo due, SchoolSchedule due) for a school on ``today``.

    classInfo: once a semester (no answer for this school year since the semester began).
    SchoolSchedule: once a semester for the whole semester, and again in a month where a
    school-week of the school had fewer days with lessons than expected, if not asked since
    the month began (a day off announced late is then learnt within the month).
    """
    sem_start, _ = semester_bounds(today)
    ay = clock.academic_year(today)
    fetches = {
        (f.kind, f.period_start): f.fetched_at
        for f in CalendarFetch.objects.filter(school=school, period_end__gte=sem_start)
    }
    sem_start_at = datetime.datetime.combine(sem_start, datetime.time(), clock.SEOUL)
    classes_at = fetches.get((FetchKind.CLASSES, datetime.date(ay, 3, 1)))
    classes_due = classes_at is None or classes_at < sem_start_at
    schedule_at = fetches.get((FetchKind.SCHEDULE, sem_start))
    schedule_due = schedule_at is None or schedule_at < sem_start_at
    if not schedule_due:
        month = today.replace(day=1)
        month_at = datetime.datetime.combine(month, datetime.time(), clock.SEOUL)
        short = SchoolWeek.objects.filter(
            school=school,
            monday__gte=clock.monday_of(month),
            monday__lte=today,
            lessons__gt=0,
            days_seen__lt=models.F("days_expected"),
        ).exists()
        schedule_due = short and schedule_at < month_at
    return classes_due, schedule_due


def refresh_calendars(
    client,
    schools: Iterable,
    *,
    today: datetime.date | None = None,
    max_requests: int = 2000,
    budget=None,
) -> Refresh:
    """Ask classInfo and SchoolSchedule of each school where ``due`` says so, store the
    answers and recount the school's weeks already counted this semester.

    ``client`` carries the shared request budget (``NeisClient.from_settings(limiter=...)``):
    these requests share the key's rate, concurrency and daily quota with the collection runs.
    Stops before a school once ``max_requests`` are spent, and at the first ERROR-337 (the
    key is then blocked in ``budget`` for every process until the reset). Other NEIS errors
    of one school are logged and the next school is asked.
    """
    today = today or clock.today()
    sem_start, sem_end = semester_bounds(today)
    ay = clock.academic_year(today)
    done = Refresh()
    for school in schools:
        if budget is not None and budget.blocked_until():
            done.stopped = "the key's daily quota is spent"
            break
        if done.requests + 2 > max_requests:
            done.stopped = f"max_requests ({max_requests}) reached"
            break
        classes_due, schedule_due = due(school, today)
        if not (classes_due or schedule_due):
            continue
        done.schools += 1
        try:
            if classes_due:
                got = client.classes(school.office_id, school.code, ay)
                done.requests += got.requests
                if store_classes(school, ay, got.rows, requests=got.requests):
                    done.classes += 1
            if schedule_due:
                got = client.schedule(school.office_id, school.code, sem_start, sem_end)
                done.requests += got.requests
                store_schedule(school, sem_start, sem_end, got.rows, requests=got.requests)
                if got.rows:
                    done.schedules += 1
        except NeisQuotaError as exc:
            if budget is not None:
                budget.block_until(exc.resets_at.timestamp())
                budget.note_quota_hit()  # the day's observed cap (collector/quota.py)
            done.stopped = f"{exc.code}: quota spent until {exc.resets_at.isoformat()}"
            break
        except NeisError as exc:
            log.warning("calendar of school %s: %s %s", school.code, exc.code, exc.message)
            continue
        weeks = SchoolWeek.objects.filter(
            school=school, monday__gte=clock.monday_of(sem_start), monday__lte=sem_end
        ).values_list("monday", flat=True)
        SchoolWeek.objects.recompute(list(weeks), [school.pk])
    return done
