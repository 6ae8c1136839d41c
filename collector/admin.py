"""Admin for offices, schools, subjects and lessons: read-only windows onto what NEIS served.

Everything here is filled by ``collector.storage`` from NEIS, so nothing is editable: a hand
edit would be overwritten by the next listing or run. The lesson list never reads the whole
table (hundreds of millions of rows): it pages in natural-key order, which the unique index
serves; it counts at most ``LessonPaginator.limit`` rows; its filters list offices, levels and
dates without looking at lessons; and it has no ``date_hierarchy``, whose year links come from
a DISTINCT over the whole table.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from collector import clock
from collector.admin_console import lessons_by_week, school_runs
from collector.admin_coverage import MissingInWeekFilter
from collector.admin_runs import CollectionRunAdmin, RunPermissions, SchoolRunAdmin, collect_now
from collector.completeness import SchoolClass, SchoolDayOff, SchoolWeek
from collector.console import estimated_lessons
from collector.ledger import CollectionRun, SchoolRun
from collector.models import LESSON_KEY, Lesson, Office, School, Subject
from collector.quota import QuotaDay
from collector.workers import STALE_AFTER, WorkerHeartbeat


class ReadOnlyAdmin(admin.ModelAdmin):
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Office)
class OfficeAdmin(ReadOnlyAdmin):
    list_display = ("code", "name")
    search_fields = ("=code", "name")


@admin.register(School)
class SchoolAdmin(RunPermissions, ReadOnlyAdmin):
    actions = [collect_now]
    list_display = ("code", "name", "office", "kind", "level", "active", "last_seen")
    list_filter = ("office", "level", "active", "kind", MissingInWeekFilter)
    list_select_related = ("office",)
    search_fields = ("^code", "name")
    search_help_text = "School code (prefix) or part of the name."
    readonly_fields = ("runs", "lessons_by_week")

    @admin.display(description="its runs (newest first)")
    def runs(self, school):
        return school_runs(school)

    @admin.display(description="lessons by school week")
    def lessons_by_week(self, school):
        return lessons_by_week(school)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    """The workers that said they are alive, and the queues they consume (collector.workers)."""

    list_display = ("hostname", "queues", "pid", "started_at", "seen_at", "alive")

    @admin.display(description="alive", boolean=True)
    def alive(self, heartbeat):
        return heartbeat.seen_at >= clock.now() - STALE_AFTER


@admin.register(QuotaDay)
class QuotaDayAdmin(ReadOnlyAdmin):
    """Each key's requests per NEIS quota day and the cap observed at its first ERROR-337
    (collector.quota), by key id; written by the watchdog from the shared budget."""

    list_display = ("day", "key_id", "requests", "observed_cap", "capped_at", "updated_at")
    list_filter = ("key_id",)
    date_hierarchy = "day"
    search_fields = ("=key_id",)


@admin.register(Subject)
class SubjectAdmin(ReadOnlyAdmin):
    list_display = ("name", "raw")
    search_fields = ("name", "raw")


class LessonPaginator(Paginator):
    """Counts at most ``limit`` matching lessons, so a page never costs a full COUNT(*).

    Lists stop after ``limit`` rows (100 pages); narrow the search to see others.
    """

    limit = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.limit].count()


@admin.register(Lesson)
class LessonAdmin(ReadOnlyAdmin):
    list_display = (
        "date",
        "school",
        "office",
        "grade",
        "class_name",
        "period",
        "subject_name",
        "subject_raw",
        "classroom",
        "academic_year",
        "semester",
        "load_dtm",
        "changed_at",
    )
    list_filter = ("school__office", "school__level", "date")
    list_select_related = ("school", "subject")
    search_fields = ("=school__code", "school__name")
    search_help_text = "Exact school code, or part of the school name."
    # The natural key's order, which its unique index serves: pages without sorting.
    ordering = tuple(f"{name}_id" if name in ("school", "subject") else name for name in LESSON_KEY)
    sortable_by = ()
    paginator = LessonPaginator
    show_full_result_count = False

    @admin.display(description="office")
    def office(self, lesson):
        return lesson.school.office_id

    @admin.display(description="subject")
    def subject_name(self, lesson):
        return lesson.subject.name

    @admin.display(description="as served")
    def subject_raw(self, lesson):
        return lesson.subject.raw

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        estimate = estimated_lessons()
        if estimate is not None:
            extra_context["subtitle"] = (
                f"About {estimate:,} lessons stored. Lists show at most the first "
                f"{LessonPaginator.limit:,} matches, by school and date."
            )
        return super().changelist_view(request, extra_context)


# The index links the console's own pages (completeness, changes) above the model list.
admin.site.index_template = "admin/collector/index.html"
# The project serves no site outside admin: "View site" would lead to a 404.
admin.site.site_url = None
# The console's lists are wide (runs, ledger, the coverage grid); the index lists every model.
admin.site.enable_nav_sidebar = False
admin.site.register(CollectionRun, CollectionRunAdmin)
admin.site.register(SchoolRun, SchoolRunAdmin)


@admin.register(SchoolWeek)
class SchoolWeekAdmin(ReadOnlyAdmin):
    """Each collected school-week against classInfo and SchoolSchedule: partial ones first."""

    list_display = (
        "school",
        "monday",
        "partial",
        "lessons",
        "classes_seen",
        "classes_expected",
        "days_seen",
        "days_expected",
        "computed_at",
    )
    list_filter = ("partial", "monday", "school__level", "school__office")
    list_select_related = ("school",)
    search_fields = ("^school__code", "school__name")
    ordering = ("-monday", "-partial", "school__code")
    show_full_result_count = False


@admin.register(SchoolClass)
class SchoolClassAdmin(ReadOnlyAdmin):
    list_display = ("school", "academic_year", "grade", "class_name", "day_night", "course")
    list_filter = ("academic_year", "grade")
    list_select_related = ("school",)
    search_fields = ("^school__code",)


@admin.register(SchoolDayOff)
class SchoolDayOffAdmin(ReadOnlyAdmin):
    list_display = ("school", "date", "kind", "name")
    list_filter = ("kind",)
    list_select_related = ("school",)
    search_fields = ("^school__code",)
