"""Who wrote this? The held-out author classifier confuses a student with the teacher it copies."""

from __future__ import annotations

import polars as pl

from distill_kit.lineage.authorship import who_wrote_this


def test_who_wrote_this_confuses_the_student_with_its_teacher(echo_frame: pl.DataFrame) -> None:
    models = ["teacher-a", "ref-b", "ref-c", "student"]
    w = who_wrote_this(echo_frame, models, seed=0)
    assert w.confusion.sum() == w.n_test and w.confusion.shape == (4, 4) and w.chance == 0.25
    cm = w.confusion_frame()
    share = {(r["true"], r["predicted"]): r["share"] for r in cm.iter_rows(named=True)}
    assert share[("ref-b", "ref-b")] == 1.0 and share[("ref-c", "ref-c")] == 1.0
    # the student copies teacher-a, so those two are the pair most confused
    top = w.most_confused(1).row(0, named=True)
    assert {top["true"], top["predicted"]} == {"teacher-a", "student"}
    assert w.chance < w.accuracy < 1.0
