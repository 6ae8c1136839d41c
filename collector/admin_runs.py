"""Admin for collection runs and their ledger, the collect-now action and the completeness page."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Count
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from collector import clock, pipeline, report
from collector.ledger import CollectionRun, RunLevel, SchoolRun, Trigger, UnitStatus
from collector.models import Office


class CollectionRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "level",
        "window",
        "trigger",
        "status",
        "units_total",
        "units_done",
        "units_no_data",
        "units_deferred",
        "units_failed",
        "rows_fetched",
        "created_at",
        "finished_at",
    )
    list_filter = ("level", "status", "trigger")
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["retry_failed_schools", "cancel_runs", "refresh_counts"]
    readonly_fields = [field.name for field in CollectionRun._meta.fields] + ["problem_schools"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="window")
    def window(self, run):
        return f"{run.date_from} – {run.date_to}"

    @admin.display(description="failed and deferred schools")
    def problem_schools(self, run):
        units = (
            run.units.filter(status__in=[UnitStatus.FAILED, UnitStatus.DEFERRED])
            .select_related("school")
            .order_by("status", "school__code")[:200]
        )
        if not units:
            return "none"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    u.get_status_display(),
                    u.school.code,
                    u.school.name,
                    u.attempts,
                    u.last_error_code,
                    u.last_error[:300],
                )
                for u in units
            ),
        )
        return format_html(
            "<table><tr><th>status</th><th>school</th><th>attempts</th><th>code</th>"
            "<th>reason</th></tr>{}</table>",
            rows,
        )

    @admin.action(description="Retry failed schools of the selected runs")
    def retry_failed_schools(self, request, queryset):
        failed, sent = {}, {}
        for run in queryset:
            failed[run.pk] = run.units.filter(status=UnitStatus.FAILED).count()
            sent[run.pk] = pipeline.retry_failed(run)
        total = sum(sent.values())
        # On a spent quota dispatch defers instead of sending: say so, or "0" looks like a no-op.
        waiting = max(0, sum(failed.values()) - total)
        detail = ", ".join(f"run {pk}: {n}" for pk, n in sent.items())
        note = f"; {waiting} more deferred until the NEIS quota resets" if waiting else ""
        level = messages.SUCCESS if total else messages.WARNING
        self.message_user(request, f"Re-queued {total} failed schools ({detail}){note}.", level)

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request, queryset):
        done = {run.pk: run.cancel() for run in queryset if run.is_open}
        skipped = queryset.count() - len(done)
        self.message_user(
            request,
            f"Cancelled {len(done)} runs ({sum(done.values())} open schools cancelled); "
            f"{skipped} were already finished and left as they were.",
        )

    @admin.action(description="Recount the ledger of the selected runs")
    def refresh_counts(self, request, queryset):
        for run in queryset:
            run.recount()
        self.message_user(request, f"Recounted {queryset.count()} runs.")


class LatestForWeekFilter(admin.SimpleListFilter):
    title = "latest run covering the school week"
    parameter_name = "latest_for_week"

    def lookups(self, request, model_admin):
        this_week = clock.monday_of(clock.today())
        weeks = [this_week - datetime.timedelta(weeks=n) for n in range(3)]
        # A week linked from the completeness page shows as chosen even if it is older.
        try:
            asked = clock.monday_of(datetime.date.fromisoformat(self.value() or ""))
        except ValueError:
            asked = None
        if asked and asked not in weeks:
            weeks.append(asked)
        return [(week.isoformat(), f"week of {week}") for week in weeks]

    def queryset(self, request, queryset):
        if self.value() is None:
            return None
        try:
            week = datetime.date.fromisoformat(self.value())
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from None
        return queryset.filter(pk__in=report.latest_units(clock.monday_of(week)).values("pk"))


class SchoolRunAdmin(admin.ModelAdmin):
    list_display = (
        "run_id",
        "school",
        "status",
        "attempts",
        "retries",
        "pages",
        "rows_fetched",
        "rows_inserted",
        "rows_updated",
        "rows_removed",
        "rows_missing",
        "last_error_code",
        "finished_at",
    )
    list_filter = (
        "status",
        "school__level",
        "school__office",
        "run__trigger",
        LatestForWeekFilter,
    )
    search_fields = ("school__code", "school__name", "=run__id")
    list_select_related = ("school",)
    raw_id_fields = ("run", "school")
    show_full_result_count = False
    readonly_fields = [field.name for field in SchoolRun._meta.fields if field.editable]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CollectNowForm(forms.Form):
    date_from = forms.DateField(label="from", help_text="YYYY-MM-DD")
    date_to = forms.DateField(label="to", help_text="YYYY-MM-DD")

    def clean(self):
        data = super().clean()
        if "date_from" in data and "date_to" in data:
            try:
                pipeline.validate_window(data["date_from"], data["date_to"])
            except pipeline.PipelineError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


def collect_now(modeladmin, request, queryset):
    """Admin action on schools: ask for a window, then start one run per level for them."""
    if "apply" in request.POST:
        form = CollectNowForm(request.POST)
        if form.is_valid():
            by_level: dict[str, list[str]] = {}
            for code, level in queryset.values_list("code", "level"):
                if level:
                    by_level.setdefault(level, []).append(code)
            started, refused = [], []
            for level, codes in sorted(by_level.items()):
                try:
                    run = pipeline.create_run(
                        level,
                        form.cleaned_data["date_from"],
                        form.cleaned_data["date_to"],
                        school_codes=codes,
                        trigger=Trigger.ADMIN,
                        requested_by=request.user.get_username(),
                        refresh_registry=False,
                    )
                except pipeline.PipelineError as exc:
                    refused.append(f"{level}: {exc}")
                    continue
                sent = pipeline.dispatch(run)
                started.append(f"run {run.pk} ({level}: {sent} schools queued)")
            for reason in refused:
                modeladmin.message_user(request, f"Not started: {reason}.", messages.ERROR)
            skipped = queryset.count() - sum(len(c) for c in by_level.values())
            note = f"; {skipped} schools of kinds that are not collected skipped" if skipped else ""
            modeladmin.message_user(request, f"Started {', '.join(started) or 'nothing'}{note}.")
            return None
    else:
        start, end = clock.school_weeks_window(weeks_before=0, weeks_after=0)
        form = CollectNowForm(initial={"date_from": start, "date_to": end})
    return TemplateResponse(
        request,
        "admin/collector/collect_now.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Collect timetables now",
            "form": form,
            "schools": queryset[:50],
            "count": queryset.count(),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            # "Select all N" must reach the second step, or only the first page is collected.
            "select_across": request.POST.get("select_across", "0"),
            "opts": modeladmin.model._meta,
        },
    )


collect_now.short_description = "Collect now (choose a date window)"


def completeness_view(request):
    """A week and level, each office's schools drawn as done / no data / deferred / failed."""
    level = request.GET.get("level", RunLevel.ALL)
    if level not in RunLevel.values:
        level = RunLevel.ALL
    try:
        week = datetime.date.fromisoformat(request.GET.get("week", ""))
    except ValueError:
        week = clock.today()
    monday = clock.monday_of(week)
    friday = monday + datetime.timedelta(days=4)
    runs = CollectionRun.objects.filter(date_from__lte=monday, date_to__gte=friday)
    chosen = report.latest_units(monday)
    if level != RunLevel.ALL:
        chosen = chosen.filter(school__level=level)
    per_office = chosen.values("school__office_id", "status").annotate(n=Count("id")).order_by()
    bars: dict[str, dict] = {code: {} for code in Office.objects.values_list("code", flat=True)}
    for row in per_office:
        bars.setdefault(row["school__office_id"], {})[row["status"]] = row["n"]
    changelist = reverse("admin:collector_schoolrun_changelist")
    shown = [status for status in report.STATUS_COLUMNS if status != UnitStatus.CANCELLED]
    offices = []
    for code, counts in sorted(bars.items()):
        total = sum(counts.values())
        segments = [
            {
                "status": status.value,
                "label": status.label,
                "n": counts.get(status, 0),
                "pct": 100 * counts.get(status, 0) / total if total else 0,
            }
            for status in shown
        ]
        # The same units the bar counts: each school's latest, of this level, failed.
        query = {"status__exact": UnitStatus.FAILED, "school__office__code__exact": code}
        if level != RunLevel.ALL:
            query["school__level__exact"] = level
        query["latest_for_week"] = monday.isoformat()
        failed_link = f"{changelist}?{urlencode(query)}" if counts.get(UnitStatus.FAILED) else ""
        offices.append(
            {
                "code": code,
                "total": total,
                "segments": [s for s in segments if s["n"]],
                "failed_link": failed_link,
            }
        )
    context = {
        **admin.site.each_context(request),
        "title": f"Completeness: {level}, school week of {monday}",
        "level": level,
        "levels": RunLevel.choices,
        "week": monday,
        "previous_week": monday - datetime.timedelta(weeks=1),
        "next_week": monday + datetime.timedelta(weeks=1),
        "offices": offices,
        "legend": [(status.value, status.label) for status in shown],
        "runs": runs.count(),
    }
    return TemplateResponse(request, "admin/collector/completeness.html", context)


def completeness_urls():
    return [
        path(
            "collector/completeness/",
            admin.site.admin_view(completeness_view),
            name="collector_completeness",
        )
    ]
