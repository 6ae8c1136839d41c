"""Say why nothing moves: which queues a live worker consumes (from the workers' own
heartbeats), the quota block and NEIS refusal per key, and deferred units' reset time."""

from __future__ import annotations

import datetime
import html
import re
import time

import pytest

from collector import clock, workers
from collector.limiter import budget_from_settings, key_id
from collector.workers import WorkerHeartbeat
from tests.console.conftest import THIS_WEEK
from tests.processes import REDIS_URL, celery_worker, wait_until

RUNS = "/admin/collector/collectionrun/"
LEDGER = "/admin/collector/schoolrun/"
BANNER = 'id="no-worker-banner"'


def _page(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def _text(response) -> str:
    """The page as a person reads it: tags dropped, spaces folded."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", response.content.decode())))


@pytest.mark.django_db
def test_it_knows_which_queues_live_workers_consume():
    workers.beat("neis@a", ["neis"])
    assert WorkerHeartbeat.objects.unconsumed() == ["default"]
    workers.beat("default@a", ["default", "celery"])
    assert WorkerHeartbeat.objects.unconsumed() == []
    assert WorkerHeartbeat.objects.consumers() == {
        "celery": ["default@a"],
        "default": ["default@a"],
        "neis": ["neis@a"],
    }
    # A worker not heard from for STALE_AFTER is gone, whatever its row says.
    later = clock.now() + workers.STALE_AFTER + datetime.timedelta(seconds=1)
    assert WorkerHeartbeat.objects.unconsumed(later) == ["neis", "default"]
    workers.gone("neis@a")
    assert WorkerHeartbeat.objects.unconsumed() == ["neis"]


@pytest.mark.django_db
def test_it_warns_on_run_pages_when_no_worker_consumes_a_queue(admin_client, open_run):
    run, _ = open_run
    for url in (RUNS, f"{RUNS}{run.pk}/change/"):
        page = _page(admin_client.get(url))
        assert BANNER in page, url
        assert "No worker consumes “neis” and “default”" in page
        assert "celery -A proj worker -Q neis,default" in page
    workers.beat("w1@host", ["neis", "default"])
    for url in (RUNS, f"{RUNS}{run.pk}/change/"):
        assert BANNER not in _page(admin_client.get(url)), url
    WorkerHeartbeat.objects.update(queues=["default"])
    page = _page(admin_client.get(RUNS))
    assert "No worker consumes “neis”:" in page and "default (w1@host)" in page


@pytest.mark.django_db
def test_it_does_not_warn_after_collect_now_when_workers_consume_both_queues(
    admin_client, schools, sent
):
    workers.beat("w1@host", ["neis", "default"])
    window = {"date_from": "2026-11-16", "date_to": "2026-11-22"}
    window["planned"] = "2026-11-16/2026-11-22"
    response = admin_client.post(
        "/admin/collector/school/",
        {"action": "collect_now", "_selected_action": [schools["M1"].pk], "apply": "1", **window},
    )
    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert len(messages) == 1 and messages[0].startswith("Started run")


@pytest.mark.django_db
def test_it_shows_the_quota_block_and_a_refused_key_by_key_id(admin_client, open_run, settings):
    settings.NEIS_API_KEY = "SECRET-KEY-1234"
    budget = budget_from_settings()
    page = _text(admin_client.get(RUNS))
    budget_text = "0 requests today of a 9,500 budget (cap 10,000, configured (NEIS_DAILY_QUOTA))"
    assert f"key {key_id('SECRET-KEY-1234')}: {budget_text}, requests allowed" in page
    reset = datetime.datetime(2026, 11, 22, 0, 0, tzinfo=clock.SEOUL)
    budget.block_until(reset.timestamp())
    budget.reject("ERROR-290", "인증키가 유효하지 않습니다.")
    page = _text(admin_client.get(RUNS))
    assert "daily quota spent, blocked until 2026-11-22 00:00 KST" in page
    assert "refused by NEIS (ERROR-290: 인증키가 유효하지 않습니다.)" in page
    assert "SECRET-KEY-1234" not in page


@pytest.mark.django_db
def test_it_says_until_when_a_unit_is_deferred_instead_of_its_old_error(admin_client, open_run):
    run, units = open_run
    # Deferred until 15:00 UTC = 00:00 KST the next day; its error is the stale quota message.
    page = _page(admin_client.get(f"{RUNS}{run.pk}/change/"))
    assert "deferred until 2026-11-22 00:00 KST (quota)" in page
    assert "daily quota spent" not in page
    page = _page(admin_client.get(f"{LEDGER}?run={run.pk}&status__exact=deferred"))
    assert "deferred until 2026-11-22 00:00 KST (quota)" in page
    # The same day reads as a time only.
    units["deferred"].defer_until = datetime.datetime(2026, 11, 21, 14, 0, tzinfo=clock.SEOUL)
    units["deferred"].save()
    page = _page(admin_client.get(f"{RUNS}{run.pk}/change/"))
    assert "deferred until 14:00 KST (quota)" in page
    assert THIS_WEEK  # the run covers the pinned week


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_writes_its_heartbeat_and_removes_it_on_shutdown(tmp_path):
    with celery_worker(tmp_path, {"CELERY_BROKER_URL": REDIS_URL}, queues="neis", pool="solo"):
        beat = wait_until(
            lambda: WorkerHeartbeat.objects.filter(hostname__startswith="test-").first(),
            timeout=30,
        )
        assert beat.queues == ["neis"]
        assert WorkerHeartbeat.objects.unconsumed() == ["default"]
        first = beat.seen_at
        # It keeps beating while it runs.
        wait_until(
            lambda: WorkerHeartbeat.objects.get(pk=beat.pk).seen_at > first,
            timeout=workers.BEAT_SECONDS + 10,
        )
    time.sleep(0.5)
    assert not WorkerHeartbeat.objects.filter(pk=beat.pk).exists()
