"""The notebook 04 widget for browsing RSE pairs side by side (views from :mod:`distill_kit.rse.browse`); in batch
runs it shows the same content as a static table."""

from __future__ import annotations

import html

import ipywidgets as W
import polars as pl

from distill_kit.display import show as _show
from distill_kit.rse.browse import (
    pair_html,
    pair_models,
    pair_prompts,
    pair_view,
    pairs_table_html,
)


class PairExplorer:
    """Notebook 04: pick a test model, a reference and a prompt; see both answers and the aspect scores."""

    def __init__(self, aligned: pl.DataFrame, scores: pl.DataFrame, test: str | None = None,
                 reference: str | None = None) -> None:
        self.aligned, self.scores = aligned, scores
        models = pair_models(aligned)
        if len(models) < 1:
            raise ValueError("no aligned answers to explore")
        reference = reference if reference in models else models[0]
        test = test if test in models else next((m for m in models if m != reference), reference)
        self.test = W.Dropdown(options=models, value=test, description="test model")
        self.reference = W.Dropdown(options=models, value=reference, description="reference")
        self.prompt = W.Dropdown(options=[], description="prompt", layout=W.Layout(width="95%"))
        self.view = W.HTML()
        self._busy = False
        self.test.observe(lambda _c: self._models_changed(), names="value")
        self.reference.observe(lambda _c: self._models_changed(), names="value")
        self.prompt.observe(lambda _c: self._render(), names="value")
        self._models_changed()

    def _models_changed(self) -> None:
        self._busy = True
        try:
            options = pair_prompts(self.aligned, self.test.value, self.reference.value)
            self.prompt.options = options
            self.prompt.value = options[0][1] if options else None
        finally:
            self._busy = False
        self._render()

    def _render(self) -> None:
        if self._busy:
            return
        if self.prompt.value is None:
            self.view.value = "<i>these two models answered no prompt in common</i>"
            return
        try:
            view = pair_view(self.aligned, self.scores, self.test.value, self.reference.value, self.prompt.value)
        except ValueError as exc:
            self.view.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return
        self.view.value = pair_html(view)

    def pick(self, test: str | None = None, reference: str | None = None, prompt_id: str | None = None) -> str:
        """Choose any of test model, reference, prompt; returns the HTML shown."""
        if test is not None:
            self.test.value = test
        if reference is not None:
            self.reference.value = reference
        if prompt_id is not None:
            self.prompt.value = prompt_id
        return self.view.value

    def static_html(self, limit: int = 3) -> str:
        return "<h4>Side by side</h4>" + pairs_table_html(self.aligned, self.scores, self.test.value,
                                                            self.reference.value, limit)

    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.test, self.reference]), self.prompt, self.view], layout=W.Layout(width="100%"))

    def show(self, limit: int = 3) -> None:
        _show(self.widget(), self.static_html(limit), "pair explorer")
