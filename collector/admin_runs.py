"""Admin for collection runs and their ledger, the collect-now action and the completeness page.

Reading needs view permission. Whatever enqueues or changes work asks for one of the run
permissions (``CollectionRun.Meta.permissions``) through ``@admin.action(permissions=...)``, so
it is absent from the action list of anyone without it, and Django refuses it if posted anyway.
What cannot be undone or spends NEIS quota (collect now, retry, cancel) first shows a page that
says what it will do, and only a POST that confirms it acts. Every action writes the admin log
(``LogEntry``), so a run's History says who started, cancelled, retried or recounted it.
"""

from __future__ import annotations

import datetime
import math
from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Avg, Count, Q
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from collector import clock, console, pipeline, report
from collector.admin_console import (
    EstimatedCountPaginator,
    changes_of_run,
    console_context,
    ledger_url,
    no_worker_warning,
    progress_bar,
    run_links,
    unit_reason,
)
from collector.ledger import (
    CollectionRun,
    LatestUnit,
    RunLevel,
    RunStatus,
    SchoolRun,
    Trigger,
    UnitStatus,
)
from collector.models import Office, School
from collector.workers import WorkerHeartbeat

CHECKBOX = admin.helpers.ACTION_CHECKBOX_NAME
# The POST field of a confirmation page's button: without it an action only shows that page.
CONFIRM = "confirm"
# Rows a confirmation page lists; the counts above it cover the whole selection.
LISTED = 50


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, in the singular for one: '1 school', '0 schools', '1,204 schools'."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


class RunPermissions:
    """The ``has_<name>_permission`` methods that ``@admin.action(permissions=[name])`` calls.

    The permissions live on CollectionRun whichever model's list offers the action (collect
    now is an action on schools).
    """

    def has_start_collection_permission(self, request) -> bool:
        return request.user.has_perm("collector.start_collection")

    def has_cancel_run_permission(self, request) -> bool:
        return request.user.has_perm("collector.cancel_run")

    def has_retry_run_permission(self, request) -> bool:
        return request.user.has_perm("collector.retry_run")

    def has_recount_run_permission(self, request) -> bool:
        return request.user.has_perm("collector.recount_run")


class NoDelete:
    """Runs and their ledger are the audit trail of what was collected, who started it and
    what NEIS answered: admin deletes none of them, not even for a superuser (no "delete"
    action, no delete page). Old history is retired by a command, never by hand."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SafeDateChangeList(ChangeList):
    """Django's changelist, answering a date drill-down past year 9999 as a bad lookup.

    ``date_hierarchy`` computes the end of the chosen year, month or day, which overflows at
    9999-12-31 (``?created_at__year=9999`` was a 500); admin redirects with ``?e=1`` instead.
    Django ticket #37357 fixes it upstream; drop this once the pinned Django has that fix.
    """

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc


def confirmation(
    modeladmin, request, *, title, action, summary, headers, rows, button, listing=None
):
    """The page an action shows before it acts: what will happen, Confirm (a POST carrying the
    same selection, "select all" included) and Cancel (back to the list, filters kept).

    ``rows`` (one per selected object, under ``headers``) are cut at ``LISTED``, as are the
    items of ``listing`` (a title, items, how many more); ``summary`` counts all of them.
    """
    return TemplateResponse(
        request,
        "admin/collector/confirm_action.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "summary": summary,
            "headers": headers,
            "rows": rows[:LISTED],
            "more": max(0, len(rows) - LISTED),
            "listing": listing,
            "button": button,
            "action": action,
            "confirm": CONFIRM,
            **_selection(modeladmin, request),
        },
    )


def _selection(modeladmin, request) -> dict:
    """What a follow-up form must post back for admin to select the same objects again."""
    return {
        "checkbox": CHECKBOX,
        "selected": request.POST.getlist(CHECKBOX),
        "select_across": request.POST.get("select_across", "0"),
        "back": request.get_full_path(),
        "opts": modeladmin.model._meta,
    }


def confirmed(request) -> bool:
    return request.POST.get(CONFIRM) == "yes"


def _window(run) -> str:
    return f"{run.date_from} – {run.date_to}"


class RunChangeList(SafeDateChangeList):
    """The run list, each run of the page carrying its ``console.Progress`` (``run.progress``):
    the open ones counted from the ledger in one grouped query for the whole page."""

    def get_results(self, request):
        super().get_results(request)
        found = console.progress(self.result_list)
        for run in self.result_list:
            run.progress = found[run.pk]
        self.has_open = any(run.is_open for run in self.result_list)


def _progress(run) -> console.Progress:
    """The run's progress: set by the run list for its page, else read now (one run)."""
    found = getattr(run, "progress", None)
    if found is None:
        found = run.progress = console.progress([run])[run.pk]
    return found


