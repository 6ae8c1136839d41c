"""The console at the widths operators use: a 1366 px laptop shows every column of the run
list, the ledger and the coverage grid without a sideways scroll, and a 390 px phone shows a
run's status and progress without one."""

from __future__ import annotations

import pytest

from tests.browser import test_walk
from tests.browser.test_walk import PASSWORD, _user

world = test_walk.world  # the walks' world: a partial run with failed schools, the schedules

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# How far a table may stick out of its box before it counts as cut off (borders, rounding).
SLACK = 2


def _log_in(page, live_server):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def _overflow(page, selector: str) -> int:
    """Pixels by which ``selector``'s content is wider than the page's viewport, or than the
    box that scrolls it."""
    return page.evaluate(
        """(selector) => {
            const el = document.querySelector(selector);
            const box = el.closest('.results') || el.parentElement;
            const right = el.getBoundingClientRect().right;
            return Math.max(box.scrollWidth - box.clientWidth, right - window.innerWidth);
        }""",
        selector,
    )


@pytest.mark.parametrize(
    "url",
    [
        "/admin/collector/collectionrun/",
        "/admin/collector/schoolrun/",
        "/admin/collector/coverage/?level=middle&office=B10",
    ],
)
def test_every_column_fits_a_1366_px_screen(browser, live_server, world, django_user_model, url):
    _user(django_user_model, "operator")
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="en-US")
    try:
        _log_in(page, live_server)
        page.goto(live_server.url + url)
        table = "#result_list" if "coverage" not in url else "#coverage"
        assert _overflow(page, table) <= SLACK
    finally:
        page.close()


def test_a_phone_sees_a_runs_status_and_progress_without_scrolling_sideways(
    browser,
    live_server,
    world,
    django_user_model,
):
    _user(django_user_model, "operator")
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-US")
    try:
        _log_in(page, live_server)
        page.goto(f"{live_server.url}/admin/collector/collectionrun/")
        row = page.locator("#result_list tbody tr").first
        for column in ("field-status", "field-progress_column"):
            box = row.locator(f"td.{column}").bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390 + SLACK, column
    finally:
        page.close()
