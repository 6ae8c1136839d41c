"""Pytest plugin: every test runs on the collector's clock pinned to ``TEST_CLOCK``.

The clock starts there and runs on at real speed, so leases and timeouts behave as they do in
production, but no test depends on today's date. Child processes (workers, beat, commands)
inherit it through ``NEIS_CLOCK``, which names the same moment at the same real time, so every
process of a test agrees on the time. Loaded with ``-p`` (pyproject.toml), before any test.
"""

from __future__ import annotations

import os

from collector import clock

# The moment every test runs at: a Saturday in AY 2026, semester 2. The simulator's clock is
# frozen here too (tests/fixtures_neis.py), so both sides agree on what is published.
TEST_CLOCK = "2026-11-21T10:00:00+09:00"


def pytest_configure(config):
    pinned = clock.Clock.parse(TEST_CLOCK)
    clock.install(pinned)
    os.environ["NEIS_CLOCK"] = pinned.spec()
