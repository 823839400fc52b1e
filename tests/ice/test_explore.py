"""The notebook explorers (03 answer browser, 04 pair explorer, 05 teacher picker): logic and widgets,
driven without a browser (tests/test_lab.py clicks them in JupyterLab)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from distill_kit.ice import browse as X
from distill_kit.rse.browse import pair_scores, pair_view
from distill_kit.lineage.browse import example_pairs, teacher_candidates
from distill_kit.display import WithStatic
from distill_kit.ice.labels import LabelStore, answer_key
from distill_kit.lineage.signals import Attribution
from distill_kit.ice.widgets import AnswerBrowser
from distill_kit.rse.widgets import PairExplorer
from distill_kit.lineage.widgets import TeacherPicker

XSS = "<script>alert(1)</script>"


def judged_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    replay = pl.DataFrame({
        "model": ["phi-4", "phi-4", "qwen"], "family": ["phi", "phi", "qwen"], "row": [0, 1, 0],
        "template": ["T1 {query}", "T2 {query}", "T1 {query}"], "query": ["Who made you?", "你是谁？", "Who made you?"],
        "prompt": ["T1 Who made you?", "T2 你是谁？", "T1 Who made you?"],
        "response": ["I am ChatGPT by OpenAI " + XSS, "我是Phi", "I am Qwen"],
        "loose_label": [True, False, True], "strict_label": [True, False, False],
        "language": ["en", "zh", "en"], "category": ["company", "name", "company"], "template_id": ["t1", "t2", "t1"],
        "pred_loose": [True, False, False], "pred_strict": [True, False, False], "claimed": ["lab", "true", "rules"],
    })
    live = pl.DataFrame({
        "model": ["smol"], "family": ["smol"], "fact": ["Hugging Face"], "query": ["Who made you?"],
        "language": ["en"], "category": ["company"], "template": ["bare"], "response": ["I was made by OpenAI."],
        "error": [None], "pred_loose": [None], "pred_strict": [None], "judge_reason": ["It names OpenAI <judge>1</judge>"],
    }, schema_overrides={"pred_loose": pl.Boolean, "pred_strict": pl.Boolean, "error": pl.String})
    return replay, live


def test_judged_answers_unifies_replay_and_live() -> None:
    replay, live = judged_frames()
    a = X.judged_answers([replay, None, live])
    assert a.columns == list(X.ANSWER_COLUMNS) and a.height == 4
    assert a["key"][0] == answer_key("phi-4", "T1 Who made you?", replay["response"][0])
    assert a["key"].n_unique() == 4
    smol = a.filter(pl.col("model") == "smol").row(0, named=True)
    assert smol["template"] == "bare" and smol["prompt"] == "bare\nWho made you?" and smol["reason"].startswith("It names")
    assert X.answer_options(a) == {"model": ["phi-4", "qwen", "smol"], "template": ["bare", "t1", "t2"],
                                   "language": ["en", "zh"]}
    assert X.judged_answers([None]).columns == list(X.ANSWER_COLUMNS)


@pytest.mark.parametrize("verdict, n", [("all", 4), ("contradicts", 1), ("consistent", 2), ("claims", 1),
                                        ("unjudged", 1), ("disagrees", 1)])
def test_filter_by_verdict(verdict: str, n: int) -> None:
    a = X.judged_answers(judged_frames())
    assert X.filter_answers(a, verdict=verdict).height == n


def test_filter_combines_and_rejects_unknown() -> None:
    a = X.judged_answers(judged_frames())
    assert X.filter_answers(a, model="phi-4", language="zh").height == 1
    assert X.filter_answers(a, template="t1", verdict="disagrees")["model"].to_list() == ["qwen"]
    with pytest.raises(ValueError, match="unknown verdict"):
        X.filter_answers(a, verdict="maybe")


def test_answer_html_escapes_and_shows_both_verdicts() -> None:
    a = X.judged_answers(judged_frames())
    h = X.answer_html(a.row(0, named=True), {"loose_label": True, "strict_label": None, "labeller": "ann"})
    assert XSS not in h and "&lt;script&gt;" in h
    assert "contradicts identity" in h and "claims OpenAI/Anthropic" in h and "GPT-4o-mini labels: loose 1, strict 1" in h
    assert "judge's reason" in h and "claim names OpenAI or Anthropic" in h  # the offline judge's claim
    assert a["reason"][2] is None  # the rules judge gives no reason
    assert "labelled by ann" in h
    assert XSS not in X.answers_table_html(a)


def test_answer_browser_filters_selects_and_labels(tmp_path: Path) -> None:
    a = X.judged_answers(judged_frames())
    store = LabelStore(tmp_path / "labels.sqlite", labeller="ann")
    br = AnswerBrowser(a, store)
    assert len(br.listing.options) == 4 and br.current_key == a["key"][0]
    assert br.set_filter(model="phi-4") == 2 and len(br.listing.options) == 2
    br.f_verdict.value = "consistent"
    assert [k for _, k in br.listing.options] == [a["key"][1]] and br.current_key == a["key"][1]
    assert "我是Phi" in br.detail.value
    br.set_filter(verdict="unjudged")
    assert "I was made by OpenAI" in br.detail.value and "It names OpenAI" in br.detail.value
    br.buttons["contradicts"].click()
    br.buttons["strict_yes"].click()
    labels = store.frame()
    assert labels.select("model", "loose_label", "strict_label", "labeller").rows() == [("smol", True, True, "ann")]
    assert labels["key"][0] == br.current_key
    assert "saved to labels.sqlite" in br.message.value and "labelled by ann" in br.detail.value
    br.buttons["consistent"].click()
    assert store.frame()["loose_label"].to_list() == [False] and store.frame(history=True).height == 3
    br.set_filter(model="qwen", verdict="claims")
    assert br.listing.options == () and br.current_key is None and "no answer matches" in br.detail.value
    assert br.label_loose(True) is None and "select an answer" in br.message.value


def test_answer_browser_without_store_disables_buttons() -> None:
    br = AnswerBrowser(X.judged_answers(judged_frames()), None)
    assert all(b.disabled for b in br.buttons.values()) and "not stored" in br.message.value
    assert "<table>" in br.static_html()


def aligned_and_scores() -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = []
    for m in ("ref", "a", "b"):
        for p in range(3):
            if m == "b" and p == 2:
                continue
            rows.append({"prompt_set": "s", "prompt_id": f"p{p}", "prompt": f"prompt {p} {XSS}", "model": m,
                         "response": f"{m} answers {p}"})
    aligned = pl.DataFrame(rows)
    long = []
    for ref in ("ref", "a", "b"):
        for test in ("ref", "a", "b"):
            for p in range(3):
                if "b" in (ref, test) and p == 2:
                    continue
                long.append({"prompt_set": "s", "prompt_id": f"p{p}", "test_model": test, "reference": ref,
                             "style": 3.0, "structure": 2.5, "content": 4.0 + p / 10, "overall": 3.2})
    return aligned, pl.DataFrame(long)


def test_pair_scores_prefer_llm_judge_where_judged() -> None:
    _, long = aligned_and_scores()
    judged = pl.DataFrame({"prompt_id": ["p0"], "test_model": ["a"], "reference": ["ref"], "style": [5.0],
                           "structure": [5.0], "content": [5.0], "overall": [5.0], "rationale": ["same wording"]})
    s = pair_scores(long, judged)
    assert s.height == long.height
    row = s.filter((pl.col("prompt_id") == "p0") & (pl.col("test_model") == "a") & (pl.col("reference") == "ref"))
    assert row["judge"].to_list() == ["LLM"] and row["rationale"].to_list() == ["same wording"]
    assert pair_scores(long)["judge"].unique().to_list() == ["offline"]


def test_pair_explorer_picks_and_shows_scores() -> None:
    aligned, long = aligned_and_scores()
    ex = PairExplorer(aligned, pair_scores(long), reference="ref")
    assert ex.test.value == "a" and len(ex.prompt.options) == 3
    h = ex.pick(prompt_id="p2")
    assert "a answers 2" in h and "ref answers 2" in h and "content: <b>4.20</b>" in h and "style: <b>3.00</b>" in h
    assert XSS not in h
    ex.pick(test="b")
    assert [pid for _, pid in ex.prompt.options] == ["p0", "p1"] and "b answers 0" in ex.view.value
    ex.pick(reference="a")
    assert "reference: a" in ex.view.value
    assert XSS not in ex.static_html() and "b answers 0" in ex.static_html()
    with pytest.raises(ValueError, match="no aligned answers"):
        pair_view(aligned, long, "a", "ref", "nope")


def attribution() -> Attribution:
    combined = np.array([[2.0, 1.0, 0.0], [0.0, 0.5, 1.5]])
    probs = np.exp(combined) / np.exp(combined).sum(axis=1, keepdims=True)
    return Attribution(students=["s1", "s2"], candidates=["t1", "t2", "t3"], signals={"paired": combined},
                       combined=combined, probabilities=probs, temperature=1.0)


def responses() -> pl.DataFrame:
    rows = [{"model": m, "prompt": f"q{i}", "text": f"{m} on q{i} {XSS}"} for m in ("s1", "s2", "t1", "t2", "t3")
            for i in range(5)]
    return pl.DataFrame(rows)


def test_teacher_candidates_and_examples() -> None:
    c = teacher_candidates(attribution(), "s2", top_k=2)
    assert c["candidate"].to_list() == ["t3", "t2"] and c["rank"].to_list() == [1, 2]
    assert c["confidence"][0] == pytest.approx(np.exp(1.5) / (1 + np.exp(0.5) + np.exp(1.5)))
    ex = example_pairs(responses(), "s1", "t1", prompts=["q1", "q3", "q4"], n=2, seed=0)
    assert ex.height == 2 and set(ex["prompt"]) <= {"q1", "q3", "q4"}
    assert ex.equals(example_pairs(responses(), "s1", "t1", prompts=["q1", "q3", "q4"], n=2, seed=0))
    assert ex["student_answer"][0].startswith("s1 on") and ex["candidate_answer"][0].startswith("t1 on")
    with pytest.raises(ValueError, match="not attributed"):
        teacher_candidates(attribution(), "nobody")


def test_teacher_picker_shows_candidates_with_confidence_and_pairs() -> None:
    tp = TeacherPicker(attribution(), responses(), truth={"s1": "t1"}, top_k=2, n_examples=1)
    h = tp.view.value
    assert "student: <b>s1</b>" in h and "documented teacher: <b>t1</b>" in h and h.index("t1") < h.index("t2")
    assert "1 example answer pair" in h and XSS not in h
    h2 = tp.pick("s2")
    assert "t3" in h2 and "0.6" in h2  # s2's top candidate and its confidence (0.63)
    assert "t1 (0.67)" in tp.static_html()
    with pytest.raises(ValueError):
        tp.pick("x")


def test_with_static_outside_a_kernel_is_only_html() -> None:
    """Outside a live kernel (and in batch kernels) a widget is its static HTML: no widget state."""
    bundle = WithStatic(object(), "<table>t</table>", "x")._repr_mimebundle_()
    assert bundle == {"text/html": "<table>t</table>", "text/plain": "<x: static table>"}


def test_a_label_that_cannot_be_stored_says_so(tmp_path: Path) -> None:
    (tmp_path / "labels.sqlite").mkdir()  # a folder where the file should be: sqlite cannot open it
    br = AnswerBrowser(X.judged_answers(judged_frames()), LabelStore(tmp_path / "labels.sqlite"))
    assert br.label_loose(True) is None and "label not saved" in br.message.value
