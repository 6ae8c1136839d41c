"""Beat schedules in admin: django-celery-beat's own admin, with its actions behind permissions.

Stock, anyone who may view the schedule list may run, enable, disable or toggle any schedule
from it, and running a weekly one queues a national collection. Here enabling, disabling and
toggling need change permission on periodic tasks; running one needs that and the collector's
``start_collection`` too, and first shows what it would cost (schools, NEIS requests), like
the run actions. Each leaves an entry in the admin log of the schedules it touched.
Everything else is the stock admin.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math

from django.conf import settings
from django.contrib import admin, messages
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from collector import clock, pipeline, planning
from collector.admin_runs import SafeDateChangeList, confirmation, confirmed, counted
from collector.ledger import CollectionRun
from collector.models import School

Stock = beat_admin.PeriodicTaskAdmin

admin.site.unregister(PeriodicTask)
admin.site.unregister(CrontabSchedule)


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(beat_admin.CrontabScheduleAdmin):
    """Stock, but a crontab shared by several schedules says so when opened (the pencil next
    to a schedule's crontab opens it): a change to it moves every one of them."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            names = list(
                PeriodicTask.objects.filter(crontab_id=object_id)
                .order_by("name")
                .values_list("name", flat=True)
            )
            if len(names) > 1:
                messages.warning(
                    request,
                    f"This crontab is shared by {len(names)} schedules ({', '.join(names)}): "
                    "a change here changes when every one of them runs. To change one "
                    "schedule alone, give it a crontab of its own on its page.",
                )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(Stock):
    def get_changelist(self, request, **kwargs):
        # The stock date_hierarchy on start_time overflows at year 9999, like the run list's.
        return SafeDateChangeList

    def has_run_permission(self, request) -> bool:
        """Run now: change the schedules, and start collections (the weekly ones start one).

        One method, because Django offers an action when *any* of its permissions holds.
        """
        return self.has_change_permission(request) and request.user.has_perm(
            "collector.start_collection"
        )

    @admin.action(description=Stock.enable_tasks.short_description, permissions=["change"])
    def enable_tasks(self, request, queryset):
        self._switch(request, queryset, super().enable_tasks)

    @admin.action(description=Stock.disable_tasks.short_description, permissions=["change"])
    def disable_tasks(self, request, queryset):
        self._switch(request, queryset, super().disable_tasks)

    @admin.action(description=Stock.toggle_tasks.short_description, permissions=["change"])
    def toggle_tasks(self, request, queryset):
        self._switch(request, queryset, super().toggle_tasks)

    @admin.action(description=Stock.run_tasks.short_description, permissions=["run"])
    def run_tasks(self, request, queryset):
        tasks = list(queryset)
        estimates = {task.pk: estimate(task) for task in tasks}
        if not confirmed(request):
            return self._confirm_run(request, tasks, estimates)
        self.celery_app.loader.import_default_modules()
        # The stock action sends nothing at all when one of the tasks is unknown.
        sent = all(self.celery_app.tasks.get(task.task) for task in tasks)
        super().run_tasks(request, queryset)
        if sent:
            for task in tasks:
                self.log_change(
                    request, task, f"Ran now: sent {task.task} ({estimates[task.pk].logged()})"
                )
        return None

    def _confirm_run(self, request, tasks, estimates):
        found = [estimates[task.pk] for task in tasks]
        schools = sum(e.schools for e in found)
        requests = sum(e.requests for e in found)
        their = "its" if len(tasks) == 1 else "their"
        summary = [
            f"Send {counted(len(tasks), 'task')} now, outside {their} schedule: "
            f"{counted(schools, 'school')} to collect and about "
            f"{counted(requests, 'NEIS request')}, counted against the key's daily quota.",
            "A worker runs it as beat would; a collection already started for the same window "
            "is refused there without a request.",
        ]
        rows = [
            [task.name, task.task, e.window, f"{e.schools:,}", f"{e.requests:,}", e.note]
            for task, e in zip(tasks, found, strict=True)
        ]
        return confirmation(
            self,
            request,
            title="Run schedules now",
            action="run_tasks",
            summary=summary,
            headers=["schedule", "task", "window", "schools", "NEIS requests", "note"],
            rows=rows,
            button=f"Yes, run {counted(len(tasks), 'schedule')} now",
        )

    def _switch(self, request, queryset, stock_action) -> None:
        """Run a stock enable/disable/toggle, then log each schedule it switched."""
        before = {task.pk: task for task in queryset}
        stock_action(request, queryset)
        after = dict(PeriodicTask.objects.filter(pk__in=before).values_list("pk", "enabled"))
        for pk, task in before.items():
            if after.get(pk, task.enabled) != task.enabled:
                self.log_change(request, task, "Enabled" if after[pk] else "Disabled")


