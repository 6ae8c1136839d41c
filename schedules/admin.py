"""Beat schedules in admin: django-celery-beat's own admin, with its actions behind permissions.

Stock, anyone who may view the schedule list may run, enable, disable or toggle any schedule
from it, and running a weekly one queues a national collection. Here enabling, disabling and
toggling need change permission on periodic tasks; running one needs that and the collector's
``start_collection`` too. Each leaves an entry in the admin log of the schedules it touched.
Everything else is the stock admin.
"""

from __future__ import annotations

from django.contrib import admin
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import PeriodicTask

from collector.admin_runs import SafeDateChangeList

Stock = beat_admin.PeriodicTaskAdmin

admin.site.unregister(PeriodicTask)


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
        self.celery_app.loader.import_default_modules()
        # The stock action sends nothing at all when one of the tasks is unknown.
        sent = all(self.celery_app.tasks.get(task.task) for task in tasks)
        super().run_tasks(request, queryset)
        if sent:
            for task in tasks:
                self.log_change(request, task, f"Ran now: sent {task.task}")

    def _switch(self, request, queryset, stock_action) -> None:
        """Run a stock enable/disable/toggle, then log each schedule it switched."""
        before = {task.pk: task for task in queryset}
        stock_action(request, queryset)
        after = dict(PeriodicTask.objects.filter(pk__in=before).values_list("pk", "enabled"))
        for pk, task in before.items():
            if after.get(pk, task.enabled) != task.enabled:
                self.log_change(request, task, "Enabled" if after[pk] else "Disabled")
