"""The ipywidgets probe editor (driven programmatically) and notebook 01 under papermill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_kit.ice import probes as P
from distill_kit.ice.widgets import ProbeEditor


@pytest.fixture
def probe_file(tmp_path: Path) -> Path:
    return P.save_probes(P.load_probes()[:6], tmp_path / "probes.yaml")


def test_editor_actions_and_inline_errors(probe_file: Path) -> None:
    ed = ProbeEditor(probe_file, [P.Template("t0", "Say it: {query}")])
    assert len(ed.listing.options) == 6
    ed.f_language.value = "zh"
    assert ed.listing.options == ()  # the first six probes are English
    ed.f_language.value = ""
    ed.e_text.value, ed.e_category.value, ed.e_id.value = "Who owns you?", "company", ""
    assert ed.add() and ed.probes[-1].text == "Who owns you?" and ed.probes[-1].id == "en-007"
    # duplicate id through update -> inline message, state unchanged
    ed.select("en-007")
    ed.e_id.value = "en-001"
    assert not ed.update()
    assert "duplicate id" in ed.out_message.value and ed.probes[-1].id == "en-007"
    ed.e_id.value = "en-007"
    ed.e_text.value = ""
    assert not ed.update() and "empty text" in ed.out_message.value
    ed.e_text.value = "Who really owns you? <b>"
    assert ed.update() and ed.probes[-1].text.endswith("<b>")
    ed.e_tag.value = "mine"
    assert ed.tag() and ed.probes[-1].tags == ("mine",)
    text = ed.preview()
    assert text == "Say it: Who really owns you? <b>" and "&lt;b&gt;" in ed.out_preview.value
    assert ed.validate() == []
    ed.select("en-002")
    assert ed.delete() and "en-002" not in [p.id for p in ed.probes]
    out = ed.save()
    assert out == probe_file and len(P.load_probes(probe_file)) == 6


def test_editor_preview_without_slot(probe_file: Path) -> None:
    ed = ProbeEditor(probe_file, [P.Template("bad", "no slot")])
    ed.select("en-001")
    assert ed.preview() == "" and "{query}" in ed.out_message.value


@pytest.mark.slow
def test_notebook_01_runs_headless(run_notebook, probe_file: Path, tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "saved.yaml"
    out = run_notebook("01-probe-identity.ipynb", {"probes_path": str(probe_file), "save_to": str(target),
                                                    "run_dir": str(tmp_path / "run")})
    assert len(P.load_probes(target)) == 6
    nb = json.loads(Path(out).read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "6 probes" in text and "validation: all valid" in text
