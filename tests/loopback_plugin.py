"""Pytest plugin: no test, and no process a test starts, reaches anything but loopback.

The guard (``tests.loopback``) is on for the whole session from ``pytest_configure``, and the
environment every child inherits switches it on there too. A test fails at teardown if anything
was refused since the previous test ended (its own code, a child it started, the fixtures set up
for it), even if the code under test swallowed ``NonLoopbackError``; a refusal after the last
test fails the session.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from tests import loopback

_log = {"path": "", "offset": 0}


def pytest_configure(config):
    handle, _log["path"] = tempfile.mkstemp(prefix="loopback-", suffix=".log")
    os.close(handle)
    loopback.install()
    # Children started with the default environment (subprocess.run without env=) are guarded
    # too, not only those started through tests.processes.child_env.
    loopback.child_environ(os.environ, _log["path"])


def take_refused() -> list[str]:
    """What was refused, in this process or a child, since the last call."""
    refused = loopback.take()
    with open(_log["path"], encoding="utf-8") as log:
        log.seek(_log["offset"])
        refused += log.read().splitlines()
        _log["offset"] = log.tell()
    return refused


@pytest.fixture(autouse=True)
def _loopback_only():
    earlier = take_refused()
    yield
    refused = earlier + take_refused()
    if refused:
        pytest.fail("non-loopback network access:\n" + "\n".join(refused), pytrace=False)


def pytest_sessionfinish(session):
    refused = take_refused()
    if refused:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "non-loopback network access outside any test", red=True)
            reporter.write_line("\n".join(refused))
    os.unlink(_log["path"])
