"""ipywidgets for the ICE notebooks: wiring only. Every action calls a function of ``distill_kit.ice.probes``,
``distill_kit.ice.browse`` or ``distill_kit.ice.labels``.

- ``ProbeEditor`` (01): browse, add, edit, delete, tag, validate, preview and save identity probes;
- ``AnswerBrowser`` (03): judged answers filtered by model / template / language / verdict, with label buttons.

(04's ``PairExplorer`` is :mod:`distill_kit.rse.widgets`, 05's ``TeacherPicker`` :mod:`distill_kit.lineage.widgets`.)
Each button handler is also a plain method so every widget can be driven and tested without a browser, and
each has ``show()``: the live widget in JupyterLab, a static table in batch (papermill/HTML) runs.
"""

from __future__ import annotations

import html
import sqlite3
from pathlib import Path
from typing import Sequence

import ipywidgets as W
import polars as pl

from distill_kit.display import show as _show
from distill_kit.html import html_table
from distill_kit.ice import browse as X
from distill_kit.ice import probes as P
from distill_kit.ice.labels import LabelStore


class ProbeEditor:
    """Browse/filter, add, edit, delete, tag, validate, preview-in-template and save a probe file."""

    def __init__(self, path: str | Path | None = None, templates: Sequence[P.Template] = ()) -> None:
        self.path = Path(path) if path else P.PROBES_FILE
        self.probes: list[P.Probe] = P.load_probes(self.path)
        self.templates = list(templates)
        self.message = ""
        self.current_id: str | None = None  # the probe loaded in the form (its id before any edit)
        self._refreshing = False
        self.f_language = W.Dropdown(options=["", *P.LANGUAGES], value="", description="language")
        self.f_category = W.Dropdown(options=["", *P.CATEGORIES], value="", description="category")
        self.f_text = W.Text(value="", description="search")
        self.listing = W.Select(options=[], rows=12, layout=W.Layout(width="100%"))
        self.e_id = W.Text(description="id")
        self.e_language = W.Dropdown(options=list(P.LANGUAGES), description="language")
        self.e_category = W.Dropdown(options=list(P.CATEGORIES), description="category")
        self.e_text = W.Textarea(description="text", layout=W.Layout(width="100%"))
        self.e_tag = W.Text(description="tag")
        self.template = W.Dropdown(options=[(t.id, i) for i, t in enumerate(self.templates)], description="template")
        self.out_message = W.HTML()
        self.out_preview = W.HTML()
        buttons = {"add": self.add, "update": self.update, "delete": self.delete, "tag": self.tag,
                   "validate": self.validate, "save": self.save, "preview": self.preview}
        self.buttons = {name: W.Button(description=name) for name in buttons}
        for name, fn in buttons.items():
            self.buttons[name].on_click(lambda _b, fn=fn: fn())
        for w in (self.f_language, self.f_category, self.f_text):
            w.observe(lambda _c: self.refresh(), names="value")
        self.listing.observe(lambda _c: self.load_selected(), names="value")
        self.refresh()

    # -- state -> widgets
    def visible(self) -> list[P.Probe]:
        return P.filter_probes(self.probes, self.f_language.value or None, self.f_category.value or None,
                               text=self.f_text.value or None)

    def refresh(self) -> None:
        self._refreshing = True
        try:
            options = [(f"{p.id} [{p.category}] {p.text[:70]}", p.id) for p in self.visible()]
            self.listing.options = options
            self.listing.value = self.current_id if self.current_id in [v for _, v in options] else None
        finally:
            self._refreshing = False
        self._say(self.message)

    def _say(self, message: str, ok: bool = True) -> None:
        self.message = message
        colour = "green" if ok else "#b00"
        self.out_message.value = f'<span style="color:{colour}">{html.escape(message)}</span>' if message else ""

    def select(self, probe_id: str) -> None:
        self.load_selected(probe_id)
        self.refresh()

    def load_selected(self, probe_id: str | None = None) -> None:
        if self._refreshing:
            return
        pid = probe_id or self.listing.value
        match = [p for p in self.probes if p.id == pid]
        if match:
            p = match[0]
            self.current_id = p.id
            self.e_id.value, self.e_language.value, self.e_category.value, self.e_text.value = (
                p.id, p.language, p.category, p.text)

    # -- actions
    def _apply(self, new: list[P.Probe], done: str) -> bool:
        problems = P.validate_probes(new)
        if problems:
            self._say("; ".join(problems[:3]), ok=False)
            return False
        self.probes = new
        self._say(done)
        self.refresh()
        return True

    def add(self) -> bool:
        text = self.e_text.value
        try:
            new = P.add_probe(self.probes, text, category=self.e_category.value, language=None,
                              id=None if not self.e_id.value or self.e_id.value in {p.id for p in self.probes}
                              else self.e_id.value)
        except ValueError as exc:
            self._say(str(exc), ok=False)
            return False
        ok = self._apply(new, f"added {new[-1].id}")
        if ok:
            self.current_id = self.e_id.value = new[-1].id
            self.refresh()
        return ok

    def update(self) -> bool:
        pid = self.current_id or self.e_id.value
        try:
            new = P.edit_probe(self.probes, pid, text=self.e_text.value, language=self.e_language.value,
                               category=self.e_category.value, id=self.e_id.value)
        except ValueError as exc:
            self._say(str(exc), ok=False)
            return False
        ok = self._apply(new, f"updated {self.e_id.value}")
        if ok:
            self.current_id = self.e_id.value
            self.refresh()
        return ok

    def delete(self) -> bool:
        pid = self.current_id or self.e_id.value
        try:
            ok = self._apply(P.delete_probe(self.probes, pid), f"deleted {pid}")
            if ok:
                self.current_id = None
                self.refresh()
            return ok
        except ValueError as exc:
            self._say(str(exc), ok=False)
            return False

    def tag(self) -> bool:
        pid = self.current_id or self.e_id.value
        try:
            return self._apply(P.tag_probe(self.probes, pid, self.e_tag.value), f"tagged {pid}")
        except ValueError as exc:
            self._say(str(exc), ok=False)
            return False

    def validate(self) -> list[str]:
        problems = P.validate_probes(self.probes)
        self._say("; ".join(problems) if problems else f"{len(self.probes)} probes, all valid", ok=not problems)
        return problems

    def save(self, path: str | Path | None = None, raise_errors: bool = False) -> Path | None:
        """Save the probes (refused, with the reason shown, when they are invalid; the file is untouched).

        ``raise_errors`` re-raises the refusal, so a scripted save (notebook 01's ``save_to``) fails its
        step instead of reporting success."""
        try:
            out = P.save_probes(self.probes, path or self.path)
        except ValueError as exc:
            self._say(str(exc), ok=False)
            if raise_errors:
                raise
            return None
        self._say(f"saved {len(self.probes)} probes to {out}")
        return out

    def preview(self) -> str:
        if not self.templates:
            self._say("no templates loaded", ok=False)
            return ""
        probe = P.Probe(self.e_id.value or "preview", self.e_language.value, self.e_category.value, self.e_text.value)
        try:
            text = P.preview(probe, self.templates[self.template.value or 0])
        except ValueError as exc:
            self._say(str(exc), ok=False)
            return ""
        self.out_preview.value = f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre>"
        return text

    def static_html(self, limit: int = 200) -> str:
        """The probe set as a table (what batch runs show instead of the editor)."""
        frame = pl.DataFrame([{**p.to_dict(), "tags": ",".join(p.tags)} for p in self.probes],
                             schema={"id": pl.String, "language": pl.String, "category": pl.String,
                                     "text": pl.String, "tags": pl.String})
        return "<h4>Identity probes</h4>" + html_table(frame, frame.columns, limit, 300, "probes")

    def show(self) -> None:
        _show(self.widget(), self.static_html(), "probe editor")

    def widget(self) -> W.Widget:
        b = self.buttons
        return W.VBox([
            W.HBox([self.f_language, self.f_category, self.f_text]), self.listing,
            W.HBox([self.e_id, self.e_language, self.e_category]), self.e_text,
            W.HBox([b["add"], b["update"], b["delete"], self.e_tag, b["tag"]]),
            W.HBox([b["validate"], b["save"], self.template, b["preview"]]),
            self.out_message, self.out_preview])


