"""A run's teacher attribution: both methods on the same targets, read against the documented lineage.

Why: notebook 05 shows two attributions side by side -- the headline vote of a candidates-only
"who wrote this?" classifier (:mod:`distill_kit.lineage.votes`) and the paired similarity signals
(:mod:`distill_kit.lineage.attribution`) -- with their confidences calibrated on the *other* documented
targets, and scores both against the documented teachers (:mod:`distill_kit.lineage.documented`).
:func:`attribute_teachers` is that step in one call; :func:`teacher_summary` is what the run records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
from distill_kit.lineage.significance import ALPHA, LineageTestResult, TooFewUnrelated, lineage_test
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
    test: LineageTestResult | None = None  # the lineage test (what a verdict may name); None: see test_note
    test_note: str | None = None  # one line: why there is no lineage test
    documented_lines: dict[str, str] = field(default_factory=dict)  # student/variant -> its teacher's line


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
    alpha: float = ALPHA, reference_null: bool = True,
) -> TeacherFindings:
    """Attribute ``students`` to ``candidates`` both ways on ``features``' prompt split.

    ``signals`` empty = the attribution default (paired, plus embedding when ``features`` has embeddings);
    ``prompts`` = the vote's prompt pool. With ``labels``, confidences are calibrated on the other documented
    targets once :data:`CALIBRATE_FROM` are documented, and the metrics say how both did. The lineage test
    (:func:`distill_kit.lineage.significance.lineage_test`, level ``alpha``) runs under the vote's method with its
    null from the documented unrelated pairs among ``frame``'s models (``reference_null``: the references too,
    each held out of the classifier in turn); a folder with too few of them gets ``test_note`` instead."""
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
    test, note = None, None
    try:
        test = lineage_test(frame, students, {c: (labels.lines.get(c, c) if labels else c) for c in candidates},
                            labels or NO_LABELS, method=vote.method, alpha=alpha, prompts=prompts, seed=seed,
                            reference_null=reference_null)
    except TooFewUnrelated as err:
        note = str(err)
    return TeacherFindings(attribution, vote, table, vote_table, metrics, test, note,
                           labels.teacher_lines if labels else {})


NO_LABELS = LineageLabels([], [], [], [], {}, {}, {})
"""No documented lineage (a store of live answers): every lineage test says it has too few unrelated pairs."""


def teacher_summary(findings: TeacherFindings | None) -> dict[str, Any]:
    """The attribution and lineage-test keys of notebook 05's summary (the same keys, empty values, when nothing
    was attributed)."""
    out: dict[str, Any] = {"attribution": [], "attribution_temperature": None, "calibration": {},
                           "attribution_metrics": {}, "vote_attribution": [], "vote_method": None, "lineage_test": [],
                           "lineage_test_alpha": None, "lineage_test_method": None, "lineage_test_null_models": [],
                           "lineage_test_note": None}
    if findings is None:
        return out
    a = findings.attribution
    out.update({"attribution": a.table().to_dicts(), "attribution_temperature": a.temperature,
                "calibration": a.calibration, "attribution_metrics": findings.metrics,
                "vote_attribution": findings.vote_table.to_dicts(), "vote_method": findings.vote.method.name,
                "lineage_test_note": findings.test_note})
    t = findings.test
    if t is not None:
        out.update({"lineage_test": [{"target": k, **v} for k, v in t.per_target(findings.documented_lines).items()],
                    "lineage_test_alpha": t.alpha, "lineage_test_method": t.method,
                    "lineage_test_null_models": t.null_models})
    return out
