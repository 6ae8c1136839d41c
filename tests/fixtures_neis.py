"""Pytest plugin: a simulated NEIS hub on 127.0.0.1, in-process or as a subprocess.

Fixtures:

- ``neis_world``: the default ``World`` (seed 1), built once per session.
- ``neis_sim``: a simulator served from a thread of the test process, clock frozen at
  ``TEST_CLOCK``. Yields a ``SimHandle`` (``url``, ``key``, ``world``, ``control``).
- ``neis_sim_factory``: ``start(**config_overrides) -> SimHandle`` for other settings.
- ``neis_sim_process``: the same simulator as a separate process (``python -m neis_simulator``),
  steered over HTTP; for Celery workers in other processes.
- ``neis_sim_process_factory``: ``start(*cli_args) -> SimHandle`` for other options.

Worlds are memoised per world-shaping configuration, so tests that only change runtime
settings (quota, faults, paging...) never rebuild the national school list.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading

import pytest
import requests

from neis_simulator import (
    Control,
    RemoteControl,
    Simulator,
    SimulatorConfig,
    World,
    launch,
)
from neis_simulator.config import DIRT_FIELDS
from tests.pinned_clock import TEST_CLOCK

_worlds: dict[tuple, World] = {}
_worlds_lock = threading.Lock()


@dataclasses.dataclass
class SimHandle:
    """A running simulator: GET ``{url}/hub/<Service>`` with ``KEY=key``."""

    url: str
    key: str
    world: World  # ground truth; identical to the one the server uses
    control: Control | RemoteControl
    simulator: Simulator | None = None  # in-process only
    process: subprocess.Popen | None = None  # subprocess only
    _http: requests.Session | None = dataclasses.field(default=None, repr=False)

    def hub(self, service: str) -> str:
        return f"{self.url}/hub/{service}"

    def get(
        self, service: str, *, key: str | None = "", timeout: float = 10, **params
    ) -> requests.Response:
        """GET one page as JSON. ``key=""`` uses the valid test key; None sends no key."""
        query = {"Type": "json", **params}
        if key is not None:
            query["KEY"] = key or self.key
        return self._session().get(self.hub(service), params=query, timeout=timeout)

    def fetch_all(self, service: str, **params) -> list[dict]:
        """Every row of a query, paged with pSize=1000; [] on INFO-200; AssertionError on
        any other RESULT code."""
        rows: list[dict] = []
        index = 1
        while True:
            body = self.get(service, pIndex=index, pSize=1000, **params).json()
            if "RESULT" in body:
                assert body["RESULT"]["CODE"] == "INFO-200", body
                return rows
            page = body[next(iter(body))][1]["row"]
            rows += page
            if len(page) < 1000:
                return rows
            index += 1

    def _session(self) -> requests.Session:
        if self._http is None:
            self._http = requests.Session()
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def world_for(config: SimulatorConfig) -> World:
    """The (memoised) world of a configuration."""
    key = config.world_key()
    with _worlds_lock:
        if key not in _worlds:
            _worlds[key] = World(config)
        return _worlds[key]


def sim_config(**overrides) -> SimulatorConfig:
    """A configuration with the clock frozen at ``TEST_CLOCK`` unless overridden."""
    return SimulatorConfig(**{"clock": TEST_CLOCK, "freeze_clock": True, **overrides})


@pytest.fixture(scope="session")
def neis_world() -> World:
    return world_for(sim_config())


@pytest.fixture
def neis_sim_factory():
    started: list[SimHandle] = []

    def start(**overrides) -> SimHandle:
        """A started in-process simulator; ``overrides`` are SimulatorConfig fields."""
        config = sim_config(**overrides)
        sim = Simulator(config, world=world_for(config)).start()
        handle = SimHandle(sim.url, sim.key, sim.world, sim.control, simulator=sim)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.close()
        handle.simulator.stop()


@pytest.fixture
def neis_sim(neis_sim_factory) -> SimHandle:
    return neis_sim_factory()


@pytest.fixture
def neis_sim_process_factory(tmp_path):
    handles: list[SimHandle] = []

    def start(*args: str, seed: int = 1) -> SimHandle:
        """Run ``python -m neis_simulator`` with ``args`` (clock frozen at TEST_CLOCK unless
        ``--clock`` is given) and wait until it listens."""
        options = ["--seed", str(seed)]
        if "--clock" not in args:
            options += ["--clock", TEST_CLOCK, "--freeze"]
        log = tmp_path / f"simulator-{len(handles)}.err"
        launched = launch.start(*options, *args, log=log)
        world = world_for(sim_config(seed=seed, **_world_options(args)))
        handle = SimHandle(
            launched.url,
            launched.key,
            world,
            RemoteControl(launched.url),
            process=launched.process,
        )
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.close()
        launch.stop(handle.process)


def _world_options(args) -> dict:
    """World-shaping settings implied by command-line flags (for the local ground truth)."""
    options: dict = {}
    args = list(args)
    if "--archive-before" in args:
        options["archive_before_ay"] = int(args[args.index("--archive-before") + 1])
    if "--no-archive-padding" in args:
        options["archive_pad_class"] = False
    if "--no-dirt" in args:
        options.update(dict.fromkeys(DIRT_FIELDS, 0.0))
    return options


@pytest.fixture
def neis_sim_process(neis_sim_process_factory) -> SimHandle:
    return neis_sim_process_factory()
