"""The package's import layering, checked from the source: no cycles, lower layers never import higher ones
(not even lazily inside a function), and nothing outside ``run/`` imports ``run/``.

Why from the source (ast) and not from ``sys.modules``: a lazy import inside a function is still a dependency,
and a cycle that only closes at call time is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "distill_kit"
SOURCE = Path(__file__).resolve().parents[1] / PACKAGE

# lowest first; a module may import its own layer and the layers below it
LAYERS: list[set[str]] = [
    {"paths"},
    {"config", "cache", "redact", "processes", "stats", "executor", "display", "charts", "html", "nbexport"},
    {"datasets", "datafetch", "models", "store", "collect", "ratelimit", "spend", "providers", "text"},
    {"ice", "rse", "students"},
    {"lineage"},
    # testing: the loopback servers; its zoo answers as the judges of ice/ do (rule_verdict)
    {"paper", "verdict", "summaries", "testing"},
    {"run"},
]
TOP = {PACKAGE, f"{PACKAGE}.__main__"}  # the package's face: may import anything, run/ included
LAYER_OF = {part: i for i, parts in enumerate(LAYERS) for part in parts}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    where: str  # file:line

    def __str__(self) -> str:
        return f"{self.where} -> {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The package module ``name`` refers to (a name inside a module resolves to that module)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, text: str | None = None) -> list[Import]:
    """Every package import in the module (or in ``text`` as if it were that module): top level, inside
    functions, inside ``if`` blocks alike; one per imported module and line."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    where = path.relative_to(SOURCE.parent).as_posix()
    found: list[Import] = []
    source = path.read_text(encoding="utf-8") if text is None else text
    for node in ast.walk(ast.parse(source, filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            target = resolve(name) if name.split(".")[0] == PACKAGE else None
            imp = Import(module, target or "", f"{where}:{node.lineno}")
            if target is not None and target != module and imp not in found:
                found.append(imp)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def part_of(module: str) -> str:
    """The top-level part a module belongs to: ``distill_kit.ice.fuzz`` -> ``ice``."""
    return module.split(".")[1] if module.count(".") else module


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({part_of(m) for m in MODULES if m not in TOP} - set(LAYER_OF))
    assert not unplaced, f"modules with no layer in tests/test_layering.py LAYERS: {unplaced}"


def test_lower_layers_never_import_higher_ones() -> None:
    upward = [imp for m, found in GRAPH.items() if m not in TOP for imp in found
              if imp.target not in TOP and LAYER_OF.get(part_of(imp.target), -1) > LAYER_OF.get(part_of(m), -1)
              and part_of(imp.target) != "run"]  # imports of run/ are the next test's
    assert not upward, "imports of a higher layer:\n" + "\n".join(
        f"  {imp} ({part_of(imp.source)} is below {part_of(imp.target)})" for imp in upward)


def test_nothing_outside_run_imports_run() -> None:
    into_run = [imp for m, found in GRAPH.items() if m not in TOP and part_of(m) != "run" for imp in found
                if part_of(imp.target) == "run"]
    assert not into_run, "imports of run/ from outside it:\n" + "\n".join(f"  {imp}" for imp in into_run)


def cycles(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for imp in graph[v]:
            w = imp.target
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    found = cycles(GRAPH)
    lines = []
    for component in found:
        members = set(component)
        lines.append("  cycle: " + ", ".join(component))
        lines += [f"    {imp}" for m in component for imp in GRAPH[m] if imp.target in members]
    assert not found, "import cycles:\n" + "\n".join(lines)


@pytest.mark.parametrize("source, expected", [
    ("from distill_kit import datasets", ["distill_kit.datasets"]),
    ("from distill_kit.ice.judges import rule_verdict, truth_for", ["distill_kit.ice.judges"]),
    ("import distill_kit.stats as s", ["distill_kit.stats"]),
    ("from . import base", ["distill_kit.providers.base"]),
    ("from .local import free_port", ["distill_kit.providers.local"]),
    ("from .. import config", ["distill_kit.config"]),
    ("import json", []),
])
def test_the_checker_resolves_lazy_absolute_and_relative_imports(source: str, expected: list[str]) -> None:
    """The checker itself: an import inside a function, aliased or relative, reaches the module it names."""
    found = imports_of("distill_kit.providers.batch", f"def f():\n    {source}\n")
    assert [i.target for i in found] == expected
    assert all(i.where == "distill_kit/providers/batch.py:2" for i in found)


def test_the_checker_finds_a_cycle_and_names_its_imports() -> None:
    graph = {"a": [Import("a", "b", "a.py:3")], "b": [Import("b", "c", "b.py:1")], "c": [Import("c", "a", "c.py:9")],
             "d": [Import("d", "a", "d.py:1")]}
    assert cycles(graph) == [["a", "b", "c"]]
