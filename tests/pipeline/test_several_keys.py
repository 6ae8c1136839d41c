"""Several NEIS keys: work spreads across them, a key whose quota is spent stops while the
others go on, and a key NEIS refuses leaves the rotation (collector.limiter.KeyPool)."""

from __future__ import annotations

import datetime

import pytest

from collector import clock, pipeline, quota
from collector.ledger import RunStatus, UnitStatus
from collector.limiter import budget_from_settings, key_id

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget", "fresh_caps")]

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)
SECOND = "5eca0d5eca0d5eca0d5eca0d5eca0d5e"
ONE_DAY = datetime.timedelta(days=1)


def _next_day(days: int):
    """The collector's clock ``days`` later: another NEIS quota day for the budget."""
    return clock.pinned(clock.now() + days * ONE_DAY)


@pytest.fixture
def two_keys(neis_sim_factory, settings):
    """A simulator that knows two keys; the I10 middle schools in the registry."""
    sim = neis_sim_factory(keys=((SECOND, "valid"),))
    settings.NEIS_BASE_URL = sim.url
    settings.NEIS_API_KEY, settings.NEIS_API_KEYS = sim.key, (sim.key,)
    pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"]).delete()  # sync the registry
    sim.control.reset_quota()
    return sim


def _run(reprocess="all"):
    return pipeline.create_run(
        "middle", MONDAY, FRIDAY, offices=["I10"], reprocess=reprocess, refresh_registry=False
    )


def test_two_keys_finish_a_run_that_one_key_alone_cannot_finish_in_a_day(two_keys, settings):
    sim = two_keys
    needed = pipeline.run_in_process(_run()).requests  # what the run costs, some schools 2 pages
    cap = needed // 2 + 3  # one key covers about half of it
    sim.control.set_key_quota(sim.key, cap)
    sim.control.set_key_quota(SECOND, cap)
    sim.control.reset_quota()

    with _next_day(1):
        alone = pipeline.run_in_process(_run())
    assert alone.units.filter(status=UnitStatus.DEFERRED, last_error_code="ERROR-337").exists()

    alone.cancel()  # else its deferred schools are its own, and a new run leaves them out
    sim.control.reset_quota()
    settings.NEIS_API_KEYS = (sim.key, SECOND)
    with _next_day(2):  # the block of the day before has run out
        both = pipeline.run_in_process(_run())

    assert both.status == RunStatus.DONE, list(both.units.values("status", "last_error"))
    used = {key: sim.control.quota_used(key) for key in (sim.key, SECOND)}
    assert both.requests == needed
    # A school of two pages whose second page met the cap was asked again with the other key:
    # its first page was spent twice. At most one such school per key.
    assert needed <= sum(used.values()) <= needed + 2
    assert min(used.values()) >= needed // 2 - 3  # spread over both keys, not one first
    # Each key met its cap once: recorded as that day's observed cap, exactly.
    caps = quota.QuotaDay.objects.filter(observed_cap__isnull=False)
    found = sorted(caps.values_list("day", "key_id", "observed_cap"))
    assert found[0] == (clock.today() + ONE_DAY, key_id(sim.key), cap)
    assert {observed for _, _, observed in found} == {cap}


def test_a_key_whose_quota_is_spent_stops_while_the_other_goes_on(two_keys, settings):
    sim = two_keys
    sim.control.set_key_quota(sim.key, 0)
    settings.NEIS_API_KEYS = (sim.key, SECOND)
    with _next_day(1):  # a day the registry's requests did not count on
        run = pipeline.run_in_process(_run())

    assert run.status == RunStatus.DONE
    assert sim.control.quota_used(SECOND) == run.requests  # the spent key's one was refused
    assert sum(sim.control.stats()["after_337"].values()) == 0  # never asked again
    with _next_day(1):
        assert budget_from_settings(sim.key).blocked_until() > 0
    row = quota.QuotaDay.objects.get(key_id=key_id(sim.key), day=clock.today() + ONE_DAY)
    assert (row.requests, row.observed_cap) == (1, 0)


def test_a_key_neis_refuses_leaves_the_rotation_and_the_other_key_finishes(two_keys, settings):
    sim = two_keys
    settings.NEIS_API_KEYS = ("not-a-key-neis-knows", SECOND)
    settings.NEIS_API_KEY = "not-a-key-neis-knows"
    before = sim.control.stats()["by_outcome"].get("ERROR-290", 0)
    run = pipeline.run_in_process(_run())

    assert run.status == RunStatus.DONE
    assert sim.control.stats()["by_outcome"].get("ERROR-290", 0) - before == 1
    assert budget_from_settings("not-a-key-neis-knows").rejection()[0] == "ERROR-290"
    from collector import console

    states = {state.key: state for state in console.quota()}
    assert states[key_id("not-a-key-neis-knows")].rejection[0] == "ERROR-290"
    assert states[key_id(SECOND)].rejection is None


def test_a_run_fails_untried_only_when_neis_refused_every_key(two_keys, settings):
    sim = two_keys
    sim.control.set_key_state(SECOND, "blocked")
    settings.NEIS_API_KEYS = ("not-a-key-neis-knows", SECOND)
    settings.NEIS_API_KEY = "not-a-key-neis-knows"
    run = pipeline.run_in_process(_run())

    assert run.status == RunStatus.PARTIAL and run.units_failed == run.units_total
    assert run.units.filter(attempts=0).count() == run.units_total - 1
    assert set(run.units.values_list("last_error_code", flat=True)) <= {"ERROR-290", "INFO-300"}


def test_a_unit_that_switches_keys_sees_the_other_key_as_it_is_now(two_keys, settings):
    """An attempt reads its keys' state once (``KeyPool.look``); when its key's quota runs
    out mid-attempt, it reads the others again before choosing one: a key another process
    found spent meanwhile is not asked."""
    from collector.neis.client import NeisClient
    from tests.processes import REDIS_URL

    sim = two_keys
    settings.NEIS_LIMITER_URL = REDIS_URL
    settings.NEIS_API_KEYS = (sim.key, SECOND)
    budgets = [budget_from_settings(key) for key in (sim.key, SECOND)]
    for budget in budgets:  # nothing left in the shared store by another test
        budget.clear_block(), budget.clear_rejection(), budget.record_success()
        # Nor their requests today: the pool picks the key with the most left, and this test
        # needs the first key picked first (another test's requests with it made that vary).
        for name in budget.redis.scan_iter(f"neis:budget:{budget.key}:used:*"):
            budget.redis.delete(name)
    sim.control.set_key_quota(sim.key, 0)  # the first key's first request meets ERROR-337
    real = NeisClient.timetable

    def meanwhile(client, *args, **kwargs):
        # Another process finds the second key spent while this attempt asks with the first.
        budgets[1].block_until(clock.now().timestamp() + 3600)
        return real(client, *args, **kwargs)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(NeisClient, "timetable", meanwhile)
            run = _run()
            unit = run.units.order_by("pk").first()
            outcome = pipeline.collect_unit(unit.pk)
        assert outcome.status == UnitStatus.DEFERRED
        assert sim.control.quota_used(SECOND) == 0  # no request with the key known spent
    finally:
        for budget in budgets:
            budget.clear_block()
