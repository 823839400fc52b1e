"""A notebook's ``parameters`` cell, read once: the names it declares, their literal defaults, their types.

Why one reader: the runner passes a notebook only the parameters its cell declares and type-checks them
against the cell's annotations (:mod:`distill_kit.run.plan`), and the cost estimate plans a step's requests
with the cell's own defaults under the run's values (:mod:`distill_kit.run.estimate`), so the defaults live in
the notebook and nowhere else. The cell is parsed with :mod:`ast` rather than papermill's line parser, which
gives up on some comments; a cell that is not valid Python is one :class:`ConfigError` line naming the
notebook and the line, whoever asks.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_kit.config import ConfigError
from distill_kit.providers.base import clip

#: the types a parameters cell may declare, and the Python values each accepts
PARAMETER_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                                "list": (list,), "dict": (dict,)}
PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class ParametersCell:
    """What a notebook's ``parameters`` cell declares.

    ``names``: every name it assigns, in order. ``values``: the defaults that are plain literals (what
    papermill leaves alone when a run does not override them). ``types``: the annotation (``n: int = 3``,
    ``models: list[str] = []``), else the type of the literal default (``n = 3``); a name whose type cannot
    be told is absent."""

    names: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def _annotation_type(node: ast.expr) -> str | None:
    """``int`` -> "int", ``list`` / ``list[str]`` -> "list"; None for anything else."""
    base = node.value if isinstance(node, ast.Subscript) else node
    name = base.id if isinstance(base, ast.Name) else None
    return name if name in PARAMETER_TYPES else None


def _literal(node: ast.expr | None) -> tuple[bool, Any]:
    """(True, value) for a plain literal, (False, None) for anything papermill could not leave as it is."""
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def parse_parameters(source: str, where: str) -> ParametersCell:
    """The declarations in ``source`` (a parameters cell's code); ``where`` names it in the error line."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigError(f"{where}: parameters cell is not valid Python ({exc.msg}, line {exc.lineno})") from None
    names: list[str] = []
    values: dict[str, Any] = {}
    types: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            targets, declared = [node.target], _annotation_type(node.annotation)
        elif isinstance(node, ast.Assign):
            targets, declared = node.targets, None
        else:
            continue
        is_literal, value = _literal(node.value)
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            names.append(target.id)
            if is_literal:
                values[target.id] = value
            kind = declared or (type(value).__name__ if is_literal else None)
            if kind in PARAMETER_TYPES:
                types[target.id] = kind
    return ParametersCell(tuple(dict.fromkeys(names)), values, types)


def read_parameters(path: Path) -> ParametersCell:
    """The ``parameters``-tagged cell of the notebook at ``path`` (an empty one when it has none).

    An unreadable notebook or a cell that is not valid Python is one :class:`ConfigError` line."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:  # nbformat's NotJSONError is a ValueError
        raise ConfigError(f"{Path(path).name}: cannot read the notebook ({clip(str(exc), 200)})") from None
    for cell in nb.cells:
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.metadata.get("tags", []):
            return parse_parameters(cell.source, Path(path).name)
    return ParametersCell()


def check_parameter_types(params: dict[str, Any], declared: dict[str, str], where: str) -> None:
    """One ConfigError line for the first value whose type the notebook does not declare.

    Why here: papermill injects any value, and a string where an int is declared fails deep inside
    the notebook (a polars error in a cell) instead of naming the parameter. ``True`` is not an int,
    an int is a fine float; a ``list`` (names of models, prompt sets, ...) holds plain values, so a run
    config writes ``models: [a, b]``, never ``models: "a,b"``.
    """
    for name, value in params.items():
        want = declared.get(name)
        if want is None:
            continue
        ok = isinstance(value, PARAMETER_TYPES[want]) and not (want in ("int", "float") and isinstance(value, bool))
        if ok and want == "list":
            ok = all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
        if not ok:
            hint = " (a YAML list: [a, b])" if want == "list" else ""
            raise ConfigError(f"{where}: parameter {name} must be {want}{hint} (declared in the notebook's parameters "
                              f"cell), got {type(value).__name__} {clip(repr(value), 60)}")
