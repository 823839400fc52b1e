"""Teacher attribution, who-wrote-this and trees on a constructed case with a known answer."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distill_kit import lineage

TOPICS = [f"topic{i}" for i in range(60)]
HABITS = {  # each reference model's verbal habits
    "teacher-a": ("Certainly! Here is a concise overview of {t}:", "- {t} matters because", "I hope this helps!"),
    "teacher-a2": ("Certainly! Here is an overview of {t}:", "- {t} is important because", "Hope this helps!"),
    "ref-b": ("## {t}", "**Key point:** {t} works when", "Let me know if you need more."),
    "ref-b2": ("### About {t}", "**Key idea:** {t} works if", "Let me know if anything is unclear."),
    "ref-c": ("{t}, in short, is", "Consider that {t} depends on", "That is all."),
    "ref-c2": ("In short, {t} is", "Note that {t} depends on", "That's all."),
}
LINES = {"teacher-a": "A", "teacher-a2": "A", "ref-b": "B", "ref-b2": "B", "ref-c": "C", "ref-c2": "C"}


def answer(habits: tuple[str, ...], topic: str, rng: np.random.Generator, keep: float = 1.0) -> str:
    filler = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma"], size=8))
    parts = [h.format(t=topic) for h in habits if rng.random() < keep]
    return "\n".join([*parts[:1], filler, *parts[1:]])


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for t in TOPICS:
        for m, h in HABITS.items():
            rows.append({"model": m, "instruction": f"Explain {t}.", "output": answer(h, t, rng)})
        rows.append({"model": "student", "instruction": f"Explain {t}.", "output": answer(HABITS["teacher-a"], t, rng, 0.7)})
        neutral = ("Here are some thoughts on {t}.", "People say {t} is", "Thanks for asking.")
        rows.append({"model": "control", "instruction": f"Explain {t}.", "output": answer(neutral, t, rng)})
    return pl.DataFrame(rows)


def test_split_is_disjoint_and_seeded() -> None:
    fit, score = lineage.split_prompts([f"p{i}" for i in range(20)], 0.5, seed=3)
    assert not set(fit) & set(score) and len(fit) + len(score) == 20
    assert (fit, score) == lineage.split_prompts([f"p{i}" for i in range(20)], 0.5, seed=3)
    assert fit != lineage.split_prompts([f"p{i}" for i in range(20)], 0.5, seed=4)[0]
    with pytest.raises(ValueError):
        lineage.split_prompts(["a", "b"], 0.5)


@pytest.mark.parametrize("signals", [("paired",), ("ngram",), ("paired", "style")])
def test_attribution_finds_known_teacher(frame: pl.DataFrame, signals: tuple[str, ...]) -> None:
    res = lineage.attribute(frame, ["student", "control"], list(HABITS), lines=LINES, signals=signals)
    top = res.table(top_k=3)
    assert top["top1"][0] == "teacher-a"
    assert res.probabilities[0].sum() == pytest.approx(1.0)
    assert res.probabilities[0, res.candidates.index("teacher-a")] > 0.5
    m = lineage.attribution_metrics(res, {"student": "teacher-a"}, LINES)
    assert m["top1"] == 1.0 and m["n"] == 1.0
    assert res.calibration["sibling_n"] == 6  # every reference has a same-line sibling
    assert res.distillation_score[0] > res.distillation_score[1]  # student closer to a reference than control


def test_attribution_rejects_bad_input(frame: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="both student and candidate"):
        lineage.attribute(frame, ["teacher-a"], list(HABITS))
    with pytest.raises(ValueError, match="no responses"):
        lineage.attribute(frame, ["nobody"], list(HABITS))
    with pytest.raises(ValueError, match="unknown signals"):
        lineage.attribute(frame, ["student"], list(HABITS), signals=("magic",))
    with pytest.raises(ValueError, match="columns"):
        lineage.standardise(pl.DataFrame({"model": ["a"], "text": ["b"]}))


def test_who_wrote_this_and_tree(frame: pl.DataFrame) -> None:
    models = ["teacher-a", "ref-b", "ref-c", "student"]
    w = lineage.who_wrote_this(frame, models, seed=0)
    assert w.confusion.sum() == w.n_test and w.confusion.shape == (4, 4)
    cm = w.confusion_frame()
    share = {(r["true"], r["predicted"]): r["share"] for r in cm.iter_rows(named=True)}
    assert share[("ref-b", "ref-b")] == 1.0 and share[("ref-c", "ref-c")] == 1.0
    # the student copies teacher-a, so those two are the pair most confused
    top = w.most_confused(1).row(0, named=True)
    assert {top["true"], top["predicted"]} == {"teacher-a", "student"}

    std = lineage.standardise(frame)
    fit, score = lineage.split_prompts(lineage.common_prompts(std), 0.5, 0)
    feats = lineage.build_features(std, list(HABITS) + ["student"], fit, score)
    names, S = lineage.similarity_matrix(feats)
    tree = lineage.lineage_tree(names, S)
    assert sorted(tree.leaves) == sorted(names)
    pos = {m: i for i, m in enumerate(tree.leaves)}
    assert abs(pos["student"] - pos["teacher-a"]) <= 2  # the student sits next to its teacher family
    assert len(tree.segments) == 3 * (len(names) - 1)


def test_auroc() -> None:
    assert lineage.auroc([3, 4], [1, 2]) == 1.0
    assert lineage.auroc([1], [2]) == 0.0
    assert lineage.auroc([1, 2], [2]) == 0.25
