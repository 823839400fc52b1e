"""The public API is declared, and what is used across packages is what is declared.

Each package's ``__init__`` lists its modules (and the names it offers) in ``__all__``; every declared name
imports; the top package sorts each top-level module into the notebooks' API or the internal modules. Code
outside a package (another package, the notebooks, benchmarks, scripts) imports only the package's declared
modules and names, only names a module with ``__all__`` declares, and never a ``_private`` name. Read from the
source (ast), like the layering test; tests themselves are white-box and not checked.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "distill_kit"
PACKAGES = sorted(p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file())


_ALL = re.compile(r"^__all__[^=\n]*=\s*(\[[^\]]*\]|\([^)]*\))", re.M)


@cache
def declared(path: Path) -> list[str] | None:
    """The literal ``__all__`` of a source file (None when it has none, or builds it)."""
    m = _ALL.search(path.read_text(encoding="utf-8"))
    if m is None:
        return None
    try:
        return list(ast.literal_eval(m.group(1)))
    except ValueError:
        return None


@cache
def modules_of(package: str) -> set[str]:
    return {p.stem for p in (SOURCE / package).glob("*.py") if not p.stem.startswith("_")}


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_declares_its_modules_and_every_declared_name_imports(package: str) -> None:
    names = declared(SOURCE / package / "__init__.py")
    assert names is not None, f"distill_kit/{package}/__init__.py has no literal __all__"
    assert len(set(names)) == len(names), f"{package}: a name declared twice"
    undeclared = modules_of(package) - set(names)
    assert not undeclared, f"{package}: modules not in __all__ (declare them, or name them _private): {sorted(undeclared)}"
    module = importlib.import_module(f"distill_kit.{package}")
    for name in names:
        if name in modules_of(package):  # found, not run: importing every chart module would cost seconds
            assert importlib.util.find_spec(f"distill_kit.{package}.{name}") is not None
        else:
            assert hasattr(module, name), f"distill_kit.{package}.__all__ names {name!r}, which it does not define"


def test_the_top_package_sorts_every_top_level_module() -> None:
    import distill_kit

    tops = {p.stem for p in SOURCE.glob("*.py") if not p.stem.startswith("_")} | set(PACKAGES)
    api, internal = set(distill_kit._MODULES), set(distill_kit._INTERNAL)
    assert not api & internal
    assert tops == api | internal, f"unsorted: {sorted(tops - api - internal)}; gone: {sorted((api | internal) - tops)}"
    for name, home in distill_kit._FUNCTIONS.items():  # the functions the package offers live where it says
        assert name in (declared(SOURCE / f"{home}.py") or [name]) and hasattr(importlib.import_module(f"distill_kit.{home}"), name)
    for name in api | internal:
        assert importlib.util.find_spec(f"distill_kit.{name}") is not None


@dataclass(frozen=True)
class Use:
    where: str  # file:line
    owner: str  # the importing file's package ("" for a top-level module, "-" outside distill_kit)
    module: str  # the imported module, dotted
    name: str | None  # the imported name (None: the module itself)


def _owner(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    if parts[0] != "distill_kit":
        return "-"
    return parts[1] if len(parts) > 2 else ""


def _sources() -> list[tuple[Path, str]]:
    out = [(p, p.read_text(encoding="utf-8")) for p in sorted(SOURCE.rglob("*.py"))]
    out += [(p, p.read_text(encoding="utf-8")) for d in ("benchmarks", "scripts") for p in sorted((ROOT / d).glob("*.py"))]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(line for line in c["source"] if not line.lstrip().startswith(("%", "!")))
                         for c in cells if c["cell_type"] == "code")
        out.append((nb, code))
    return out


#: an import statement naming the package, at any indentation (imports inside functions count too)
_IMPORT = re.compile(r"^[ \t]*(from[ \t]+distill_kit[\w.]*[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+distill_kit[^\n]*)",
                     re.M)


def uses() -> list[Use]:
    """Every import of the package outside tests; only the import statements are parsed (fast: the whole
    source through ast takes most of a second)."""
    found: list[Use] = []
    for path, text in _sources():
        owner, rel = _owner(path), path.relative_to(ROOT).as_posix()
        for m in _IMPORT.finditer(text):
            where = f"{rel}:{text.count(chr(10), 0, m.start()) + 1}"
            node = ast.parse(m.group(1).split("#")[0].strip() if "(" not in m.group(1) else m.group(1)).body[0]
            if isinstance(node, ast.ImportFrom) and node.module:
                found += [Use(where, owner, node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found += [Use(where, owner, a.name, None) for a in node.names if a.name.startswith("distill_kit.")]
    return found


def problems(use: Use) -> list[str]:
    parts = use.module.split(".")
    package = parts[1] if len(parts) > 1 and parts[1] in PACKAGES else ""
    if package and use.owner == package:
        return []  # inside its own package anything goes
    out = []
    if use.name and use.name.startswith("_"):
        out.append(f"{use.where}: private {use.module}.{use.name}")
    if package:
        api = declared(SOURCE / package / "__init__.py") or []
        if len(parts) > 2 and parts[2] not in api:
            out.append(f"{use.where}: {use.module} is not declared by distill_kit.{package}")
        if len(parts) == 2 and use.name and use.name not in api:
            out.append(f"{use.where}: distill_kit.{package} does not declare {use.name}")
    target = SOURCE.joinpath(*parts[1:]).with_suffix(".py")
    names = declared(target) if target.is_file() else None
    if names is not None and use.name and use.name not in names and target.stem != "__init__":
        out.append(f"{use.where}: {use.module}.__all__ does not declare {use.name}")
    return out


def test_what_is_used_across_packages_is_declared() -> None:
    found = [p for use in uses() for p in problems(use)]
    assert not found, "undeclared or private names used across packages:\n" + "\n".join(found)


def test_the_check_sees_an_undeclared_module_and_a_private_name() -> None:
    assert problems(Use("x.py:1", "-", "distill_kit.ice.not_declared", "f")) == [
        "x.py:1: distill_kit.ice.not_declared is not declared by distill_kit.ice"]
    assert problems(Use("x.py:1", "lineage", "distill_kit.rse.scores", "_private")) == [
        "x.py:1: private distill_kit.rse.scores._private"]
    assert problems(Use("x.py:1", "rse", "distill_kit.rse.scores", "_private")) == []  # its own package
    assert problems(Use("x.py:1", "-", "distill_kit.datasets", "not_in_all")) == [
        "x.py:1: distill_kit.datasets.__all__ does not declare not_in_all"]
