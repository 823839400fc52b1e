"""ipywidgets probe editor: wiring only. Every action calls a function of ``distill_kit.probes``.

Each button handler is also a plain method (``add``, ``update``, ``delete``, ``tag``, ``validate``,
``save``, ``preview``) so the editor can be driven and tested without a browser.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import ipywidgets as W

from distill_kit import probes as P


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

    def save(self, path: str | Path | None = None) -> Path | None:
        try:
            out = P.save_probes(self.probes, path or self.path)
        except ValueError as exc:
            self._say(str(exc), ok=False)
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

    def widget(self) -> W.Widget:
        b = self.buttons
        return W.VBox([
            W.HBox([self.f_language, self.f_category, self.f_text]), self.listing,
            W.HBox([self.e_id, self.e_language, self.e_category]), self.e_text,
            W.HBox([b["add"], b["update"], b["delete"], self.e_tag, b["tag"]]),
            W.HBox([b["validate"], b["save"], self.template, b["preview"]]),
            self.out_message, self.out_preview])
