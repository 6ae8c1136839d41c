"""The locks pin the whole dependency tree with hashes, and this virtualenv is exactly it.

requirements/*.txt are the inputs people edit; requirements/lock turns them into *.lock, which
CI (.ci/run) and the Docker image install with --require-hashes.
"""

import re
import subprocess
import sys

import pytest

from tests.processes import ROOT

REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """``{package: (version, hashes)}`` of one lock file, each entry checked for form."""
    text = (REQUIREMENTS / f"{name}.lock").read_text()
    entries = {}
    # An entry is a pin and its continuation lines; comments ("# via ...") follow it.
    for block in re.split(r"\n(?=\S)", text):
        if not block.strip() or block.startswith("#"):
            continue
        match = PIN.match(block)
        assert match, f"{name}.lock: not a pinned requirement: {block.splitlines()[0]!r}"
        lines = [line.strip(" \\") for line in block.splitlines()[1:]]
        hashes = [line for line in lines if line.startswith("--hash=")]
        assert all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes), block
        entries[_name(match.group(1))] = (match.group(2), hashes)
    return entries


def _inputs(name: str) -> dict[str, str]:
    pins = {}
    for line in (REQUIREMENTS / f"{name}.txt").read_text().splitlines():
        if line.startswith("-r "):
            pins.update(_inputs(line.split()[1].removesuffix(".txt")))
        elif match := PIN.match(re.sub(r"\[[^\]]*\]", "", line)):
            pins[_name(match.group(1))] = match.group(2)
    return pins


@pytest.mark.parametrize("name", ["base", "dev"])
def test_every_locked_package_has_a_hash(name):
    entries = _lock(name)
    assert len(entries) > 30
    assert [package for package, (_, hashes) in entries.items() if not hashes] == []


@pytest.mark.parametrize("name", ["base", "dev"])
def test_the_lock_keeps_every_pin_of_its_input(name):
    locked = {package: version for package, (version, _) in _lock(name).items()}
    inputs = _inputs(name)
    assert {p: v for p, v in inputs.items() if locked.get(p) != v} == {}


def test_the_runtime_lock_is_the_dev_lock_less_the_tools():
    base, dev = _lock("base"), _lock("dev")
    assert {p: e for p, e in base.items() if dev.get(p) != e} == {}


def test_this_virtualenv_is_exactly_the_dev_lock():
    """What CI tested is what the lock installs: same packages, same versions."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    installed = {}
    for line in frozen.splitlines():
        match = PIN.match(line)
        assert match, f"pip freeze lists a package not installed from an index: {line!r}"
        installed[_name(match.group(1))] = match.group(2)
    locked = {package: version for package, (version, _) in _lock("dev").items()}
    assert installed == locked


@pytest.mark.parametrize(
    ("path", "lock"),
    [(".ci/run", "requirements/dev.lock"), ("docker/Dockerfile", "requirements/base.lock"),
     ("bin/demo", "requirements/base.lock")],
)  # fmt: skip
def test_installs_come_from_the_lock_with_hashes(path, lock):
    installs = [line for line in (ROOT / path).read_text().splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        assert f"--require-hashes -r {lock}" in line, line
