"""Two keys with small simulator caps, real workers over Redis: the run one key alone cannot
finish in a day finishes, and the cap recorded for the key that ran out is the simulator's."""

from __future__ import annotations

import datetime
import math

import pytest
import redis

from collector import limiter, pipeline, quota
from collector.ledger import CollectionRun, RunStatus
from proj.celery import app
from tests.processes import REDIS_URL, celery_worker, wait_until

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WEEK = (datetime.date(2026, 11, 16), datetime.date(2026, 11, 20))
SECOND = "5eca0d5eca0d5eca0d5eca0d5eca0d5e"


def _forget(client, key):
    for name in client.scan_iter(f"neis:budget:{limiter.key_id(key)}:*"):
        client.delete(name)


def test_two_small_keys_finish_a_run_one_key_cannot_and_the_cap_is_observed(
    neis_sim_factory, settings, tmp_path
):
    sim = neis_sim_factory(keys=((SECOND, "valid"),))
    keys = (sim.key, SECOND)
    settings.NEIS_BASE_URL, settings.NEIS_LIMITER_URL = sim.url, REDIS_URL
    settings.NEIS_API_KEY, settings.NEIS_API_KEYS = sim.key, keys
    client = redis.Redis.from_url(REDIS_URL)
    run = pipeline.create_run("middle", *WEEK, offices=["I10"])  # syncs the registry
    # A new day for NEIS and for the shared budget alike.
    sim.control.reset_quota()
    for key in keys:
        _forget(client, key)
    quota.forget_cached_caps()
    with app.connection_for_write() as conn:
        for queue in ("neis", "default"):
            conn.default_channel.queue_purge(queue)
    small, large = math.ceil(run.units_total * 0.3), run.units_total  # a school: 1-2 requests
    sim.control.set_key_quota(sim.key, small)
    sim.control.set_key_quota(SECOND, large)
    env = {
        "NEIS_BASE_URL": sim.url,
        "NEIS_API_KEYS": ",".join(keys),
        "NEIS_LIMITER_URL": REDIS_URL,
        # One request at a time, so the count at the ERROR-337 is exact.
        "NEIS_MAX_CONCURRENCY": "1",
        "NEIS_MAX_RPS": "200",
    }
    pipeline.dispatch(run)
    with celery_worker(tmp_path, env, concurrency=2):

        def closed():
            found = CollectionRun.objects.get(pk=run.pk)
            return found if not found.is_open else None

        run = wait_until(closed, timeout=300, message="the run did not finish")

    assert run.status == RunStatus.DONE
    used = {key: sim.control.quota_used(key) for key in keys}
    assert used[sim.key] == small  # the small key ran out ...
    assert run.requests > large  # ... and neither key alone had enough for the run
    row = quota.QuotaDay.objects.get(key_id=limiter.key_id(sim.key))
    assert row.observed_cap == small
    assert not quota.QuotaDay.objects.filter(
        key_id=limiter.key_id(SECOND), observed_cap__isnull=False
    ).exists()