class CollectionRunAdmin(NoDelete, RunPermissions, admin.ModelAdmin):
    # Status and progress first: on a phone they are what shows without a sideways scroll.
    # The counts by state sit in the progress cell, so every column fits a 1366 px screen.
    list_display = (
        "id",
        "status",
        "progress_column",
        "level",
        "window",
        "trigger",
        "lessons_column",
        "requests_column",
        "started_column",
        "elapsed_column",
        "finish_column",
    )
    list_filter = ("level", "status", "trigger")
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["retry_failed_schools", "cancel_runs", "refresh_counts"]
    # Moments are shown in Seoul time with their zone by the *_kst methods instead.
    _moments = ("created_at", "started_at", "finished_at")
    fieldsets = [
        (None, {"fields": ["progress_panel", "links"]}),
        (
            "Run",
            {
                "fields": [
                    "level",
                    "offices",
                    "school_codes",
                    "date_from",
                    "date_to",
                    "trigger",
                    "trigger_key",
                    "requested_by",
                    "note",
                    "status",
                    "created_kst",
                    "started_kst",
                    "finished_kst",
                ]
            },
        ),
        (
            "Counts stored when the run closed (or was recounted)",
            {
                "classes": ["collapse"],
                "fields": [
                    f.name
                    for f in CollectionRun._meta.fields
                    if f.name.startswith(("units_", "rows_")) or f.name == "requests"
                ],
            },
        ),
        ("Failed and deferred schools", {"fields": ["problem_schools"]}),
        ("Timetable changes", {"fields": ["changed_lessons"]}),
    ]
    readonly_fields = [field.name for field in CollectionRun._meta.fields] + [
        "problem_schools",
        "progress_panel",
        "links",
        "created_kst",
        "started_kst",
        "finished_kst",
        "changed_lessons",
    ]

    def has_add_permission(self, request):
        return False

    def get_changelist(self, request, **kwargs):
        return RunChangeList

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), **console_context(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), **console_context(request)}
        run = self.get_object(request, object_id)
        extra_context["run_open"] = bool(run and run.is_open)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="window")
    def window(self, run):
        return _window(run)

    @admin.display(description="progress")
    def progress_column(self, run):
        progress = _progress(run)
        return format_html(
            '{}<span class="progress-text">{} / {}{}</span><br><span class="progress-counts">'
            "{}</span>",
            progress_bar(progress),
            f"{progress.settled:,}",
            f"{progress.total:,}",
            " (live)" if progress.live else "",
            " · ".join(f"{s['n']:,} {s['label']}" for s in progress.segments()) or "no school",
        )

    @admin.display(description="lessons")
    def lessons_column(self, run):
        return f"{_progress(run).counts['rows_fetched']:,}"

    @admin.display(description="NEIS requests")
    def requests_column(self, run):
        return f"{_progress(run).counts['requests']:,}"

    @admin.display(description="started")
    def started_column(self, run):
        return console.kst(run.started_at) or "not yet"

    @admin.display(description="elapsed")
    def elapsed_column(self, run):
        return console.duration(_progress(run).elapsed)

    @admin.display(description="finished / expected")
    def finish_column(self, run):
        if run.finished_at:
            return console.kst(run.finished_at)
        eta = _progress(run).eta
        return f"about {console.kst_time(eta)}" if eta else ""

    @admin.display(description="created")
    def created_kst(self, run):
        return console.kst(run.created_at, seconds=True)

    @admin.display(description="started")
    def started_kst(self, run):
        return console.kst(run.started_at, seconds=True) or "not yet"

    @admin.display(description="finished")
    def finished_kst(self, run):
        return console.kst(run.finished_at, seconds=True) or "not yet"

    @admin.display(description="progress")
    def progress_panel(self, run):
        progress = _progress(run)
        counts = progress.counts
        legend = format_html_join(
            ", ",
            '<span class="legend-item"><i class="seg {}"></i>{} {}</span>',
            ((s["status"], s["label"], f"{s['n']:,}") for s in progress.segments()),
        )
        lines = [
            format_html(
                "{} — {}{}",
                progress.summary(),
                legend or "no school",
                " (counted from the ledger now)" if progress.live else "",
            ),
            format_html(
                "{} lessons so far ({} inserted, {} updated, {} removed); {} NEIS requests",
                f"{counts['rows_fetched']:,}",
                f"{counts['rows_inserted']:,}",
                f"{counts['rows_updated']:,}",
                f"{counts['rows_removed']:,}",
                f"{counts['requests']:,}",
            ),
            format_html(
                "Started {}; {} {}",
                console.kst(run.started_at) or "not yet",
                "running for" if progress.live else "took",
                console.duration(progress.elapsed) or "—",
            ),
        ]
        if progress.eta:
            lines.append(
                format_html(
                    "Expected to finish about {} (in {}), at the pace so far{}",
                    console.kst(progress.eta),
                    console.duration(progress.eta - progress.now),
                    "; deferred schools wait for the quota reset"
                    if progress.n(UnitStatus.DEFERRED)
                    else "",
                )
            )
        return format_html(
            '{}<ul class="progress-lines">{}</ul>',
            progress_bar(progress, "480px"),
            format_html_join("", "<li>{}</li>", ((line,) for line in lines)),
        )

    @admin.display(description="see also")
    def links(self, run):
        return format_html_join(" · ", '<a href="{}">{}</a>', run_links(run))

    @admin.display(description="lessons changed")
    def changed_lessons(self, run):
        return changes_of_run(run)

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
                    unit_reason(u),
                )
                for u in units
            ),
        )
        return format_html(
            "<table><tr><th>status</th><th>school</th><th>attempts</th><th>code</th>"
            "<th>reason</th></tr>{}</table>",
            rows,
        )

    @admin.action(
        description="Retry failed schools of the selected runs", permissions=["retry_run"]
    )
    def retry_failed_schools(self, request, queryset):
        runs = list(queryset)
        failed = _failed_units(runs)
        # A cancelled run stays cancelled (CollectionRun.reopen_failed): nothing of it retries.
        chosen = [run for run in runs if failed[run.pk] and run.status != RunStatus.CANCELLED]
        if not chosen:
            self.message_user(
                request,
                f"Nothing to retry: {counted(len(runs), 'selected run')} without failed "
                "schools to retry (a cancelled run stays cancelled).",
                messages.WARNING,
            )
            return None
        if not confirmed(request):
            return self._confirm_retry(request, chosen, failed, others=len(runs) - len(chosen))
        totals, detail = Counter(), []
        for run in chosen:
            ids = list(run.units.filter(status=UnitStatus.FAILED).values_list("pk", flat=True))
            sent = pipeline.retry_failed(run)
            # Not sent: deferred while the quota is spent, or failed again untried (a key
            # NEIS refused); the units say which.
            after = Counter(SchoolRun.objects.filter(pk__in=ids).values_list("status", flat=True))
            deferred, failed_again = after[UnitStatus.DEFERRED], after[UnitStatus.FAILED]
            totals.update(sent=sent, deferred=deferred, failed_again=failed_again)
            detail.append(f"run {run.pk}: {sent:,}")
            self.log_change(request, run, _retry_log(len(ids), sent, deferred, failed_again))
        note = ""
        if totals["deferred"]:
            note += f"; {totals['deferred']:,} more deferred until the NEIS quota resets"
        if totals["failed_again"]:
            note += (
                f"; {totals['failed_again']:,} failed again at once (the runs' failed schools "
                "say why)"
            )
        self.message_user(
            request,
            f"Re-queued {counted(totals['sent'], 'failed school')} ({', '.join(detail)}){note}.",
            messages.SUCCESS if totals["sent"] else messages.WARNING,
        )
        return None

    def _confirm_retry(self, request, chosen, failed, others):
        rows = [
            [
                run.pk,
                run.level,
                _window(run),
                run.get_status_display(),
                failed[run.pk],
                _retry_requests(run, failed[run.pk]),
            ]
            for run in chosen
        ]
        schools, requests = sum(row[4] for row in rows), sum(row[5] for row in rows)
        summary = [
            f"Put {counted(schools, 'failed school')} of {counted(len(chosen), 'run')} back in "
            f"the queue: about {counted(requests, 'NEIS request')}, counted against the key's "
            "daily quota.",
            "Each school is collected again from the start with a fresh retry count; while the "
            "quota is spent they wait, deferred, until it resets.",
        ]
        if others:
            summary.append(
                f"{counted(others, 'other selected run')}: no failed school, or cancelled (a "
                "cancelled run stays cancelled); left as is."
            )
        units = (
            SchoolRun.objects.filter(run__in=chosen, status=UnitStatus.FAILED)
            .select_related("school")
            .order_by("run_id", "school__code")
        )
        listing = []
        for u in units[:LISTED]:
            reason = " ".join(filter(None, [u.last_error_code, u.last_error[:200]]))
            listing.append(f"run {u.run_id}: {u.school.code} {u.school.name} — {reason or '?'}")
        return confirmation(
            self,
            request,
            title="Retry failed schools",
            action="retry_failed_schools",
            summary=summary,
            headers=["run", "level", "window", "status", "failed schools", "NEIS requests"],
            rows=rows,
            listing={"title": "Failed schools", "items": listing, "more": max(0, schools - LISTED)},
            button=f"Yes, retry {counted(schools, 'school')}",
        )

    @admin.action(description="Cancel the selected runs", permissions=["cancel_run"])
    def cancel_runs(self, request, queryset):
        runs = list(queryset)
        open_runs = [run for run in runs if run.is_open]
        finished = len(runs) - len(open_runs)
        if not open_runs:
            self.message_user(
                request,
                f"Nothing to cancel: {counted(finished, 'selected run')} already finished.",
                messages.WARNING,
            )
            return None
        if not confirmed(request):
            return self._confirm_cancel(request, open_runs, finished)
        cancelled = {}
        for run in open_runs:
            cancelled[run.pk] = run.cancel()
            self.log_change(
                request, run, f"Cancelled: {counted(cancelled[run.pk], 'open school')} cancelled"
            )
        note = ""
        if finished:
            left = "it was" if finished == 1 else "they were"
            note = f"; {counted(finished, 'finished run')} left as {left}"
        self.message_user(
            request,
            f"Cancelled {counted(len(cancelled), 'run')} "
            f"({counted(sum(cancelled.values()), 'open school')} cancelled){note}.",
        )
        return None

    def _confirm_cancel(self, request, open_runs, finished):
        by_run = _unit_counts(open_runs)
        rows = [
            [
                run.pk,
                run.level,
                _window(run),
                run.get_status_display(),
                by_run[run.pk]["waiting"],
                by_run[run.pk]["running"],
            ]
            for run in open_runs
        ]
        waiting = sum(row[4] for row in rows)
        running = sum(row[5] for row in rows)
        summary = [
            f"Cancel {counted(len(open_runs), 'run')}: {counted(waiting, 'school')} waiting to be "
            "collected (pending or deferred) will be cancelled and not collected by "
            f"{'this run' if len(open_runs) == 1 else 'these runs'}. This cannot be undone; "
            "collecting them later takes a new run.",
        ]
        if running:
            summary.append(f"Schools being collected now finish their attempt: {running:,}.")
        if finished:
            summary.append(f"{counted(finished, 'selected run')} already finished: left as is.")
        return confirmation(
            self,
            request,
            title="Cancel runs",
            action="cancel_runs",
            summary=summary,
            headers=["run", "level", "window", "status", "waiting schools", "running schools"],
            rows=rows,
            button=f"Yes, cancel {counted(len(open_runs), 'run')}",
        )

    @admin.action(
        description="Recount the ledger of the selected runs", permissions=["recount_run"]
    )
    def refresh_counts(self, request, queryset):
        runs = list(queryset)
        stale = 0
        fields = CollectionRun._meta.fields
        for run in runs:
            before = {field.name: getattr(run, field.name) for field in fields}
            run.recount()
            changes = [
                f"{field.verbose_name} {before[field.name]} → {getattr(run, field.name)}"
                for field in fields
                if getattr(run, field.name) != before[field.name]
            ]
            stale += bool(changes)
            self.log_change(request, run, f"Recounted: {', '.join(changes) or 'no change'}")
        self.message_user(
            request,
            f"Recounted {counted(len(runs), 'run')}; {counted(stale, 'run')} had stale counts.",
        )


