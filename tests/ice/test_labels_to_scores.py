"""Labels clicked in notebook 03's answer browser reach the prediction-powered correction."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from distill_kit.ice import calibration as heldout
from distill_kit.ice import labels as L


def _frame() -> pl.DataFrame:
    return pl.DataFrame({"model": ["m", "m", "m", "n"], "row": [0, 1, 2, 0],
                         "prompt": ["p0", "p1", "p2", "p0"], "response": ["a0", "a1", "a2", "b0"]})


def test_browser_labels_are_keyed_by_the_answers_row(tmp_path: Path) -> None:
    frame = _frame()
    with L.LabelStore(tmp_path / "labels.sqlite", labeller="t") as store:
        store.label("m", L.answer_key("m", "p1", "a1"), loose=True, strict=True)
        store.label("m", L.answer_key("m", "p2", "a2"), loose=False)
        store.label("n", L.answer_key("n", "p0", "other answer"), loose=True)  # not an answer in the frame
    got = heldout.labels_for_rows(frame, L.read_labels(tmp_path / "labels.sqlite")).sort("key")
    assert got.to_dicts() == [{"model": "m", "key": "1", "loose_label": True, "strict_label": True},
                              {"model": "m", "key": "2", "loose_label": False, "strict_label": False}]


def test_row_keyed_labels_pass_through_and_unknown_rows_drop() -> None:
    user = pl.DataFrame({"model": ["m", "m"], "key": ["0", "7"], "loose_label": [True, True],
                         "strict_label": [False, False]})
    got = heldout.labels_for_rows(_frame(), user)
    assert got["key"].to_list() == ["0"]
