"""Style and structure features pinned on handmade answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distill_kit.text import stylometry as st

BULLETED = """Sure! Here are three tips for better sleep:

- Keep a regular schedule, even on weekends.
- Avoid caffeine after 2 pm.
- Keep your bedroom dark and cool.

I hope this helps!"""

PROSE = (
    "To sleep better, keep a regular schedule, even on weekends. Avoid caffeine after 2 pm. "
    "Keep your bedroom dark and cool."
)

STRUCTURED = """## Overview

Python is a programming language.

### Steps

1. Install Python.
2. Write a script:

```python
print("hello")
```

3. Run it with `python script.py`.

| tool | use |
|------|-----|
| pip  | packages |

> Note: use a virtual environment.

---

**Summary:**

In conclusion, Python is easy to start with."""


def test_blocks_of_a_bulleted_answer() -> None:
    blocks = st.parse_blocks(BULLETED)
    assert [b.kind for b in blocks] == ["paragraph", "bullet", "bullet", "bullet", "paragraph"]
    assert blocks[1].text == "Keep a regular schedule, even on weekends."
    assert st.skeleton(BULLETED) == "PUUUP"
    assert st.skeleton(PROSE) == "P"


def test_skeleton_of_every_block_kind() -> None:
    # heading, paragraph, heading, 2 numbered items, code, numbered, table, quote, rule, bold heading, paragraph
    assert st.skeleton(STRUCTURED) == "HPHOOCOTQRHP"
    kinds = [b.kind for b in st.parse_blocks(STRUCTURED)]
    assert kinds.count("code") == 1 and kinds.count("table") == 1
    heads = [b for b in st.parse_blocks(STRUCTURED) if b.kind == "heading"]
    assert [h.depth for h in heads] == [2, 3, 0]
    assert heads[-1].text == "Summary"


def test_nested_items_and_continuations() -> None:
    text = "1. First\n   - detail a\n   - detail b\n2. Second\n   continued here\n\nDone."
    blocks = st.parse_blocks(text)
    assert st.skeleton(blocks) == "OuuOP"
    assert blocks[3].text.endswith("continued here")
    assert st.collapse_runs("POOOOPUUP") == "POPUP"


def test_style_features_bulleted_vs_prose() -> None:
    b = st.style_profile(BULLETED)
    p = st.style_profile(PROSE)
    assert b["bullet_share"] == pytest.approx(3 / 5)
    assert p["bullet_share"] == 0.0
    assert b["log_paragraphs"] == pytest.approx(math.log1p(2))
    assert p["log_paragraphs"] == pytest.approx(math.log1p(1))
    assert b["opener"] == 1.0  # "Sure!" -> affirm
    assert p["opener"] == 0.0
    assert b["closer"] == 2.0  # "I hope this helps" -> wish
    assert p["closer"] == 0.0
    assert b["exclamation_per_sentence"] > 0 and p["exclamation_per_sentence"] == 0
    assert p["log_words"] == pytest.approx(math.log1p(len(st.words(PROSE))))
    assert len(st.words(PROSE)) == 21


def test_markdown_features() -> None:
    f = st.style_profile(STRUCTURED)
    assert f["has_code"] == 1.0 and f["has_table"] == 1.0
    assert f["heading_share"] == pytest.approx(3 / 12)
    assert f["ordered_share"] == pytest.approx(3 / 12)
    assert f["log_inline_code_per_100w"] > 0
    assert f["closer"] == 3.0  # "In conclusion" -> summary
    plain = st.style_profile(PROSE)
    assert plain["has_code"] == plain["has_table"] == plain["heading_share"] == 0.0


def test_hedges_and_person() -> None:
    f = st.style_profile("I think it may rain. You might want an umbrella, but it typically clears up.")
    words = len(st.words("I think it may rain. You might want an umbrella, but it typically clears up."))
    assert f["hedges_per_100w"] == pytest.approx(3 * 100 / words)
    assert f["first_person_per_100w"] == pytest.approx(100 / words)
    assert f["second_person_per_100w"] == pytest.approx(100 / words)


def test_sentences_drop_code_and_markup() -> None:
    ss = st.sentences(STRUCTURED)
    assert "Overview" in ss and "Summary" in ss
    assert not any("print(" in s for s in ss)
    assert "Install Python." in ss
    assert st.sentences("First one. Second one! Third? yes") == ["First one.", "Second one!", "Third? yes"]


def test_structure_similarity_pins() -> None:
    assert st.structure_similarity("PUUUP", "PUUUP") == 1.0
    # full: 1 - 4/5 = 0.2 ; outline "PUP" vs "P": 1 - 2/3
    assert st.structure_similarity("PUUUP", "P") == pytest.approx(0.5 * 0.2 + 0.5 * (1 / 3))
    # same outline, list one item longer: full 1 - 1/6, outline identical
    assert st.structure_similarity("POOOOP", "POOOOOP") == pytest.approx(0.5 * (6 / 7) + 0.5)
    assert st.text_structure_similarity(BULLETED, PROSE) < st.text_structure_similarity(BULLETED, BULLETED.replace("Sure! ", ""))
    assert st.levenshtein("kitten", "sitting") == 3
    assert st.structure_similarity("", "") == 1.0


def test_style_similarity_orders_answers() -> None:
    same_form = BULLETED.replace("sleep", "rest").replace("caffeine", "coffee")
    s_same = st.style_similarity(BULLETED, same_form)
    s_prose = st.style_similarity(BULLETED, PROSE)
    assert s_same > 0.9
    assert s_prose < s_same - 0.2
    assert st.style_similarity(PROSE, PROSE) == pytest.approx(1.0)
    # vectorised form agrees with the text form
    a = np.stack([st.style_vector(BULLETED)] * 2)
    b = np.stack([st.style_vector(PROSE), st.style_vector(same_form)])
    fa = np.stack([st.function_word_vector(BULLETED)] * 2)
    fb = np.stack([st.function_word_vector(PROSE), st.function_word_vector(same_form)])
    vec = st.style_similarity(a, b, fa, fb)
    assert vec == pytest.approx([s_prose, s_same])


def test_feature_similarity_rules() -> None:
    names = st.STYLE_FEATURE_NAMES
    a = np.zeros(len(names))
    b = np.zeros(len(names))
    k = names.index("bullet_share")
    b[k] = 0.25  # scale 0.5 -> 1 - 0.25/0.5
    c = names.index("opener")
    b[c] = 2.0  # categorical -> 0
    sims = st.feature_similarities(a, b)
    assert sims[k] == pytest.approx(0.5)
    assert sims[c] == 0.0
    assert sims.sum() == pytest.approx(len(names) - 1.5)
    assert st.cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert st.cosine(np.zeros(3), np.ones(3)) == 0.0
    with pytest.raises(ValueError):
        st.style_similarity(a, b)


def test_levenshtein_counts_edits() -> None:
    assert st.levenshtein("", "abc") == 3 and st.levenshtein("flaw", "lawn") == 2
    assert st.levenshtein("PUUP", "PUUP") == 0 and st.levenshtein("PUUP", "PUP") == 1 == st.levenshtein("PUP", "PUUP")
    assert st.levenshtein("kitten", "sitting") == 3



def test_surface_features_count_habits_per_100_words() -> None:
    rows = st.surface_features([BULLETED, PROSE, ""])
    assert rows.shape == (3, len(st.SURFACE_FEATURES)) and rows.dtype == np.float64
    b, p, empty = (dict(zip(st.SURFACE_FEATURES, r)) for r in rows)
    n_words = len(BULLETED.split())
    assert b["bullets_per_100w"] == pytest.approx(3 * 100 / n_words)
    assert b["opener_sure_per_100w"] == pytest.approx(100 / n_words) and p["opener_sure_per_100w"] == 0.0
    assert b["closer_hope_per_100w"] > 0 and b["exclaim_per_100w"] == pytest.approx(2 * 100 / n_words)
    assert p["bullets_per_100w"] == 0.0 and p["log_words"] == pytest.approx(math.log1p(len(PROSE.split())))
    assert p["mean_sentence_words"] == pytest.approx(len(PROSE.split()) / 3)
    assert b["emoji_per_100w"] == 0.0 and st.surface_features(["ok \U0001F600"])[0][-1] == pytest.approx(50.0)
    assert empty["log_chars"] == 0.0 and empty["type_token_ratio"] == 0.0
    assert st.surface_features([]).shape == (0, len(st.SURFACE_FEATURES))
