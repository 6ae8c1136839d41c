"""The simulator stands alone: standard library only, never Django or the collector.

It is the fake the collector is tested against; if it imported the collector, a bug there
could hide itself on both sides of the wire.
"""

import ast
import json
import subprocess
import sys

from tests.processes import ROOT

PACKAGE = ROOT / "neis_simulator"

# Imports every module of the package (bar __main__, which would serve) in an interpreter
# without site-packages (-S) or the environment (-I), then lists the top-level modules loaded.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
sys.path.insert(0, {root!r})
import neis_simulator
for module in pkgutil.walk_packages(neis_simulator.__path__, "neis_simulator."):
    if not module.name.endswith(".__main__"):
        importlib.import_module(module.name)
print(json.dumps(sorted({{name.partition(".")[0] for name in sys.modules}})))
"""


ALLOWED = {*sys.stdlib_module_names, "__main__", "neis_simulator"}


def _outside_stdlib(names) -> set[str]:
    return {name for name in names if name not in ALLOWED}


def test_it_loads_only_the_standard_library_in_a_fresh_interpreter():
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORT_ALL.format(root=str(ROOT))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "neis_simulator" in loaded
    assert _outside_stdlib(loaded) == set()


def test_it_names_no_module_outside_the_standard_library_in_any_import():
    # Also catches imports inside functions, which the fresh interpreter never runs.
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in _outside_stdlib(name.partition(".")[0] for name in names):
                found[f"{path.relative_to(ROOT)}:{node.lineno}"] = name
    assert found == {}
