"""Starting the simulator as a child process (``neis_simulator.launch``)."""

import os
import pathlib
import sys

import pytest
import requests

from neis_simulator import launch

pytestmark = pytest.mark.slow


def _children() -> set[int]:
    """Processes (zombies included) whose parent is this one."""
    found = set()
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        if int(raw[raw.rindex(")") + 2 :].split()[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


def test_it_returns_a_listening_simulator_and_stops_it(tmp_path):
    sim = launch.start("--clock", "2026-11-21T10:00", "--freeze", log=tmp_path / "sim.err")
    try:
        answer = requests.get(
            f"{sim.url}/hub/schoolInfo",
            params={"KEY": sim.key, "Type": "json", "pSize": 1},
            timeout=10,
        )
        assert answer.json()["schoolInfo"][1]["row"][0]["SD_SCHUL_CODE"]
    finally:
        launch.stop(sim.process)
    assert sim.process.returncode is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sim.url}/hub/schoolInfo", timeout=2)


def test_it_says_why_when_the_simulator_exits_before_listening(tmp_path):
    log = tmp_path / "sim.err"
    before = _children()
    with pytest.raises(launch.LaunchError, match=r"exited with code 2 .* stderr is in") as raised:
        launch.start("--clock", "yesterday", log=log)
    assert str(log) in str(raised.value)
    assert "bad --clock 'yesterday'" in log.read_text()
    assert _children() == before


def _fake_simulator(monkeypatch, code: str) -> None:
    monkeypatch.setattr(launch, "command", lambda *args, cpu=None: [sys.executable, "-c", code])


def test_it_gives_up_when_the_simulator_stays_silent(monkeypatch, tmp_path):
    _fake_simulator(monkeypatch, "import time; time.sleep(60)")
    before = _children()
    with pytest.raises(launch.LaunchError, match="did not say it was listening within 0.5 s"):
        launch.start(timeout=0.5, log=tmp_path / "sim.err")
    assert _children() == before  # killed and reaped, not left running


def test_it_refuses_output_that_is_not_its_ready_line(monkeypatch, tmp_path):
    _fake_simulator(monkeypatch, "import time; print('up, honest', flush=True); time.sleep(60)")
    before = _children()
    with pytest.raises(launch.LaunchError, match="printed 'up, honest', not its ready line"):
        launch.start(log=tmp_path / "sim.err")
    assert _children() == before
