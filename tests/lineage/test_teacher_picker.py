"""Notebook 05's teacher picker (top candidate teachers with confidence and example pairs), driven without a browser."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distill_kit.lineage.attribution import Attribution
from distill_kit.lineage.browse import example_pairs, teacher_candidates
from distill_kit.lineage.widgets import TeacherPicker

XSS = "<script>alert(1)</script>"


def attribution() -> Attribution:
    combined = np.array([[2.0, 1.0, 0.0], [0.0, 0.5, 1.5]])
    probs = np.exp(combined) / np.exp(combined).sum(axis=1, keepdims=True)
    return Attribution(students=["s1", "s2"], candidates=["t1", "t2", "t3"], signals={"paired": combined},
                       combined=combined, probabilities=probs, temperature=1.0)


def responses() -> pl.DataFrame:
    rows = [{"model": m, "prompt": f"q{i}", "text": f"{m} on q{i} {XSS}"} for m in ("s1", "s2", "t1", "t2", "t3")
            for i in range(5)]
    return pl.DataFrame(rows)


def test_teacher_candidates_and_examples() -> None:
    c = teacher_candidates(attribution(), "s2", top_k=2)
    assert c["candidate"].to_list() == ["t3", "t2"] and c["rank"].to_list() == [1, 2]
    assert c["confidence"][0] == pytest.approx(np.exp(1.5) / (1 + np.exp(0.5) + np.exp(1.5)))
    ex = example_pairs(responses(), "s1", "t1", prompts=["q1", "q3", "q4"], n=2, seed=0)
    assert ex.height == 2 and set(ex["prompt"]) <= {"q1", "q3", "q4"}
    assert ex.equals(example_pairs(responses(), "s1", "t1", prompts=["q1", "q3", "q4"], n=2, seed=0))
    assert ex["student_answer"][0].startswith("s1 on") and ex["candidate_answer"][0].startswith("t1 on")
    with pytest.raises(ValueError, match="not attributed"):
        teacher_candidates(attribution(), "nobody")


def test_teacher_picker_shows_candidates_with_confidence_and_pairs() -> None:
    tp = TeacherPicker(attribution(), responses(), truth={"s1": "t1"}, top_k=2, n_examples=1)
    h = tp.view.value
    assert "student: <b>s1</b>" in h and "documented teacher: <b>t1</b>" in h and h.index("t1") < h.index("t2")
    assert "1 example answer pair" in h and XSS not in h
    h2 = tp.pick("s2")
    assert "t3" in h2 and "0.6" in h2  # s2's top candidate and its confidence (0.63)
    assert "t1 (0.67)" in tp.static_html()
    with pytest.raises(ValueError):
        tp.pick("x")