# Tasks that start a collection run, and the one that reads the school registry.
COLLECTING = ("collector.start_scheduled_run", "collector.start_run")
REGISTRY = "collector.sync_schools"
REFRESH = planning.REFRESH_TASK


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What running a schedule now would cost: the schools it collects and NEIS requests."""

    window: str = ""
    schools: int = 0
    requests: int = 0
    note: str = ""

    def logged(self) -> str:
        text = f"{counted(self.schools, 'school')}, about {counted(self.requests, 'NEIS request')}"
        return f"{text}; {self.note}" if self.note else text


def estimate(task: PeriodicTask) -> Estimate:
    """The cost of sending ``task`` now, from its stored kwargs (``pipeline.plan``: nothing is
    fetched or written). A collection whose arguments would be refused says why."""
    try:
        kwargs = json.loads(task.kwargs or "{}")
    except ValueError:
        return Estimate(note="its kwargs are not JSON: the worker will refuse it")
    if task.task == REGISTRY:
        schools = School.objects.count()
        pages = max(1, math.ceil(schools / settings.NEIS_PAGE_SIZE))
        return Estimate(requests=pages, note="refreshes the school registry (schoolInfo)")
    if task.task == REFRESH:
        return _refresh_estimate(kwargs)
    if task.task not in COLLECTING:
        return Estimate(note="no NEIS request")
    try:
        level = kwargs["level"]
        offices = kwargs.get("offices") or ()
        if task.task == "collector.start_scheduled_run":
            date_from, date_to = clock.school_weeks_window(
                weeks_before=kwargs.get("weeks_before", 1),
                weeks_after=kwargs.get("weeks_after", 1),
            )
        else:
            date_from = datetime.date.fromisoformat(kwargs["date_from"])
            date_to = datetime.date.fromisoformat(kwargs["date_to"])
        levels = pipeline.validate_request(
            level, date_from, date_to, offices, kwargs.get("school_codes") or ()
        )
        plan = pipeline.plan(
            levels,
            date_from,
            date_to,
            offices,
            kwargs.get("school_codes") or (),
            reprocess=pipeline.Reprocess.ALL,
        )
    except (KeyError, TypeError, ValueError, pipeline.PipelineError) as exc:
        return Estimate(note=f"would be refused: {exc}")
    window = f"{date_from} – {date_to}"
    if task.task == "collector.start_scheduled_run":
        key = pipeline.schedule_key(level, offices, date_from, date_to)
        existing = CollectionRun.objects.filter(trigger_key=key).values_list("pk", flat=True)
        if existing:
            return Estimate(
                window=window, note=f"already started as run {existing[0]}: it will be refused"
            )
    return Estimate(window=window, schools=plan.schools, requests=plan.requests)


def _refresh_estimate(kwargs: dict) -> Estimate:
    """The refresh's plan for today (``planning.plan_refresh``): what the day leaves it covers."""
    try:
        level = kwargs.get("level", "all")
        plan = planning.plan_refresh(
            level,
            weeks_before=int(kwargs.get("weeks_before", 0)),
            weeks_after=int(kwargs.get("weeks_after", 1)),
            max_requests=kwargs.get("max_requests"),
        )
    except (TypeError, ValueError, pipeline.PipelineError) as exc:
        return Estimate(note=f"would be refused: {exc}")
    first, last = min(plan.weeks), max(plan.weeks) + datetime.timedelta(days=6)
    window = f"{first} – {last}"
    started = planning.refresh_started(level, plan.day)
    if started is not None:
        return Estimate(window=window, note=f"already started today as run {started.pk}")
    note = (
        ""
        if plan.full
        else (
            f"short of a full refresh: {plan.fits:,} of {len(plan.items):,} school-weeks fit what "
            "the day leaves, the current week's first"
        )
    )
    return Estimate(window=window, schools=plan.fits, requests=plan.spends, note=note)
