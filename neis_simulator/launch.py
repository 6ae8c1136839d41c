"""Run the simulator as a child process: the one way tests and benchmarks start one.

    launched = launch.start("--clock", "2026-11-21T10:00", "--freeze")
    try:
        requests.get(f"{launched.url}/hub/schoolInfo", params={"KEY": launched.key})
    finally:
        launch.stop(launched.process)

The child is ``python -m neis_simulator --port 0 --ready-json`` plus the caller's options; it
prints one JSON line once it listens, which is how the caller learns the port and the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import threading

# The directory holding this package: the child finds it there whatever its working directory.
HOME = pathlib.Path(__file__).resolve().parents[1]


class LaunchError(RuntimeError):
    """The simulator exited, or did not say it was listening, before the timeout."""


@dataclasses.dataclass(frozen=True)
class Launched:
    """A listening simulator process: GET ``{url}/hub/<Service>`` with ``KEY=key``."""

    process: subprocess.Popen
    url: str
    key: str


def command(*args: str, cpu: int | None = None) -> list[str]:
    """The command line that serves on a free port and announces itself, plus ``args``."""
    cmd = [sys.executable, "-m", "neis_simulator", "--port", "0", "--ready-json"]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    return [*cmd, *args]


def start(
    *args: str,
    cpu: int | None = None,
    env: dict[str, str] | None = None,
    log: pathlib.Path | None = None,
    timeout: float = 60.0,
) -> Launched:
    """Start a simulator with the command-line options ``args`` and wait until it listens.

    ``cpu`` pins the server to one core. ``env`` replaces this process's environment (the
    package's directory is put first on PYTHONPATH either way). The child's stderr goes to
    ``log`` if given, else to this process's stderr. Raises LaunchError, after killing the
    child, if it exits or stays silent for ``timeout`` seconds (building the national world
    takes a few seconds).
    """
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOME), env.get("PYTHONPATH")]))
    stderr = open(log, "wb") if log is not None else None  # noqa: SIM115 (closed below)
    try:
        process = subprocess.Popen(
            command(*args, cpu=cpu), cwd=HOME, env=env, stdout=subprocess.PIPE, stderr=stderr,
            text=True,
        )  # fmt: skip
    finally:
        if stderr is not None:
            stderr.close()  # the child holds its own copy
    try:
        ready = _ready_line(process, timeout)
    except LaunchError as exc:
        stop(process)
        where = f"; its stderr is in {log}" if log is not None else ""
        raise LaunchError(f"{exc}{where}") from None
    return Launched(process, ready["url"], ready["key"])


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate the simulator and reap it; kill it if it has not gone after ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _ready_line(process: subprocess.Popen, timeout: float) -> dict:
    """The JSON line the child prints once it listens. A thread reads it, so a child that
    hangs before printing cannot hang the caller past ``timeout``; on any failure the child
    is killed before LaunchError is raised."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = lines[0] if lines else ""
    try:
        ready = json.loads(line)
        return {"url": ready["url"], "key": ready["key"]}
    except (ValueError, KeyError, TypeError):
        pass
    if not line and not reader.is_alive():  # its output ended: the child is exiting
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(1)
    code = process.poll()
    process.kill()
    reader.join()  # the kill closes the pipe, so the read ends
    if line:
        raise LaunchError(f"the simulator printed {line.strip()!r}, not its ready line")
    if code is not None:
        raise LaunchError(f"the simulator exited with code {code} before listening")
    raise LaunchError(f"the simulator did not say it was listening within {timeout:g} s")
