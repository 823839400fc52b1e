"""The notebook 05 widget for browsing a teacher attribution (views from :mod:`distill_kit.lineage.browse`)."""

from __future__ import annotations

from typing import Sequence

import ipywidgets as W
import polars as pl

from distill_kit.display import show as _show
from distill_kit.lineage.browse import (
    example_pairs,
    teacher_candidates,
    teacher_html,
    teachers_table_html,
)


class TeacherPicker:
    """Notebook 05: pick a student; see its top candidate teachers with confidence and example answer pairs."""

    def __init__(self, attribution, frame: pl.DataFrame, prompts: Sequence[str] | None = None,  # type: ignore[no-untyped-def]
                 truth: dict[str, str] | None = None, top_k: int = 3, n_examples: int = 2, seed: int = 0) -> None:
        if not attribution.students:
            raise ValueError("no students were attributed")
        self.attribution, self.frame, self.prompts = attribution, frame, prompts
        self.truth, self.top_k, self.n_examples, self.seed = dict(truth or {}), top_k, n_examples, seed
        self.student = W.Dropdown(options=list(attribution.students), value=attribution.students[0],
                                  description="student")
        self.view = W.HTML()
        self.student.observe(lambda _c: self._render(), names="value")
        self._render()

    def _render(self) -> None:
        s = self.student.value
        cands = teacher_candidates(self.attribution, s, self.top_k)
        examples = {c: example_pairs(self.frame, s, c, self.prompts, self.n_examples, self.seed)
                    for c in cands["candidate"]}
        self.view.value = teacher_html(s, cands, examples, self.truth.get(s))

    def pick(self, student: str) -> str:
        """Show one student; returns the HTML shown."""
        if student not in self.attribution.students:
            raise ValueError(f"{student!r} was not attributed; students: {', '.join(self.attribution.students)}")
        self.student.value = student
        return self.view.value

    def static_html(self) -> str:
        return "<h4>Candidate teachers</h4>" + teachers_table_html(self.attribution, self.top_k, self.truth)

    def widget(self) -> W.Widget:
        return W.VBox([self.student, self.view], layout=W.Layout(width="100%"))

    def show(self) -> None:
        _show(self.widget(), self.static_html(), "teacher picker")
