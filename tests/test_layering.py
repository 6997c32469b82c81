"""The two packages depend in one direction, and the app starts without heavy imports.

`lint-imports` (the contracts in pyproject.toml) checks the import graph as written; these tests
check what really lands in `sys.modules` when each module is imported in a fresh interpreter, so a
lazy import that slipped to module level, or a third-party package that pulls in a forbidden one,
is caught too. Modules are found on disk, so a new core package or screen is covered without
editing this file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
WEB_STACK = ("fastapi", "uvicorn", "starlette")
ML_STACK = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "accelerate")

# Imports each module in turn and records, for each forbidden name (a package and everything under
# it), the first module whose import brought it into sys.modules.
PROBE = """
import importlib, json, sys
modules, forbidden = json.loads(sys.argv[1]), json.loads(sys.argv[2])
culprits = {}
for module in modules:
    importlib.import_module(module)
    for name in forbidden:
        if name not in culprits and any(n == name or n.startswith(name + '.') for n in sys.modules):
            culprits[name] = module
print(json.dumps(culprits))
"""


def modules_under(package: str, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Every module of `package` (dotted names), found from the files on disk."""
    base = ROOT / package.replace(".", "/")
    found = []
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not any(name == s or name.startswith(s + ".") for s in skip):
            found.append(name)
    return found


def first_importers(modules: list[str], forbidden: tuple[str, ...]) -> dict[str, str]:
    """{forbidden name: the module whose import pulled it in}, from a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules), json.dumps(list(forbidden))],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_discovery_sees_every_package():
    core = modules_under("carexpert")
    for package in ("carexpert.config", "carexpert.runs", "carexpert.training", "carexpert.cli",
                    "carexpert.evaluation", "carexpert.chat", "carexpert.knowledge"):
        assert package in core, package
    screens = modules_under("carexpert_tui.screens")
    assert "carexpert_tui.screens.train" in screens and "carexpert_tui.screens.chat" in screens


def test_core_never_imports_textual_the_app_or_a_web_stack():
    # `carexpert serve` is an optional extra: only its app module (loaded when a server starts) may.
    modules = modules_under("carexpert", skip=("carexpert.serve.app",))
    assert first_importers(modules, ("textual", "carexpert_tui", *WEB_STACK)) == {}
    assert "fastapi" in first_importers(["carexpert.serve.app"], WEB_STACK)  # the check above can fail


def test_runs_never_imports_torch_or_training():
    modules = modules_under("carexpert.runs")
    forbidden = (*ML_STACK, "carexpert.training", "carexpert.modeling")
    assert first_importers(modules, forbidden) == {}


def test_the_probe_names_the_module_that_pulls_a_package_in():
    # Guards the guard: a check that can never report anything would pass silently.
    assert first_importers(["carexpert.config", "carexpert.training.trainer"], ("torch",)) == {
        "torch": "carexpert.training.trainer"
    }


def test_no_app_module_imports_the_ml_stack_at_start():
    # Every app module, screens and widgets included, as the app imports them lazily on first use.
    modules = modules_under("carexpert_tui")
    assert first_importers(modules, ML_STACK) == {}


def import_cycles(graph) -> list[list[str]]:
    """The strongly connected groups of modules (more than one module) in a grimp graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles():
    # Every import counts, in-function ones included: a cycle is broken by moving code, not by hiding an import.
    graph = grimp.build_graph("carexpert", "carexpert_tui", cache_dir=None)
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.y", imported="a.z")
    assert import_cycles(graph) == [["a.x", "a.y"]]
