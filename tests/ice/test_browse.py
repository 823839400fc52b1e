"""Notebook 03's answer browser: logic and widget, driven without a browser (tests/run/test_lab.py clicks it in
JupyterLab). The 04 pair explorer and 05 teacher picker are tested in tests/rse and tests/lineage."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from distill_kit.display import WithStatic
from distill_kit.ice import browse as X
from distill_kit.ice.labels import LabelStore, answer_key
from distill_kit.ice.widgets import AnswerBrowser

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


def test_with_static_outside_a_kernel_is_only_html() -> None:
    """Outside a live kernel (and in batch kernels) a widget is its static HTML: no widget state."""
    bundle = WithStatic(object(), "<table>t</table>", "x")._repr_mimebundle_()
    assert bundle == {"text/html": "<table>t</table>", "text/plain": "<x: static table>"}


def test_a_label_that_cannot_be_stored_says_so(tmp_path: Path) -> None:
    (tmp_path / "labels.sqlite").mkdir()  # a folder where the file should be: sqlite cannot open it
    br = AnswerBrowser(X.judged_answers(judged_frames()), LabelStore(tmp_path / "labels.sqlite"))
    assert br.label_loose(True) is None and "label not saved" in br.message.value
