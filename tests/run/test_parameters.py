"""One parameter vocabulary (docs/parameters.md): the notebooks' parameters cells follow it and the page lists them.

Same name -> same type in every notebook; names of things are lists; every count's comment says what 0 means,
consistently with the rule (``*sample_size``: 0 = all; any other count: 0 = none); the page's table of each
notebook is its parameters cell.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from distill_kit.paths import NOTEBOOKS_DIR, PROJECT_ROOT

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))
DOC = PROJECT_ROOT / "docs" / "parameters.md"
#: parameters that name things: always lists, wherever they appear
LIST_NAMES = {"models", "live_models", "prompt_sets", "students", "candidates", "signals", "judge_panel", "compare",
              "extra_references", "static_formats"}
#: the shared vocabulary's types
SHARED = {"models": "list", "live_models": "list", "reference": "str", "judge": "str", "prompt_sets": "list",
          "sample_size": "int", "seed": "int", "executor": "str", "run_dir": "str", "store_path": "str"}
#: ints that are not counts: a seed, a position, a length cap (0 has no meaning to state)
NOT_COUNTS = {"seed", "preview_index", "max_tokens"}
ZERO_ALL = re.compile(r"\b0\s*(=|means)\s*all\b")
ZERO_NONE = re.compile(r"\b0\s*(=|means)\s*(none|no\b|nothing|skips?\b|off\b)")


@dataclass
class Param:
    notebook: str
    name: str
    type: str
    comment: str


def parameters_cell(path: Path) -> list[Param]:
    """Every assignment of the notebook's parameters cell with its annotation and trailing comment."""
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    comments = {tok.start[0]: tok.string.lstrip("# ") for tok in tokenize.generate_tokens(io.StringIO(cell.source).readline)
                if tok.type == tokenize.COMMENT}
    out = []
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            ann = node.annotation.value if isinstance(node.annotation, ast.Subscript) else node.annotation
            comment = " ".join(comments.get(n, "") for n in range(node.lineno, (node.end_lineno or node.lineno) + 1))
            out.append(Param(path.stem, node.target.id, ast.unparse(ann), comment.strip()))
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            out.append(Param(path.stem, ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target),
                             "", ""))
    return out


ALL = [p for nb in NOTEBOOKS for p in parameters_cell(nb)]


def test_every_parameter_is_annotated():
    assert [f"{p.notebook}: {p.name}" for p in ALL if not p.type] == []


def test_the_same_name_has_the_same_type_in_every_notebook():
    types: dict[str, set[str]] = {}
    for p in ALL:
        types.setdefault(p.name, set()).add(p.type)
    assert {n: sorted(t) for n, t in types.items() if len(t) > 1} == {}
    assert {n: t for n, t in SHARED.items() if n in types and types[n] != {t}} == {}


def test_names_of_things_are_lists():
    assert [f"{p.notebook}: {p.name}: {p.type}" for p in ALL if p.name in LIST_NAMES and p.type != "list"] == []
    comma = [f"{p.notebook}: {p.name}" for p in ALL if p.type == "str" and "comma" in p.comment.lower()]
    assert comma == []


@pytest.mark.parametrize("param", [p for p in ALL if p.type == "int" and p.name not in NOT_COUNTS],
                         ids=lambda p: f"{p.notebook}:{p.name}")
def test_every_count_says_what_zero_means_by_the_rule(param: Param):
    if param.name.endswith("sample_size"):
        assert ZERO_ALL.search(param.comment), f"{param.name}: a sample size's comment says '0 = all': {param.comment!r}"
    else:
        assert ZERO_NONE.search(param.comment) and not ZERO_ALL.search(param.comment), \
            f"{param.name}: a budget's comment says '0 = none': {param.comment!r}"


def doc_tables() -> dict[str, dict[str, str]]:
    """``{notebook stem: {parameter: type}}`` from the page's per-notebook tables."""
    tables: dict[str, dict[str, str]] = {}
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## (\d\d-\S+)$", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
        elif line.startswith("## "):
            current = None
        elif current is not None and (row := re.match(r"\| `(\w+)` \| (\w+) \|", line)):
            current[row.group(1)] = row.group(2)
    return tables


def test_the_page_lists_every_notebooks_parameters():
    documented = doc_tables()
    cells = {nb.stem: {p.name: p.type for p in parameters_cell(nb)} for nb in NOTEBOOKS}
    assert documented == cells


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(notebook: Path):
    """`papermill --help-notebook` and JupyterLab's papermill tooling parse the cell line by line and skip a
    line whose comment holds another '=' (so comments say "0 means all", not "0 = all")."""
    import papermill

    declared = {p.name for p in parameters_cell(notebook)}
    assert set(papermill.inspect_notebook(str(notebook))) == declared
