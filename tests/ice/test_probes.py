"""Probe set and editor functions (the widget notebook only wires these)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_kit.ice import probes as P


def test_project_probe_set_is_valid_and_bilingual() -> None:
    ps = P.load_probes()
    assert len(ps) >= 50
    assert P.validate_probes(ps) == []
    langs = {p.language for p in ps}
    assert langs == {"en", "zh"}
    cats = {p.category for p in ps}
    assert {"creator", "name", "company", "country", "architecture", "training_data"} <= cats
    assert all(P.detect_language(p.text) == p.language for p in ps)


def test_add_edit_tag_delete_roundtrip(tmp_path: Path) -> None:
    ps = P.load_probes()
    ps2 = P.add_probe(ps, "你的模型是谁微调的？", category="training_data")
    new = ps2[-1]
    assert new.language == "zh" and new.id == P.next_id(ps, "zh") and len(ps2) == len(ps) + 1
    ps3 = P.edit_probe(ps2, new.id, text="Who fine-tuned you?", language="en")
    assert ps3[-1].text == "Who fine-tuned you?" and ps3[-1].language == "en"
    ps4 = P.tag_probe(ps3, new.id, "hard")
    ps4 = P.tag_probe(ps4, new.id, "hard")  # idempotent
    assert ps4[-1].tags == ("hard",)
    assert P.filter_probes(ps4, tag="hard") == [ps4[-1]]
    assert P.tag_probe(ps4, new.id, "hard", remove=True)[-1].tags == ()
    out = P.save_probes(ps4, tmp_path / "p.yaml")
    back = P.load_probes(out)
    assert back == ps4
    ps5 = P.delete_probe(back, new.id)
    assert [p.id for p in ps5] == [p.id for p in ps]
    with pytest.raises(ValueError, match="no probe"):
        P.delete_probe(ps5, new.id)
    csv_path = P.save_probes(ps4, tmp_path / "p.csv")
    assert P.load_probes(csv_path) == ps4


def test_validation_messages() -> None:
    ps = P.load_probes()[:3]
    dup = [*ps, P.Probe(ps[0].id, "en", "name", "What are you?")]
    assert any("duplicate id" in m for m in P.validate_probes(dup))
    empty = P.edit_probe(ps, ps[1].id, text="  ")
    assert any("empty text" in m for m in P.validate_probes(empty))
    bad = P.edit_probe(ps, ps[2].id, category="nonsense")
    assert any("category" in m for m in P.validate_probes(bad))
    with pytest.raises(ValueError, match="refusing to save"):
        P.save_probes(dup, "/tmp/never-written.yaml")
    with pytest.raises(ValueError, match="unknown probe field"):
        P.edit_probe(ps, ps[0].id, colour="red")


def test_templates_and_preview(tmp_path: Path, data_dir: Path) -> None:
    seeds = P.seed_templates()
    assert len(seeds) >= 50 and all(P.QUERY_SLOT in t.text for t in seeds)
    probe = P.load_probes()[0]
    text = P.preview(probe, seeds[0])
    assert probe.text in text and P.QUERY_SLOT not in text
    assert P.preview(probe, seeds[0], width=20).endswith("…") and len(P.preview(probe, seeds[0], width=20)) == 20
    assert P.validate_template("no slot here") == ["template has no {query} slot"]
    with pytest.raises(ValueError, match="no \\{query\\} slot"):
        P.fill("no slot", probe)
    # braces other than {query} survive filling
    assert P.fill("{json: 1} {query}", "Q") == "{json: 1} Q"
    user = tmp_path / "mine.txt"
    user.write_text("Pretend you are X. {query}\n---\nAnswer as Y: {query}\n", encoding="utf-8")
    allt = P.load_templates(user)
    assert len(allt) == len(seeds) + 2 and allt[-1].source == "user:mine.txt"
    bad = tmp_path / "bad.json"
    bad.write_text('["no slot"]', encoding="utf-8")
    with pytest.raises(ValueError, match="no \\{query\\} slot"):
        P.load_user_templates(bad)


@pytest.mark.parametrize("text,cat", [
    ("Which team or company developed you?", "creator"),
    ("您的开发团队位于哪个国家或地区？", "country"),
    ("What data were you trained on?", "training_data"),
    ("Does your development team collaborate with other research institutions or universities?", "collaboration"),
    ("您的技术是否依赖于任何其他开源项目或行业标准？", "architecture"),
])
def test_categorize_query(text: str, cat: str) -> None:
    assert P.categorize_query(text) == cat


def test_bare_template_asks_the_question_as_it_is() -> None:
    from distill_kit.ice.probes import BARE_TEMPLATE, Probe, fill, sample_pairs

    probe = Probe("en-x", "en", "creator", "Who made you?")
    assert fill(BARE_TEMPLATE, probe) == "Who made you?"
    assert sample_pairs([probe], [BARE_TEMPLATE], 0) == [(probe, BARE_TEMPLATE)]
