"""A real ``celery beat`` (guarded DatabaseScheduler) starts real runs on a real worker.

Beat, worker and the simulated NEIS run as separate processes against the test database, so
every row a test writes must be committed before they can see it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import socket
import subprocess

import pytest
import redis
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from collector.clock import school_weeks_window
from collector.ledger import CollectionRun, RunStatus, Trigger
from collector.tasks import start_scheduled_run
from proj.celery import app
from schedules.apply import apply_schedules
from tests.processes import celery_beat, celery_beats, celery_worker, wait_until
from tests.schedules.overdue import overdue_ping

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OFFICE = "I10"
# One office of one level for the current school week: a real run, small enough to be quick.
SMALL = {"level": "middle", "offices": [OFFICE], "weeks_before": 0, "weeks_after": 0}
STANDING_BY = "another beat holds the lock; standing by"
TOOK_OVER = "lock acquired; this beat now sends the schedule"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own, for broker and request budget.

    Other test sessions on the machine use the same broker database; their workers would take
    this test's messages (and this test's worker theirs), and nothing could be counted.
    """
    port = _free_port()
    log = open(tmp_path / "redis.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_until(lambda: _answers(client), timeout=10, message=f"redis-server on {port}")
        yield url
    finally:
        client.close()
        server.terminate()
        server.wait(10)
        log.close()


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def env(neis_sim, own_redis):
    """The environment for beat and worker: this test's Redis, the simulator for NEIS."""
    return {
        "CELERY_BROKER_URL": own_redis,
        "NEIS_LIMITER_URL": own_redis,
        "NEIS_BASE_URL": neis_sim.url,
        "NEIS_API_KEY": neis_sim.key,
        "NEIS_MAX_CONCURRENCY": "4",
        "NEIS_MAX_RPS": "200",
        "NEIS_READ_TIMEOUT": "2",
        "NEIS_RETRY_BACKOFF_MAX": "2",
    }


def _one_off(name: str, task: str, kwargs: dict, *, in_seconds: float) -> PeriodicTask:
    clock = ClockedSchedule.objects.create(
        clocked_time=timezone.now() + datetime.timedelta(seconds=in_seconds)
    )
    return PeriodicTask.objects.create(
        name=name,
        task=task,
        kwargs=json.dumps(kwargs),
        clocked=clock,
        one_off=True,
        queue="default",
    )


def _sends(beat, name: str) -> int:
    """How many times this beat process logged sending the schedule ``name``."""
    return beat.output().count(f"Sending due task {name} (")


def _expected_key() -> str:
    date_from, date_to = school_weeks_window(weeks_before=0, weeks_after=0)
    return f"schedule:middle:{OFFICE}:{date_from.isoformat()}:{date_to.isoformat()}"


def _finished_scheduled_run(timeout: float = 45) -> CollectionRun:
    def finished():
        run = CollectionRun.objects.filter(trigger=Trigger.SCHEDULE).first()
        return run if run is not None and not run.is_open else None

    return wait_until(finished, timeout=timeout, message="no scheduled run finished")


def _task_results(task: str) -> list[dict]:
    return [
        json.loads(r)
        for r in TaskResult.objects.filter(task_name=task).values_list("result", flat=True)
    ]


def test_it_starts_a_run_when_a_schedule_falls_due(env, tmp_path):
    _one_off("collect-middle-now", "collector.start_scheduled_run", SMALL, in_seconds=2)
    with celery_worker(tmp_path, env), celery_beat(tmp_path, env) as beat:
        run = _finished_scheduled_run()
        assert _sends(beat, "collect-middle-now") == 1

    assert run.status == RunStatus.DONE
    assert run.trigger_key == _expected_key()
    assert run.offices == [OFFICE]
    assert run.units_total > 0
    assert (run.date_from, run.date_to) == school_weeks_window(weeks_before=0, weeks_after=0)
    # The pinned clock's week, which the simulator has published: a real week of lessons, not
    # a week past the simulator's clock that would pass on empty answers.
    assert run.units_done > 0
    assert run.rows_inserted > 1000


def _admin_form(task: PeriodicTask, **changes) -> dict:
    """The POST body of django-celery-beat's PeriodicTask change form, as a browser sends it."""
    data = {
        "name": task.name,
        "regtask": task.task,
        "task": "",
        "enabled": "on" if task.enabled else "",
        "description": task.description,
        "interval": task.interval_id or "",
        "crontab": task.crontab_id or "",
        "solar": task.solar_id or "",
        "clocked": task.clocked_id or "",
        "start_time_0": "",
        "start_time_1": "",
        "one_off": "on" if task.one_off else "",
        "args": task.args,
        "kwargs": task.kwargs,
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": task.expire_seconds if task.expire_seconds is not None else "",
        "queue": task.queue or "",
        "exchange": "",
        "routing_key": "",
        "priority": "",
        "headers": task.headers or "{}",
        "_save": "Save",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_it_fires_a_schedule_edited_in_admin_without_a_restart(env, tmp_path, admin_client):
    apply_schedules()
    task = PeriodicTask.objects.get(name="collect-middle-weekly")
    every_two_seconds = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    url = f"/admin/django_celery_beat/periodictask/{task.pk}/change/"
    assert admin_client.get(url).status_code == 200

    with celery_worker(tmp_path, env), celery_beat(tmp_path, env) as beat:
        beat.wait_for("beat: Ticking", timeout=10)
        # The operator moves the weekly schedule to "every two seconds" for one office.
        response = admin_client.post(
            url,
            _admin_form(task, crontab="", interval=every_two_seconds.pk, kwargs=json.dumps(SMALL)),
        )
        assert response.status_code == 302, response.context["adminform"].form.errors
        run = _finished_scheduled_run()
        assert "DatabaseScheduler: Schedule changed." in beat.output()
        assert _sends(beat, "collect-middle-weekly") >= 1
        assert beat.popen.poll() is None, "the beat that started is still the one running"

    assert run.status == RunStatus.DONE
    assert run.trigger_key == _expected_key()
    # Every later firing of the same window was refused: still one run.
    assert CollectionRun.objects.count() == 1


def test_it_sends_from_one_beat_only_and_the_other_takes_over(env, tmp_path):
    with contextlib.ExitStack() as stack:
        stack.enter_context(celery_worker(tmp_path, env))
        # Read by both beats as they start, and due once both are up: the one standing by
        # holds it in memory as not yet sent, as it would hold a weekly schedule.
        _one_off("collect-middle-now", "collector.start_scheduled_run", SMALL, in_seconds=8)
        beats = [stack.enter_context(celery_beat(tmp_path, env)) for _ in range(2)]
        run = _finished_scheduled_run()
        wait_until(lambda: _task_results("collector.start_scheduled_run"), timeout=15)
        assert sum(_sends(beat, "collect-middle-now") for beat in beats) == 1
        standing_by = [beat for beat in beats if STANDING_BY in beat.output()]
        assert len(standing_by) == 1, "exactly one beat should stand by"
        standby = standing_by[0]
        holder = next(beat for beat in beats if beat is not standby)
        assert _sends(holder, "collect-middle-now") == 1

        holder.stop()
        standby.wait_for(TOOK_OVER, timeout=15)
        _one_off("ping-after-takeover", "proj.ping", {"payload": "takeover"}, in_seconds=0)
        wait_until(lambda: _task_results("proj.ping"), timeout=20)
        assert _sends(standby, "ping-after-takeover") == 1
        # The new holder knows what the old one already sent, and does not send it again.
        assert _sends(standby, "collect-middle-now") == 0

    assert run.status == RunStatus.DONE
    assert CollectionRun.objects.count() == 1
    results = _task_results("collector.start_scheduled_run")
    assert results == [{"run": run.pk, "units": run.units_total, "sent": run.units_total}]


def test_it_refuses_a_second_firing_of_the_same_window(env, tmp_path):
    """What a second beat would cause: the same schedule's message, delivered twice."""
    with (
        celery_worker(tmp_path, env) as worker,
        app.connection_for_write(env["CELERY_BROKER_URL"]) as conn,
    ):
        first = start_scheduled_run.apply_async(kwargs=SMALL, connection=conn).get(timeout=30)
        second = start_scheduled_run.apply_async(kwargs=SMALL, connection=conn)
        # Not "SUCCESS": the task results page says REFUSED, and why.
        refused = wait_until(
            lambda: TaskResult.objects.filter(task_id=second.id, status="REFUSED").first(),
            timeout=30,
            message="the second firing was not stored as REFUSED",
        )
        log = worker.output()

    run = CollectionRun.objects.get()
    assert first == {"run": run.pk, "units": run.units_total, "sent": run.units_total}
    reason = f"run {run.pk} was already started for {_expected_key()}"
    assert json.loads(refused.result) == {"refused": True, "run": run.pk, "reason": reason}
    assert f"refused: {reason}" in log
    assert run.trigger == Trigger.SCHEDULE
    assert run.trigger_key == _expected_key()


def _sends_by(beats, name: str) -> int:
    return sum(_sends(beat, name) for beat in beats)


def _some_more_ticks(beat, ticks: int = 5) -> None:
    """Until ``beat`` has ticked a few more times (about a second each): time enough for a
    second send, had one been coming."""
    seen = beat.output().count("beat: Waking up")
    wait_until(lambda: beat.output().count("beat: Waking up") >= seen + ticks, timeout=30)


def _holder_and_standby(beats):
    """Which beat holds the single-beat lock (the other logs that it stands by)."""
    wait_until(
        lambda: any(STANDING_BY in beat.output() for beat in beats),
        timeout=20,
        message="neither beat stood by",
    )
    standby = next(beat for beat in beats if STANDING_BY in beat.output())
    return next(beat for beat in beats if beat is not standby), standby


@pytest.mark.chaos
@pytest.mark.chaos_full
def test_a_schedule_due_while_its_beat_is_killed_fires_once_from_the_other(env, tmp_path):
    """The lock holder is SIGKILLed a few seconds before a schedule falls due: the standby
    takes the lock over (the server frees it with the dead connection) and sends it, once."""
    with contextlib.ExitStack() as stack:
        beats = [stack.enter_context(celery_beat(tmp_path, env)) for _ in range(2)]
        holder, standby = _holder_and_standby(beats)
        changed = holder.output().count("Schedule changed.")
        due = _one_off("ping-due", "proj.ping", {"payload": "due"}, in_seconds=8).clocked
        due = due.clocked_time
        # The holder has it in its schedule (and would send it, were it still alive).
        wait_until(lambda: holder.output().count("Schedule changed.") > changed, timeout=5)
        wait_until(lambda: timezone.now() >= due - datetime.timedelta(seconds=3), timeout=20)
        assert _sends_by(beats, "ping-due") == 0, "sent before it was due"
        holder.kill()  # SIGKILL, the whole process group: no goodbye, no unlock
        holder.popen.wait(10)
        standby.wait_for(TOOK_OVER, timeout=20)
        wait_until(lambda: _sends(standby, "ping-due"), timeout=20, message="never sent")
        _some_more_ticks(standby)
        assert _sends_by(beats, "ping-due") == 1


def test_two_beats_started_after_a_missed_due_time_send_it_once(env, tmp_path):
    """An hourly schedule last run two hours ago is overdue when two beats start together."""
    overdue_ping()
    with celery_beats(tmp_path, env, count=2) as beats:
        holder, _ = _holder_and_standby(beats)
        wait_until(lambda: _sends(holder, "ping-overdue"), timeout=20, message="never sent")
        _some_more_ticks(holder)
        assert _sends_by(beats, "ping-overdue") == 1, holder.output()[-3000:]
