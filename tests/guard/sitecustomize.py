"""Switch the loopback guard on in a child process of the tests (``TEST_LOOPBACK_ONLY=1``).

Python imports ``sitecustomize`` at start-up from the first ``PYTHONPATH`` folder that has one;
``tests.loopback.child_environ`` puts this folder first. Keep nothing else here: every module
in this folder shadows any module of the same name in the child.
"""

import importlib.util
import os
import sys
from pathlib import Path

if os.environ.get("TEST_LOOPBACK_ONLY") == "1":
    # Loaded by path, not by package name: the child may not have the project on its path.
    _spec = importlib.util.spec_from_file_location(
        "_tests_loopback_guard", Path(__file__).resolve().parent.parent / "loopback.py"
    )
    _guard = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _guard
    _spec.loader.exec_module(_guard)
    try:
        _guard.install(
            log_path=os.environ.get("TEST_LOOPBACK_LOG") or None,
            allow=os.environ.get("TEST_LOOPBACK_ALLOW", ""),
        )
    except ValueError as exc:
        # Python reports an error in sitecustomize and runs on, unguarded: stop here instead.
        sys.stderr.write(f"loopback guard: {exc}\n")
        os._exit(2)