def _failed_units(runs) -> dict[int, int]:
    """Failed units of each run, in one query."""
    found = dict(
        SchoolRun.objects.filter(run__in=runs, status=UnitStatus.FAILED)
        .values_list("run_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {run.pk: found.get(run.pk, 0) for run in runs}


def _unit_counts(runs) -> dict[int, dict[str, int]]:
    """Each run's units that a cancel would stop (waiting) and would let finish (running)."""
    waiting = Count("id", filter=Q(status__in=[UnitStatus.PENDING, UnitStatus.DEFERRED]))
    running = Count("id", filter=Q(status=UnitStatus.RUNNING))
    rows = (
        SchoolRun.objects.filter(run__in=runs)
        .values("run_id")
        .annotate(waiting=waiting, running=running)
        .order_by()
    )
    found = {row["run_id"]: row for row in rows}
    return {run.pk: found.get(run.pk, {"waiting": 0, "running": 0}) for run in runs}


def _retry_requests(run, failed: int) -> int:
    """NEIS requests a retry of ``failed`` units of ``run`` would make, about.

    Schools of the run that were collected tell how many requests one school took; without
    any, ``pipeline.plan`` estimates the failed schools' window from their levels.
    """
    if not failed:
        return 0
    collected = run.units.filter(status=UnitStatus.DONE, requests__gt=0)
    average = collected.aggregate(n=Avg("requests"))["n"]
    if average:
        return math.ceil(average * failed)
    units = run.units.filter(status=UnitStatus.FAILED)
    codes = list(units.values_list("school__code", flat=True))
    levels = sorted({level for level in units.values_list("school__level", flat=True) if level})
    planned = pipeline.plan(
        levels, run.date_from, run.date_to, codes=codes, reprocess=pipeline.Reprocess.ALL
    )
    # Every retried school asks at least once, even one the plan no longer selects.
    return max(planned.requests, failed)


def _retry_log(tried: int, sent: int, deferred: int, failed_again: int) -> str:
    parts = [f"{sent:,} re-queued"]
    if deferred:
        parts.append(f"{deferred:,} deferred until the NEIS quota resets")
    if failed_again:
        parts.append(f"{failed_again:,} failed again at once")
    return f"Retried {counted(tried, 'failed school')}: {', '.join(parts)}"


# Units a "latest of the week" filter passes as a list of ids (more: as a subquery).
LATEST_IDS = 30_000


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
        monday = clock.monday_of(week)
        if LatestUnit.kept():  # the week's rows of an index (PostgreSQL)
            return queryset.filter(
                pk__in=LatestUnit.objects.filter(monday=monday).values("unit_id")
            )
        latest = report.latest_units(monday).values_list("pk", flat=True)
        # The ids themselves (a national week is ~12,500): the list's count and its page
        # then read them by primary key instead of working out the latest units twice.
        ids = list(latest[: LATEST_IDS + 1])
        if len(ids) > LATEST_IDS:
            return queryset.filter(pk__in=latest)
        return queryset.filter(pk__in=ids)


class RunFilter(admin.SimpleListFilter):
    """The units of one run (``?run=ID``), as the run's page links to them."""

    title = "run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        runs = list(CollectionRun.objects.order_by("-created_at", "-pk")[:10])
        asked = self.value()
        if asked and asked.isdigit() and int(asked) not in {run.pk for run in runs}:
            runs += list(CollectionRun.objects.filter(pk=int(asked)))
        return [(str(run.pk), f"run {run.pk}: {run.level} {_window(run)}") for run in runs]

    def queryset(self, request, queryset):
        if self.value() is None:
            return None
        if not self.value().isdigit():
            raise IncorrectLookupParameters(f"run {self.value()!r} is not a run id")
        return queryset.filter(run_id=int(self.value()))


class ErrorCodeFilter(admin.SimpleListFilter):
    """The last error code of failed and deferred units (the codes the ledger holds)."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request, model_admin):
        # The partial index unit_error_code holds only units with a code: a small DISTINCT.
        codes = (
            SchoolRun.objects.exclude(last_error_code="")
            .order_by("last_error_code")
            .values_list("last_error_code", flat=True)
            .distinct()[:50]
        )
        return [(code, code) for code in codes]

    def queryset(self, request, queryset):
        if self.value() is None:
            return None
        return queryset.filter(last_error_code=self.value())


# Schools a ledger search passes to the database as a list of ids (more: as a subquery).
SEARCH_SCHOOLS = 1000


class SchoolRunAdmin(NoDelete, admin.ModelAdmin):
    list_display = (
        "run_link",
        "school_link",
        "status",
        "reason",
        "attempts",
        "retries",
        "pages",
        "fetched",
        "inserted",
        "updated",
        "removed",
        "rows_missing",
        "finished_kst",
    )
    list_filter = (
        RunFilter,
        "status",
        "school__level",
        "school__office",
        ErrorCodeFilter,
        "run__trigger",
        LatestForWeekFilter,
    )
    search_fields = ("school__code", "school__name", "=run__id")
    list_select_related = ("school",)
    raw_id_fields = ("run", "school")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    readonly_fields = [field.name for field in SchoolRun._meta.fields if field.editable] + [
        "links",
        "reason",
        "task_results",
        "queued_kst",
        "started_kst",
        "finished_kst",
        "deferred_kst",
    ]
    fieldsets = [
        (None, {"fields": ["links", "run", "school", "status", "reason"]}),
        (
            "Attempts",
            {
                "fields": [
                    "attempts",
                    "retries",
                    "task_id",
                    "task_results",
                    "queued_kst",
                    "started_kst",
                    "finished_kst",
                    "deferred_kst",
                    "duration_ms",
                    "last_error_code",
                    "last_error",
                ]
            },
        ),
        (
            "Counts",
            {
                "fields": [
                    "requests",
                    "pages",
                    "rows_fetched",
                    "rows_inserted",
                    "rows_updated",
                    "rows_unchanged",
                    "rows_removed",
                    "list_total_count",
                    "rows_missing",
                ]
            },
        ),
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        """``search_fields``' meaning (each word in a school's code or name, or a run id),
        with the schools found first: a join of every unit with its school took half a
        second at a year of history, a lookup of the few matching schools' units does not."""
        for word in search_term.split():
            schools = School.objects.filter(Q(code__icontains=word) | Q(name__icontains=word))
            # The ids themselves, when few: "IN (subquery) OR run_id = n" defeats the indexes.
            ids = list(schools.values_list("pk", flat=True)[: SEARCH_SCHOOLS + 1])
            found = ids if len(ids) <= SEARCH_SCHOOLS else schools.values("pk")
            match = Q(school_id__in=found)
            if word.isdigit():
                match |= Q(run_id=int(word))
            queryset = queryset.filter(match)
        return queryset, False

    @admin.display(description="run", ordering="run_id")
    def run_link(self, unit):
        url = reverse("admin:collector_collectionrun_change", args=[unit.run_id])
        return format_html('<a href="{}">{}</a>', url, unit.run_id)

    @admin.display(description="school", ordering="school__code")
    def school_link(self, unit):
        url = reverse("admin:collector_school_change", args=[unit.school_id])
        return format_html('<a href="{}">{} {}</a>', url, unit.school.code, unit.school.name)

    @admin.display(description="reason")
    def reason(self, unit):
        return unit_reason(unit)

    @admin.display(description="fetched", ordering="rows_fetched")
    def fetched(self, unit):
        return f"{unit.rows_fetched:,}"

    @admin.display(description="inserted", ordering="rows_inserted")
    def inserted(self, unit):
        return f"{unit.rows_inserted:,}"

    @admin.display(description="updated", ordering="rows_updated")
    def updated(self, unit):
        return f"{unit.rows_updated:,}"

    @admin.display(description="removed", ordering="rows_removed")
    def removed(self, unit):
        return f"{unit.rows_removed:,}"

    @admin.display(description="queued")
    def queued_kst(self, unit):
        return console.kst(unit.queued_at, seconds=True)

    @admin.display(description="started")
    def started_kst(self, unit):
        return console.kst(unit.started_at, seconds=True)

    @admin.display(description="finished", ordering="finished_at")
    def finished_kst(self, unit):
        return console.kst(unit.finished_at, seconds=True)

    @admin.display(description="deferred until")
    def deferred_kst(self, unit):
        return console.kst(unit.defer_until, seconds=True)

    @admin.display(description="see also")
    def links(self, unit):
        school = reverse("admin:collector_school_change", args=[unit.school_id])
        run = reverse("admin:collector_collectionrun_change", args=[unit.run_id])
        changes = reverse("collector_changes")
        week = clock.monday_of(unit.run.date_from)
        query = urlencode({"school": unit.school.code, "week": week.isoformat()})
        return format_html(
            '<a href="{}">school {}</a> · <a href="{}">run {}</a> · <a href="{}">the '
            'school\'s other runs</a> · <a href="{}">its timetable and changes</a>',
            school,
            unit.school.code,
            run,
            unit.run_id,
            ledger_url(q=unit.school.code),
            f"{changes}?{query}",
        )

    @admin.display(description="task results")
    def task_results(self, unit):
        if not unit.task_id:
            return "no task sent yet"
        from django_celery_results.models import TaskResult

        results = TaskResult.objects.filter(task_id=unit.task_id).order_by("-date_done")
        rows = [
            (
                reverse("admin:django_celery_results_taskresult_change", args=[r.pk]),
                r.status,
                console.kst(r.date_done, seconds=True),
            )
            for r in results[:5]
        ]
        search = reverse("admin:django_celery_results_taskresult_changelist")
        found = format_html_join(", ", '<a href="{}">{} at {}</a>', rows) if rows else "none stored"
        return format_html(
            '{} (<a href="{}">search task {}</a>)',
            found,
            f"{search}?{urlencode({'q': unit.task_id})}",
            unit.task_id,
        )


# --- Collect now ----------------------------------------------------------------------------


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


def _codes_by_level(queryset) -> dict[str, list[str]]:
    """The selected schools' codes by level; schools of a kind that is not collected are left
    out (they have no level)."""
    by_level: dict[str, list[str]] = {}
    for code, level in queryset.values_list("code", "level"):
        if level:
            by_level.setdefault(level, []).append(code)
    return dict(sorted(by_level.items()))


def collection_estimate(queryset, date_from, date_to) -> dict:
    """What collect now would start for the selected schools: a run per level, its schools and
    NEIS requests (``pipeline.plan``, which fetches nothing), and the selected schools that
    would not be collected (inactive, or of a kind without timetables)."""
    plans = {
        level: pipeline.plan(
            pipeline.check_levels(level),
            date_from,
            date_to,
            codes=codes,
            reprocess=pipeline.Reprocess.ALL,
        )
        for level, codes in _codes_by_level(queryset).items()
    }
    plans = {level: plan for level, plan in plans.items() if plan.schools}
    schools = sum(plan.schools for plan in plans.values())
    requests = sum(plan.requests for plan in plans.values())
    skipped = queryset.count() - schools
    return {
        "levels": [
            [level, f"{plan.schools:,}", f"{plan.requests:,}", f"{plan.rows:,}"]
            for level, plan in plans.items()
        ],
        "schools": schools,
        "summary": (
            f"From {date_from} to {date_to}: {counted(len(plans), 'run')}, "
            f"{counted(schools, 'school')}, about {counted(requests, 'NEIS request')} "
            f"(counted against the key's daily quota) and "
            f"{sum(plan.rows for plan in plans.values()):,} lessons."
        ),
        "skipped": (
            f"{counted(skipped, 'selected school')} not collected (inactive, or of a kind "
            "without timetables): skipped."
            if skipped
            else ""
        ),
    }


@admin.action(description="Collect now (choose a date window)", permissions=["start_collection"])
def collect_now(modeladmin, request, queryset):
    """Admin action on schools: choose a window, see what it would cost, then start one run
    per level for them. Nothing starts unless the posted window is the one estimated."""
    if "date_from" in request.POST or "date_to" in request.POST:
        data = request.POST
    else:
        start, end = clock.school_weeks_window(weeks_before=0, weeks_after=0)
        data = {"date_from": start.isoformat(), "date_to": end.isoformat()}
    form = CollectNowForm(data)
    estimate, planned = None, ""
    if form.is_valid():
        date_from, date_to = form.cleaned_data["date_from"], form.cleaned_data["date_to"]
        planned = f"{date_from.isoformat()}/{date_to.isoformat()}"
        if "apply" in request.POST and request.POST.get("planned") == planned:
            return _start_collection(modeladmin, request, queryset, date_from, date_to)
        if "apply" in request.POST:
            messages.warning(
                request,
                "The window is not the one estimated: check the estimate for it below, then "
                "press “Collect now” again.",
            )
        estimate = collection_estimate(queryset, date_from, date_to)
    count = queryset.count()
    return TemplateResponse(
        request,
        "admin/collector/collect_now.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Collect timetables now",
            "form": form,
            "schools": queryset[:LISTED],
            "count": count,
            "more": max(0, count - LISTED),
            "estimate": estimate,
            "planned": planned,
            **_selection(modeladmin, request),
        },
    )


