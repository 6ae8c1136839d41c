"""A real browser (Debian's Chromium, driven by Playwright) against a live server of the
project, for the console walks an operator and a reader make. Never downloads a browser: the
one `apt-get install chromium` put at /usr/bin/chromium (.ci/run installs it when missing).
A failing test leaves a screenshot of the page it was on in its tmp_path."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def browser():
    """One Chromium for a module's tests, stopped after them: Playwright's sync API keeps an
    event loop running in this thread while it lives, and Django refuses database calls in
    a thread with a running loop unless told (DJANGO_ALLOW_ASYNC_UNSAFE), so both end with
    the module and no other test runs beside that loop."""
    if not shutil.which(CHROMIUM):
        # Not a skip: a skipped walk reads as a passing one.
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (as .ci/run does)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            yield browser
            browser.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(browser, request, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page ({page.url}): {shot}")
    context.close()
