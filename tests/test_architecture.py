"""The import graph is the architecture: no cycles, and no layer reaching up.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import
cannot hide a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("collector", "schedules", "proj", "neis_simulator")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Project modules imported anywhere in a file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in MODULES}


GRAPH = {module: _imports(path) - {module} for module, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def _reaches(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for target in GRAPH[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_it_reads_the_whole_tree():
    assert {"collector.pipeline", "collector.ledger", "collector.tasks", "proj.celery"} <= set(
        GRAPH
    )
    assert "collector.ledger" in GRAPH["collector.pipeline"]


def test_it_has_no_import_cycle():
    assert _cycles() == []


def test_the_plain_function_layer_never_reaches_the_celery_layer_or_the_console():
    upper = {"collector.tasks", "collector.admin", "collector.admin_runs", "proj.celery"}
    upper |= {m for m in GRAPH if m.startswith("collector.management")}
    for module in (
        "collector.pipeline",
        "collector.ledger",
        "collector.storage",
        "collector.registry",
        "collector.models",
        "collector.limiter",
        "collector.report",
    ):
        assert _reaches(module) & upper == set(), module


def test_the_ledger_and_storage_never_reach_the_pipeline():
    for module in ("collector.ledger", "collector.storage", "collector.registry"):
        assert "collector.pipeline" not in _reaches(module), module


def test_the_neis_client_seam_stands_on_its_own():
    allowed = {m for m in GRAPH if m.startswith("collector.neis")} | {
        "collector",
        "collector.clock",
    }
    for module in GRAPH:
        if module.startswith("collector.neis"):
            assert _reaches(module) <= allowed, module


def test_the_simulator_knows_nothing_of_the_collector():
    for module in GRAPH:
        if module.startswith("neis_simulator"):
            assert all(m.startswith("neis_simulator") for m in _reaches(module)), module
