"""A run's teacher attribution in one call: both methods, documented columns, metrics, the summary keys."""

from __future__ import annotations

import polars as pl
import pytest

from distill_kit.lineage import teachers
from distill_kit.lineage.attribution import build_features
from distill_kit.lineage.documented import lineage_labels
from distill_kit.lineage.prompts import common_prompts, split_prompts
from tests.helpers.lineage_habits import HABITS, LINES, habits_frame

ROWS = pl.DataFrame({
    "model": [*HABITS, "student", "control"],
    "role": ["reference"] * len(HABITS) + ["student", "control"],
    "line": [LINES[m] for m in HABITS] + ["", ""],
    "teacher": [""] * len(HABITS) + ["teacher-a", ""],
})


@pytest.fixture(scope="module")
def setup() -> tuple[pl.DataFrame, object, list[str]]:
    frame = habits_frame(HABITS["teacher-a"], 40)
    pool = common_prompts(frame)
    fit, score = split_prompts(pool, 0.5, 0)
    return frame, build_features(frame, [*HABITS, "student", "control"], fit, score), pool


def test_choose_targets_defaults_to_the_documented_ones() -> None:
    labels = lineage_labels(rows=ROWS)
    assert teachers.choose_targets([], [], labels, ["student", "ref-b", "teacher-a"]) == (["student"], ["teacher-a", "ref-b"])
    assert teachers.choose_targets(["x"], ["y", "z"], labels, []) == (["x"], ["y", "z"])
    assert teachers.choose_targets([], [], None, ["student"]) == ([], [])


def test_attribute_teachers_with_labels(setup: tuple) -> None:
    frame, feats, pool = setup
    labels = lineage_labels(rows=ROWS)
    found = teachers.attribute_teachers(frame, labels.targets, labels.references, labels, features=feats,
                                        prompts=pool)
    assert found.table.columns[-2:] == ["role", "documented_teacher"]
    assert dict(zip(found.table["student"], found.table["documented_teacher"])) == {"student": "teacher-a", "control": ""}
    assert found.vote_table["documented_line"].to_list() == ["A", ""]
    assert found.vote.rankings["student"].lines[0] == "A" and found.metrics["vote_top1_line"] == 1.0
    assert found.metrics["top1"] == 1.0 and found.metrics["n"] == 1.0
    assert found.metrics["auroc_students_vs_controls"] == 1.0  # the student is closer to a reference
    assert found.attribution.calibration["sibling_n"] == 6  # one labelled student: sibling-task calibration kept
    summary = teachers.teacher_summary(found)
    assert summary["attribution"] == found.attribution.table().to_dicts()  # without the display-only columns
    assert summary["vote_method"] == found.vote.method.name and summary["attribution_metrics"] is found.metrics
    assert summary["vote_attribution"][0]["documented_line"] == "A"
    assert set(summary) == set(teachers.teacher_summary(None))  # the same keys whether or not anything ran
    # the lineage test: documented models build the null (the student too, for the lines not its teacher's)
    assert found.test is not None and found.test_note is None
    row = next(r for r in summary["lineage_test"] if r["target"] == "student")
    assert row["line"] == "A" and row["documented_line"] == "A" and 0 <= row["p"] <= row["p_adj"] <= 1
    assert summary["lineage_test_alpha"] == 0.05 and set(summary["lineage_test_null_models"]) == {*HABITS, "control", "student"}


def test_attribute_teachers_without_labels(setup: tuple) -> None:
    frame, feats, pool = setup
    found = teachers.attribute_teachers(frame, ["student"], list(HABITS), None, features=feats, signals=["paired"],
                                        prompts=pool)
    assert found.metrics == {} and "role" not in found.table.columns
    assert found.vote.calibrated_on.startswith("none") and found.attribution.temperature == 1.0
    assert found.table["top1"][0] == "teacher-a"
    # nothing documents an unrelated pair here: no test, one line saying so, and no classifier fitted for it
    assert found.test is None and found.test_note.startswith("lineage test: too few documented unrelated pairs")
    with pytest.raises(ValueError, match="embedding"):
        teachers.attribute_teachers(frame, ["student"], list(HABITS), None, features=feats, signals=["embedding"])


def test_teacher_summary_when_nothing_was_attributed() -> None:
    empty = teachers.teacher_summary(None)
    assert empty["attribution"] == [] and empty["vote_method"] is None and empty["attribution_metrics"] == {}
    assert set(empty) == {
        "attribution", "attribution_temperature", "calibration", "attribution_metrics", "vote_attribution",
        "vote_method", "lineage_test", "lineage_test_alpha", "lineage_test_method", "lineage_test_null_models",
        "lineage_test_note"}
