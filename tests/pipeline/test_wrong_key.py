"""A key NEIS refuses fails fast: one request, then the run's waiting schools fail untried."""

from __future__ import annotations

import datetime

import pytest

from collector import pipeline
from collector.ledger import RunStatus, UnitStatus
from collector.limiter import budget_from_settings

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_budget")]

MONDAY, FRIDAY = datetime.date(2026, 11, 16), datetime.date(2026, 11, 20)


@pytest.fixture
def refused(neis_sim, settings):
    """The I10 middle schools in the registry, then a key NEIS does not know."""
    settings.NEIS_BASE_URL = neis_sim.url
    settings.NEIS_API_KEY = neis_sim.key
    pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"]).delete()  # sync the registry
    settings.NEIS_API_KEY = "not-a-key-neis-knows"
    return neis_sim


def _requests(sim) -> int:
    return sim.control.stats()["requests"]


def test_it_spends_one_request_and_fails_the_run_when_the_key_is_refused(refused):
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"])
    assert run.units_total > 3
    before = _requests(refused)
    run = pipeline.run_in_process(run)

    assert _requests(refused) - before == 1
    assert run.status == RunStatus.PARTIAL
    assert run.units_failed == run.units_total
    codes = set(run.units.values_list("last_error_code", flat=True))
    assert codes == {"ERROR-290"}
    untried = run.units.filter(attempts=0)
    assert untried.count() == run.units_total - 1
    assert all(e.startswith("ERROR-290: not tried: NEIS refused the key") for e in
               untried.values_list("last_error", flat=True))  # fmt: skip


def test_it_sends_nothing_for_a_key_already_refused(refused):
    first = pipeline.run_in_process(pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"]))
    assert first.units_failed == first.units_total
    sent = []
    second = pipeline.create_run(
        "middle", MONDAY, FRIDAY, offices=["I10"], reprocess=pipeline.Reprocess.ALL
    )
    before = _requests(refused)
    assert pipeline.dispatch(second, send=lambda unit, expires: sent.append(unit)) == 0

    second.refresh_from_db()
    assert sent == [] and _requests(refused) == before
    assert second.status == RunStatus.PARTIAL
    assert set(second.units.values_list("status", flat=True)) == {UnitStatus.FAILED}


def test_it_probes_the_key_again_once_the_rejection_is_cleared(refused, settings):
    pipeline.run_in_process(pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"]))
    budget_from_settings().clear_rejection()  # what REJECTION_SECONDS does by itself
    settings.NEIS_API_KEY = refused.key
    run = pipeline.run_in_process(
        pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"], reprocess="all")
    )
    assert run.status == RunStatus.DONE


def test_one_school_that_breaks_never_stops_a_run_in_process(refused, settings, monkeypatch):
    """A bug or bad data in one school fails that school, and --sync goes on with the rest."""
    from collector import storage

    settings.NEIS_API_KEY = refused.key
    run = pipeline.create_run("middle", MONDAY, FRIDAY, offices=["I10"], reprocess="all")
    first = run.units.order_by("pk").first()
    real = storage.store_lessons

    def store(school, *args, **kwargs):
        if school.pk == first.school_id:
            raise ValueError("a record of school 0000000 given for this one")
        return real(school, *args, **kwargs)

    monkeypatch.setattr(pipeline, "store_lessons", store)
    run = pipeline.run_in_process(run)

    failed = run.units.get(status=UnitStatus.FAILED)
    assert failed.pk == first.pk
    assert (
        failed.last_error == "INTERNAL: ValueError: a record of school 0000000 given for this one"
    )
    assert run.units_done + run.units_no_data == run.units_total - 1
    assert run.status == RunStatus.PARTIAL
