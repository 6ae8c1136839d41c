"""Workers die mid-run: a child killed mid-task, the main process killed and replaced."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_neis"]
pytestmark = [pytest.mark.chaos]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a prefork worker's pool)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_it_recovers_when_a_worker_child_is_killed_mid_task(chaos):
    chaos.sim.control.configure(latency_ms=100)  # a page takes a while: the kill lands mid-task
    with chaos.beat(), chaos.worker() as worker:
        run = chaos.start_run()
        chaos.wait_for_progress(run, 0.25)
        chaos.fault(run)
        os.kill(children(worker.popen.pid)[0], signal.SIGKILL)
        chaos.cleared(run)
        run = chaos.wait_closed(run)
    chaos.verify(run, "worker child SIGKILL mid-task")


@pytest.mark.chaos_full
def test_it_recovers_when_the_worker_main_process_is_killed_and_replaced(chaos):
    chaos.sim.control.configure(latency_ms=100)
    with chaos.beat():
        with chaos.worker() as first:
            run = chaos.start_run()
            chaos.wait_for_progress(run, 0.25)
            chaos.fault(run)
            # The main process only, as the OOM killer would: its children are orphaned
            # mid-task and may still commit, but nothing they took is ever acknowledged.
            os.kill(first.popen.pid, signal.SIGKILL)
            first.popen.wait(10)
        try:
            with chaos.worker():
                chaos.cleared(run)
                run = chaos.wait_closed(run)
        finally:
            chaos.kill_group(first.popen.pid)
    chaos.verify(run, "worker main process SIGKILL, new worker")
