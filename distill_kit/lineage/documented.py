"""Documented lineage: which AlpacaEval models are students, variants, controls or references, who
taught whom, and each reference's product line (``alpaca_eval/lineage_extended.csv``, else ``lineage.csv``).

Why a module of its own: these labels are what attribution is *scored* against and what the report
reads attributions against; nothing in :mod:`distill_kit.lineage.attribution` or
:mod:`distill_kit.lineage.votes` may fit on a target's own label, so keeping the labels apart makes it
easy to see where they enter. :func:`distill_kit.datasets.lineage` is the one reader of the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

LINEAGE_EXTENDED = "alpaca_eval/lineage_extended.csv"
LINEAGE_BASE = "alpaca_eval/lineage.csv"
LABELLED_SOURCE = "alpaca-eval"
"""The response source whose models the lineage files document."""


@dataclass(frozen=True)
class LineageLabels:
    """What the lineage table documents: roles, teachers and product lines."""

    students: list[str]  # role student
    variants: list[str]  # role variant (teacher = parent)
    controls: list[str]  # human-data controls, no LLM teacher
    references: list[str]  # candidate teachers
    truth: dict[str, str]  # student/variant -> documented teacher
    lines: dict[str, str]  # model -> product line
    roles: dict[str, str]  # model -> role
    families: dict[str, str] = field(default_factory=dict)  # model -> family (base model or maker), where documented

    @property
    def targets(self) -> list[str]:
        """Every model attribution scores: students, then variants, then controls."""
        return self.students + self.variants + self.controls

    @property
    def teacher_lines(self) -> dict[str, str]:
        """student/variant -> its documented teacher's product line (the teacher itself when it has none)."""
        return {s: self.lines.get(t, t) for s, t in self.truth.items()}

    def by_family(self) -> LineageLabels:
        """The same labels with every reference's product line replaced by its documented family, so that a
        lineage test asks the coarser question "answers like <family>'s models" (e.g. any OpenAI line) -- one
        test per family instead of per line, fewer lines for Holm to correct over, and no sibling lines of one
        maker to confuse. References without a family keep their line."""
        lines = {m: self.families.get(m) or ln for m, ln in self.lines.items() if m in set(self.references)}
        return replace(self, lines={**self.lines, **lines})

    def model_sets(self) -> dict[str, list[str]]:
        """Named groups of models whose homogenisation is worth comparing."""
        return {"references": self.references, "students + variants": self.students + self.variants,
                "students + controls": self.students + self.controls}


def lineage_rows(prefer_extended: bool = True) -> tuple[pl.DataFrame, str]:
    """The lineage table and which file it came from: ``lineage_extended.csv`` (the data folder's, else the
    project's transcription) unless ``prefer_extended`` is off, then ``lineage.csv``."""
    from distill_kit import datasets

    if not prefer_extended:
        return datasets.lineage(extended=False), Path(LINEAGE_BASE).name
    return datasets.lineage(), Path(datasets.lineage_source()).name


def lineage_labels(
    models: Sequence[str] | None = None, *, rows: pl.DataFrame | None = None, prefer_extended: bool = True
) -> LineageLabels:
    """Lineage labels, restricted to ``models`` when given.

    ``rows`` is a lineage table; without it ``lineage_extended.csv`` (the superset of documented models: the
    data folder's, else the project's transcription), or ``lineage.csv`` with ``prefer_extended=False``.
    """
    table = rows if rows is not None else lineage_rows(prefer_extended)[0]
    kept = [r for r in table.iter_rows(named=True) if models is None or r["model"] in set(models)]

    def role(name: str) -> list[str]:
        return [r["model"] for r in kept if r["role"] == name]

    return LineageLabels(
        students=role("student"), variants=role("variant"), controls=role("control"),
        references=role("reference"),
        truth={r["model"]: r["teacher"] for r in kept if r["role"] in ("student", "variant") and r["teacher"]},
        lines={r["model"]: r["line"] for r in kept if r["line"]},
        roles={r["model"]: r["role"] for r in kept},
        families={r["model"]: r["family"] for r in kept if r.get("family")},
    )


def source_labels(source: str, models: Sequence[str]) -> LineageLabels | None:
    """The labels of ``models`` when ``source`` is the documented one (AlpacaEval), else None: the lineage
    files say nothing about other sources' or live models."""
    from distill_kit.config import OLD_DATASET_SPELLINGS

    documented = OLD_DATASET_SPELLINGS.get(source, source) == LABELLED_SOURCE
    return lineage_labels(models, prefer_extended=True) if documented else None


def documented_teachers() -> dict[str, str]:
    """student/variant -> documented teacher over the whole lineage table, human-data controls -> "none";
    {} without lineage data (what attribution tables are read against)."""
    from distill_kit.datasets import DataError

    try:
        labels = lineage_labels()
    except DataError:
        return {}
    return {**{c: "none" for c in labels.controls}, **labels.truth}


def reference_lines() -> dict[str, str]:
    """model -> product line over the whole lineage table, so a verdict can name a teacher's line; {} without data."""
    from distill_kit.datasets import DataError

    try:
        return dict(lineage_labels().lines)
    except DataError:
        return {}


def label_columns(frame: pl.DataFrame, key: str, **columns: Mapping[str, str]) -> pl.DataFrame:
    """``frame`` with one column per keyword: the mapping's value for each row's ``key`` ("" when absent),
    e.g. ``label_columns(table, "student", role=labels.roles, documented_teacher=labels.truth)``."""
    return frame.with_columns(
        pl.col(key).replace_strict(dict(mapping), default="").alias(name) for name, mapping in columns.items())