def _options(values: Sequence[str], any_label: str = "(any)") -> list[tuple[str, str]]:
    return [(any_label, ""), *[(v, v) for v in values]]


class AnswerBrowser:
    """Notebook 03: browse judged answers and label them with clicks.

    Filters (model, template, language, verdict) narrow the list; selecting an answer shows its prompt,
    the answer, both judge verdicts (and GPT-4o-mini's labels where published) and the judge's reason.
    With a ``LabelStore`` the buttons record the analyst's loose ("contradicts identity" / "consistent")
    and strict ("claims OpenAI/Anthropic" yes / no) labels, each click stored at once.
    """

    LIST_LIMIT = 300  # the list shows this many matches; narrow the filters to see others

    def __init__(self, answers: pl.DataFrame, labels: LabelStore | None = None) -> None:
        self.answers = answers
        self.labels = labels
        self.current_key: str | None = None
        opts = X.answer_options(answers)
        self.f_model = W.Dropdown(options=_options(opts.get("model", [])), value="", description="model")
        self.f_template = W.Dropdown(options=_options(opts.get("template", [])), value="", description="template")
        self.f_language = W.Dropdown(options=_options(opts.get("language", [])), value="", description="language")
        self.f_verdict = W.Dropdown(options=[(v, k) for k, v in X.VERDICTS.items()], value="all", description="verdict")
        self.count = W.HTML()
        self.listing = W.Select(options=[], rows=10, layout=W.Layout(width="100%"))
        self.detail = W.HTML()
        self.message = W.HTML()
        self.buttons = {
            "contradicts": W.Button(description="contradicts identity", button_style="danger"),
            "consistent": W.Button(description="consistent", button_style="success"),
            "strict_yes": W.Button(description="claims OpenAI/Anthropic: yes"),
            "strict_no": W.Button(description="claims OpenAI/Anthropic: no"),
        }
        for b in self.buttons.values():
            b.layout = W.Layout(width="auto")
            b.disabled = labels is None
        self.buttons["contradicts"].on_click(lambda _b: self.label_loose(True))
        self.buttons["consistent"].on_click(lambda _b: self.label_loose(False))
        self.buttons["strict_yes"].on_click(lambda _b: self.label_strict(True))
        self.buttons["strict_no"].on_click(lambda _b: self.label_strict(False))
        for w in (self.f_model, self.f_template, self.f_language, self.f_verdict):
            w.observe(lambda _c: self.refresh(), names="value")
        self.listing.observe(self._on_pick, names="value")
        if labels is None:
            self._say("labels are not stored here (no run directory or store)", ok=False)
        self.refresh()

    def _say(self, text: str, ok: bool = True) -> None:
        colour = "green" if ok else "#b00"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>' if text else ""

    def _on_pick(self, change: dict) -> None:
        if not change["new"]:
            return
        try:
            self.select(change["new"])
        except Exception as exc:  # a callback error would vanish into the kernel log: show it here
            self._say(f"error: {type(exc).__name__}: {exc}", ok=False)

    def visible(self) -> pl.DataFrame:
        return X.filter_answers(self.answers, self.f_model.value or None, self.f_template.value or None,
                                self.f_language.value or None, self.f_verdict.value)

    def set_filter(self, model: str = "", template: str = "", language: str = "", verdict: str = "all") -> int:
        """Set every filter at once; returns how many answers match."""
        self.f_model.value, self.f_template.value, self.f_language.value = model, template, language
        self.f_verdict.value = verdict
        return self.visible().height

    def refresh(self) -> None:
        rows = self.visible()
        shown = rows.head(self.LIST_LIMIT)
        options = [(f"{r['model']} | {r['language'] or '?'} | {(r['query'] or '')[:60]} | "
                    f"{' '.join((r['answer'] or '').split())[:60]}", r["key"]) for r in shown.iter_rows(named=True)]
        self.count.value = (f"<b>{rows.height}</b> of {self.answers.height} answers match"
                            + (f" (first {self.LIST_LIMIT} listed)" if rows.height > self.LIST_LIMIT else ""))
        keys = [k for _, k in options]
        self.listing.options = options
        if self.current_key in keys:
            self.listing.value = self.current_key
        elif keys:
            self.listing.value = keys[0]
        else:
            self.current_key = None
            self.detail.value = "<i>no answer matches these filters</i>"

    def row(self, key: str | None = None) -> dict | None:
        key = key or self.current_key
        match = self.answers.filter(pl.col("key") == key) if key else self.answers.clear()
        return match.row(0, named=True) if match.height else None

    def select(self, key: str) -> str:
        """Show one answer (by its key); returns the HTML shown."""
        row = self.row(key)
        if row is None:
            raise ValueError(f"no answer with key {key!r}")
        self.current_key = key
        label = self.labels.current(row["model"], key) if self.labels else None
        self.detail.value = X.answer_html(row, label)
        return self.detail.value

    def _label(self, **change: bool) -> dict | None:
        row = self.row()
        if row is None or self.labels is None:
            self._say("select an answer first" if row is None else "labels are not stored here", ok=False)
            return None
        try:
            saved = self.labels.label(row["model"], row["key"], **change)
        except (OSError, sqlite3.Error) as exc:  # a click's failure must show, not vanish into the kernel log
            self._say(f"label not saved: {type(exc).__name__}: {exc}", ok=False)
            return None
        self.select(row["key"])
        self._say(f"saved to {self.labels.path.name}: {X.label_text(saved)}")
        return saved

    def label_loose(self, contradicts: bool) -> dict | None:
        return self._label(loose=contradicts)

    def label_strict(self, claims: bool) -> dict | None:
        return self._label(strict=claims)

    def static_html(self, limit: int = 20) -> str:
        return "<h4>Judged answers</h4>" + X.answers_table_html(self.answers, limit=limit)

    def widget(self) -> W.Widget:
        b = self.buttons
        return W.VBox([W.HBox([self.f_model, self.f_template]), W.HBox([self.f_language, self.f_verdict]),
                       self.count, self.listing, self.detail,
                       W.HBox([b["contradicts"], b["consistent"], b["strict_yes"], b["strict_no"]]), self.message],
                      layout=W.Layout(width="100%"))

    def show(self, limit: int = 20) -> None:
        _show(self.widget(), self.static_html(limit), "answer browser")


