"""A faithful, national-scale fake of the NEIS Open API hub (open.neis.go.kr), for tests.

Pure standard library; never imports Django. Typical use::

    from neis_simulator import Simulator, SimulatorConfig

    with Simulator(SimulatorConfig(clock="2026-11-21T10:00", freeze_clock=True)) as sim:
        requests.get(f"{sim.url}/hub/schoolInfo", params={"KEY": sim.key, "Type": "json"})
        sim.world.timetable(code, start, end, as_of=sim.control.now())  # ground truth

``python -m neis_simulator --help`` runs one from the command line, and
``launch.start()`` runs that as a child process and waits until it listens.
"""

from .clock import KST, SimClock
from .config import SimulatorConfig
from .control import Control, RemoteControl
from .faults import KINDS as FAULT_KINDS
from .server import Simulator
from .services import SERVICES
from .state import default_key, key_tag
from .world import World

__all__ = [
    "FAULT_KINDS",
    "KST",
    "SERVICES",
    "Control",
    "RemoteControl",
    "SimClock",
    "Simulator",
    "SimulatorConfig",
    "World",
    "default_key",
    "key_tag",
]