def _start_collection(modeladmin, request, queryset, date_from, date_to) -> None:
    started, refused, collected = [], [], 0
    for level, codes in _codes_by_level(queryset).items():
        try:
            run = pipeline.create_run(
                level,
                date_from,
                date_to,
                school_codes=codes,
                trigger=Trigger.ADMIN,
                requested_by=request.user.get_username(),
                refresh_registry=False,
            )
        except pipeline.PipelineError as exc:
            refused.append(f"{level}: {exc}")
            continue
        modeladmin.log_addition(
            request,
            run,
            f"Started by collect now: {counted(run.units_total, 'school')}, "
            f"{date_from} to {date_to}",
        )
        if run.busy.schools:
            modeladmin.message_user(request, f"Run {run.pk}: {run.busy}.", messages.WARNING)
        sent = pipeline.dispatch(run)
        collected += run.units_total
        deferred = run.units_total - sent
        wait = f", {deferred:,} deferred until the NEIS quota resets" if deferred else ""
        started.append(f"run {run.pk} ({level}: {counted(sent, 'school')} queued{wait})")
    for reason in refused:
        modeladmin.message_user(request, f"Not started: {reason}.", messages.ERROR)
    skipped = queryset.count() - collected
    note = (
        f"; {counted(skipped, 'selected school')} not collected (inactive, or of a kind without "
        "timetables) skipped"
        if skipped
        else ""
    )
    modeladmin.message_user(request, f"Started {', '.join(started) or 'nothing'}{note}.")
    if started:
        warning = no_worker_warning(WorkerHeartbeat.objects.unconsumed())
        if warning:
            modeladmin.message_user(request, warning, messages.WARNING)


