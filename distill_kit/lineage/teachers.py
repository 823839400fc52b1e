"""A run's teacher attribution: both methods on the same targets, read against the documented lineage.

Why: notebook 05 shows two attributions side by side -- the headline vote of a candidates-only
"who wrote this?" classifier (:mod:`distill_kit.lineage.votes`) and the paired similarity signals
(:mod:`distill_kit.lineage.attribution`) -- with their confidences calibrated on the *other* documented
targets, and scores both against the documented teachers (:mod:`distill_kit.lineage.documented`).
:func:`attribute_teachers` is that step in one call; :func:`teacher_summary` is what the run records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from distill_kit.lineage.attribution import (
    Attribution,
    LineageFeatures,
    attribute,
    attribution_metrics,
    auroc,
    calibrate_on_labels,
)
from distill_kit.lineage.documented import LineageLabels, label_columns
from distill_kit.lineage.votes import DEFAULT_METHOD, VoteAttribution, attribute_by_vote, hits

CALIBRATE_FROM = 3
"""Documented targets needed before confidences are calibrated on the other targets' teachers."""


@dataclass
class TeacherFindings:
    """Both attributions of a run's targets and how they score against the documented lineage."""

    attribution: Attribution  # paired similarity signals (calibrated on labels when there are enough)
    vote: VoteAttribution  # the headline: candidates-only classifier vote under DEFAULT_METHOD
    table: pl.DataFrame  # attribution.table() plus role and documented_teacher when labelled
    vote_table: pl.DataFrame  # vote.table() plus documented_line when labelled
    metrics: dict[str, float]  # against the documented lineage; {} without labels


def choose_targets(students: Sequence[str], candidates: Sequence[str], labels: LineageLabels | None,
                   models: Sequence[str]) -> tuple[list[str], list[str]]:
    """(students, candidates) to attribute: the given lists, or (empty) the documented targets and
    references among ``models``; nothing without labels."""
    present = set(models)
    chosen = list(students) or ([m for m in labels.targets if m in present] if labels else [])
    refs = list(candidates) or ([m for m in labels.references if m in present] if labels else [])
    return chosen, refs


def attribute_teachers(
    frame: pl.DataFrame, students: Sequence[str], candidates: Sequence[str], labels: LineageLabels | None, *,
    features: LineageFeatures, signals: Sequence[str] = (), prompts: Sequence[str] | None = None, seed: int = 0,
) -> TeacherFindings:
    """Attribute ``students`` to ``candidates`` both ways on ``features``' prompt split.

    ``signals`` empty = the attribution default (paired, plus embedding when ``features`` has embeddings);
    ``prompts`` = the vote's prompt pool. With ``labels``, confidences are calibrated on the other documented
    targets once :data:`CALIBRATE_FROM` are documented, and the metrics say how both did."""
    if "embedding" in signals and not features.embed_pairs:
        raise ValueError("signal 'embedding' needs embedded prompts inside the score split; raise sample_size")
    attribution = attribute(frame, students, candidates, lines=labels.lines if labels else None,
                            signals=tuple(signals) or None, features=features)
    if labels:  # leave-one-student-out temperatures once enough students have documented teachers
        attribution = calibrate_on_labels(attribution, labels.truth, fallback_below=CALIBRATE_FROM)
    truth_lines = labels.teacher_lines if labels else None
    vote, _ = attribute_by_vote(frame, students, candidates, labels.lines if labels else {}, method=DEFAULT_METHOD,
                                prompts=prompts, seed=seed, truth_line=truth_lines)
    table, vote_table = attribution.table(), vote.table()
    metrics: dict[str, float] = {}
    if labels:
        vote_table = label_columns(vote_table, "target", documented_line=labels.teacher_lines)
        table = label_columns(table, "student", role=labels.roles, documented_teacher=labels.truth)
        metrics = attribution_metrics(attribution, labels.truth, labels.lines)
        dist = dict(zip(attribution.students, attribution.distillation_score.tolist()))
        metrics["auroc_students_vs_controls"] = auroc([dist[m] for m in labels.students if m in dist],
                                                      [dist[m] for m in labels.controls if m in dist])
        line_hits = hits(vote.rankings, labels.teacher_lines)
        metrics["vote_top1_line"], metrics["vote_top3_line"] = line_hits["top1_line"], line_hits["top3_line"]
    return TeacherFindings(attribution, vote, table, vote_table, metrics)


def teacher_summary(findings: TeacherFindings | None) -> dict[str, Any]:
    """The attribution keys of notebook 05's summary (empty values when nothing was attributed)."""
    if findings is None:
        return {"attribution": [], "attribution_temperature": None, "calibration": {}, "attribution_metrics": {},
                "vote_attribution": [], "vote_method": None}
    a = findings.attribution
    return {"attribution": a.table().to_dicts(), "attribution_temperature": a.temperature,
            "calibration": a.calibration, "attribution_metrics": findings.metrics,
            "vote_attribution": findings.vote_table.to_dicts(), "vote_method": findings.vote.method.name}
