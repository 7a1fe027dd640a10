"""The library's layering: imports point one way, no circles, no oversized files.

Layers, lowest first (a module may import its own layer and the ones below):

0. ``checks``, ``methods``: argument validation, the method vocabulary (no project imports);
1. ``rd``: functions on R^d, SAM's update, its dynamics;
2. ``optim``: the SAM optimizer for PyTorch models;
3. ``data``, ``models``, ``diagnostics``;
4. ``runs``: config, train step and loop, probe, full-batch study, sweeps, store, CLI;
5. ``report``, ``plotting``: the chapters' tables and figures.

The package top holds only these modules and layer packages: no compatibility re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = "sam_hallucination"
SRC = Path(__file__).resolve().parents[1] / "src" / PKG

LAYERS = {
    "checks": 0, "methods": 0,
    "rd": 1,
    "optim": 2,
    "data": 3, "models": 3, "diagnostics": 3,
    "runs": 4, "stats": 0,
    "report": 5, "plotting": 5,
    "__init__": 0,
}
LAYER_PACKAGES = {"rd", "optim", "data", "runs", "report"}
MAX_LINES = 400
# Files allowed over MAX_LINES, each one concept: (none today).
LONG_FILES: dict[str, str] = {}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def project_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (anywhere in the file, functions included)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
            subs: list[str] = []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod]
            subs = [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets + subs:
            if t in known:
                out.add(t)
    return out - {name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: project_imports(n, p, set(mods)) for n, p in mods.items()}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in graph.items():
        for dep in deps:
            if LAYERS[top(dep)] > LAYERS[top(mod)]:
                bad.append(f"{mod} (layer {LAYERS[top(mod)]}) imports {dep} "
                           f"(layer {LAYERS[top(dep)]})")
    return sorted(bad)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_every_module_has_a_layer():
    assert {top(m) for m in modules()} <= set(LAYERS)


def test_the_package_top_is_the_layers_and_nothing_else():
    """No compatibility module at the top: every top-level name is a layer module or package."""
    tops = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
            if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert tops == set(LAYERS)
    assert LAYER_PACKAGES <= {p.name for p in SRC.iterdir() if p.is_dir()}


def test_no_import_circles():
    assert find_cycle(import_graph()) is None


def test_imports_point_down_the_layers():
    assert layer_violations(import_graph()) == []


def test_the_checks_catch_a_planted_bad_import():
    """The checker is not vacuous: an upward import and a circle are both reported."""
    graph = import_graph()
    graph[f"{PKG}.optim.sam"] = graph[f"{PKG}.optim.sam"] | {f"{PKG}.report.tables"}
    assert layer_violations(graph) == [
        f"{PKG}.optim.sam (layer 2) imports {PKG}.report.tables (layer 5)"]
    graph = import_graph()
    graph[f"{PKG}.rd.landscapes"] = graph[f"{PKG}.rd.landscapes"] | {f"{PKG}.rd.sam"}
    assert find_cycle(graph) is not None


def test_the_import_parser_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert f"{PKG}.rd.landscapes" in graph[f"{PKG}.rd.sam"]  # from .landscapes import ...
    assert f"{PKG}.rd.dynamics" in graph[f"{PKG}.plotting"]  # inside a function
    assert f"{PKG}.runs.step" in graph[f"{PKG}.runs.fullbatch.runner"]  # from ..step import


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_file_over_the_size_limit(name):
    path = modules()[name]
    n = len(path.read_text().splitlines())
    rel = str(path.relative_to(SRC))
    assert n <= MAX_LINES or rel in LONG_FILES, f"{rel} has {n} lines (limit {MAX_LINES})"


def architecture_paths() -> list[str]:
    """The file and folder paths ARCHITECTURE.md names in backticks."""
    import re

    text = (SRC.parents[1] / "ARCHITECTURE.md").read_text()
    return sorted({t for t in re.findall(r"`(\w[\w./]*)`", text) if t.endswith((".py", "/"))})


@pytest.mark.parametrize("rel", architecture_paths())
def test_every_path_in_architecture_md_exists(rel):
    root = SRC.parents[1]
    assert (SRC / rel).exists() or (root / rel).exists(), f"ARCHITECTURE.md names {rel}; no such path"


def test_architecture_md_names_every_layer_module():
    named = set(architecture_paths())
    for top_name in LAYERS:
        if top_name != "__init__":
            assert f"{top_name}/" in named or f"{top_name}.py" in named, top_name