# --- Completeness ---------------------------------------------------------------------------

# The weeks the page can draw: it links the weeks before and after, which must be dates too.
FIRST_WEEK = clock.monday_of(datetime.date.min) + datetime.timedelta(weeks=1)
LAST_WEEK = clock.monday_of(datetime.date.max) - datetime.timedelta(weeks=1)


def _asked_week(request) -> datetime.date:
    """The Monday of the week asked for; this week, with a message, when the value is not a
    date or is outside the weeks the page can draw (9999-12-31 used to be a 500)."""
    asked = request.GET.get("week", "")
    this_week = clock.monday_of(clock.today())
    if not asked:
        return this_week
    try:
        week = clock.monday_of(datetime.date.fromisoformat(asked))
    except ValueError:
        messages.warning(request, f"“{asked}” is not a date (YYYY-MM-DD): showing this week.")
        return this_week
    if not FIRST_WEEK <= week <= LAST_WEEK:
        messages.warning(
            request,
            f"The week of {asked} is out of range (weeks from {FIRST_WEEK} to {LAST_WEEK}): "
            "showing this week.",
        )
        return this_week
    return week


def completeness_view(request):
    """A week and level, each office's schools drawn as done / no data / deferred / failed.

    It reads the ledger, so it asks for view permission on it (403 otherwise).
    """
    if not request.user.has_perm("collector.view_schoolrun"):
        raise PermissionDenied
    level = request.GET.get("level", RunLevel.ALL)
    if level not in RunLevel.values:
        level = RunLevel.ALL
    monday = _asked_week(request)
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
    previous_week, next_week = (monday + datetime.timedelta(weeks=n) for n in (-1, 1))
    context = {
        **admin.site.each_context(request),
        "title": f"Completeness: {level}, school week of {monday}",
        "level": level,
        "levels": RunLevel.choices,
        "week": monday,
        "previous_week": previous_week if previous_week >= FIRST_WEEK else None,
        "next_week": next_week if next_week <= LAST_WEEK else None,
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
