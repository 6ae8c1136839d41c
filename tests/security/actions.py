"""Every admin action that changes or enqueues anything, as the security tests post it, with
what it must do when allowed; and a snapshot of everything an action could change."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django_celery_beat.models import PeriodicTask

from collector.ledger import CollectionRun, RunStatus, SchoolRun, UnitStatus
from tests.security.conftest import RUNS, SCHEDULES, SCHOOLS

CHECKBOX = admin.helpers.ACTION_CHECKBOX_NAME
WINDOW = {"date_from": "2025-04-14", "date_to": "2025-04-20", "planned": "2025-04-14/2025-04-20"}


def snapshot() -> tuple:
    """Everything an action could change: runs, units, schedules and the admin log."""
    return (
        list(
            CollectionRun.objects.order_by("pk").values_list(
                "pk", "status", "units_total", "units_done", "units_failed", "finished_at"
            )
        ),
        list(SchoolRun.objects.order_by("pk").values_list("pk", "status", "queued_at")),
        list(PeriodicTask.objects.order_by("pk").values_list("pk", "enabled", "last_run_at")),
        LogEntry.objects.count(),
    )


@dataclasses.dataclass(frozen=True)
class Case:
    """One action (or one step of it) posted to a changelist, and what it does when allowed."""

    url: str
    action: str
    targets: Callable[[dict], list]
    data: dict
    allowed: Callable  # (response, world, sent, before, user) -> None: asserts the effect


def _runs(*names):
    return lambda world: [world["runs"][name] for name in names]


def _schools(world):
    return list(world["schools"].values())


def _schedules(*names):
    return lambda world: [world[name] for name in names]


def _logged(user, obj, flag=CHANGE) -> list[str]:
    return [
        entry.get_change_message()
        for entry in LogEntry.objects.filter(user=user, object_id=str(obj.pk), action_flag=flag)
    ]


def _shows(template):
    """Allowed first step: a page saying what would happen, and no change yet."""

    def check(response, world, sent, before, user):
        assert response.status_code == 200
        assert response.templates[0].name == template
        assert snapshot() == before
        assert sent == {"units": [], "tasks": []}

    return check


def _collected(response, world, sent, before, user):
    assert response.status_code == 302
    new = CollectionRun.objects.exclude(pk__in=[pk for pk, *_ in before[0]])
    assert sorted(new.values_list("level", flat=True)) == ["elementary", "middle"]
    assert sorted(sent["units"]) == sorted(
        SchoolRun.objects.filter(run__in=new).values_list("pk", flat=True)
    )
    for run in new:
        assert _logged(user, run, ADDITION) == [
            "Started by collect now: 2 schools, 2025-04-14 to 2025-04-20"
        ]


def _cancelled(response, world, sent, before, user):
    assert response.status_code == 302
    b = CollectionRun.objects.get(pk=world["runs"]["B"].pk)
    assert b.status == RunStatus.CANCELLED
    assert set(b.units.values_list("status", flat=True)) == {UnitStatus.CANCELLED}
    assert _logged(user, b) == ["Cancelled: 2 open schools cancelled"]
    assert sent == {"units": [], "tasks": []}


def _retried(response, world, sent, before, user):
    assert response.status_code == 302
    failed = [world["units"]["A-M1"].pk, world["units"]["A-M2"].pk]
    assert sorted(sent["units"]) == sorted(failed)
    assert set(SchoolRun.objects.filter(pk__in=failed).values_list("status", flat=True)) == {
        UnitStatus.PENDING
    }
    assert _logged(user, world["runs"]["A"]) == ["Retried 2 failed schools: 2 re-queued"]


def _recounted(response, world, sent, before, user):
    assert response.status_code == 302
    a = CollectionRun.objects.get(pk=world["runs"]["A"].pk)
    assert (a.units_done, a.units_failed) == (0, 2)
    assert _logged(user, a) == ["Recounted: done 9 → 0, failed 0 → 2"]
    assert sent == {"units": [], "tasks": []}


def _switched(name, enabled, message):
    def check(response, world, sent, before, user):
        assert response.status_code == 302
        task = PeriodicTask.objects.get(pk=world[name].pk)
        assert task.enabled is enabled
        assert _logged(user, task) == [message]
        assert sent == {"units": [], "tasks": []}

    return check


def _ran(response, world, sent, before, user):
    assert response.status_code == 302
    # Sent to the broker (a worker would start the national run); nothing collected here.
    assert sent == {"units": [], "tasks": ["collector.start_scheduled_run"]}
    assert _logged(user, world["weekly"]) == [
        "Ran now: sent collector.start_scheduled_run (2 schools, about 4 NEIS requests)"
    ]
    assert CollectionRun.objects.count() == len(before[0])


CASES = {
    "collect now, step 1": Case(
        SCHOOLS, "collect_now", _schools, {}, _shows("admin/collector/collect_now.html")
    ),
    "collect now, step 2": Case(
        SCHOOLS, "collect_now", _schools, {"apply": "1", **WINDOW}, _collected
    ),
    "cancel, step 1": Case(
        RUNS, "cancel_runs", _runs("A", "B"), {}, _shows("admin/collector/confirm_action.html")
    ),
    "cancel, step 2": Case(RUNS, "cancel_runs", _runs("A", "B"), {"confirm": "yes"}, _cancelled),
    "retry, step 1": Case(
        RUNS,
        "retry_failed_schools",
        _runs("A", "B"),
        {},
        _shows("admin/collector/confirm_action.html"),
    ),
    "retry, step 2": Case(RUNS, "retry_failed_schools", _runs("A"), {"confirm": "yes"}, _retried),
    "recount": Case(RUNS, "refresh_counts", _runs("A"), {}, _recounted),
    "schedule enable": Case(
        SCHEDULES,
        "enable_tasks",
        _schedules("weekly"),
        {},
        _switched("weekly", True, "Enabled"),
    ),
    "schedule disable": Case(
        SCHEDULES,
        "disable_tasks",
        _schedules("watchdog"),
        {},
        _switched("watchdog", False, "Disabled"),
    ),
    "schedule toggle": Case(
        SCHEDULES,
        "toggle_tasks",
        _schedules("weekly"),
        {},
        _switched("weekly", True, "Enabled"),
    ),
    "schedule run, step 1": Case(
        SCHEDULES,
        "run_tasks",
        _schedules("weekly"),
        {},
        _shows("admin/collector/confirm_action.html"),
    ),
    "schedule run, step 2": Case(
        SCHEDULES, "run_tasks", _schedules("weekly"), {"confirm": "yes"}, _ran
    ),
}


def post_action(client, case: Case, world):
    data = {"action": case.action, CHECKBOX: [obj.pk for obj in case.targets(world)]}
    return client.post(case.url, {**data, **case.data})


def offered(client, url) -> set[str]:
    """The actions a user is offered on a changelist (none at all: no action form)."""
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()
