"""Looking at RSE pairs: the notebook's drill-down rows and the explorer's pair views, model text escaped."""

from __future__ import annotations

import polars as pl

from distill_kit.rse import browse, scores
from distill_kit.rse import offline_judge as oj
from tests.rse.toy_answers import BULLETS, PROSE, VARIANT, toy_aligned

XSS = "<script>alert(1)</script>"


def test_drilldown_rows_join_answers_and_scores(toy_scores: oj.PairwiseScores) -> None:
    long = scores.long_scores(toy_scores, reference="ref")
    rows = browse.drilldown_rows(toy_aligned(), long, "ref", "variant", 2)
    assert [r["prompt"] for r in rows] == ["p1", "p2"]
    assert rows[0]["reference_answer"] == BULLETS["p1"] and rows[0]["test_answer"] == VARIANT["p1"]
    assert list(rows[0]["scores"]) == [*oj.GRANULARITIES, "overall"] and rows[0]["scores"]["structure"] == 5.0
    assert browse.drilldown_rows(toy_aligned(), long, "ref", "variant", 0) == []
    judged = pl.DataFrame({"prompt_id": ["p1", "p2"], "test_model": ["variant"] * 2, "reference": ["ref"] * 2,
                           "overall": [4.0, 3.0], "rationale": ["close", None]})
    rows = browse.drilldown_rows(toy_aligned(), judged, "ref", "variant", 5)
    assert [r["scores"] for r in rows] == [{"overall": 4.0, "rationale": "close"}, {"overall": 3.0}]


def test_pair_views_escape_and_prefer_the_llm_judge(toy_scores: oj.PairwiseScores) -> None:
    aligned = toy_aligned().with_columns(pl.concat_str(pl.col("prompt"), pl.lit(XSS)).alias("prompt"))
    judged = pl.DataFrame({"prompt_id": ["p1"], "test_model": ["prose"], "reference": ["ref"], "style": [5.0],
                           "structure": [5.0], "content": [5.0], "overall": [5.0], "rationale": ["same wording"]})
    pairs = browse.pair_scores(scores.long_scores(toy_scores), judged)
    assert pairs.height == scores.long_scores(toy_scores).height
    view = browse.pair_view(aligned, pairs, "prose", "ref", "p1")
    assert view["judge"] == "LLM" and view["rationale"] == "same wording" and view["test_answer"].startswith("Getting")
    assert browse.pair_view(aligned, pairs, "copy", "ref", "p2")["judge"] == "offline"
    html = browse.pair_html(view)
    assert XSS not in html and "&lt;script&gt;" in html and "overall: <b>5.00</b>" in html
    assert browse.pair_models(aligned) == ["ref", "copy", "variant", "prose"]
    assert [pid for _, pid in browse.pair_prompts(aligned, "prose", "ref")] == ["p1", "p2", "p3"]


def test_pair_explorer_picks_and_shows_scores(toy_scores: oj.PairwiseScores) -> None:
    from distill_kit.rse.widgets import PairExplorer

    aligned = toy_aligned(without=("prose", "p3")).with_columns(
        pl.concat_str(pl.col("prompt"), pl.lit(XSS)).alias("prompt"))
    explorer = PairExplorer(aligned, browse.pair_scores(scores.long_scores(toy_scores)), reference="ref")
    assert explorer.test.value == "copy" and len(explorer.prompt.options) == 3
    shown = explorer.pick(prompt_id="p2")
    assert VARIANT["p2"] not in shown and BULLETS["p2"].split("\n")[0] in shown and "structure: <b>5.00</b>" in shown
    assert XSS not in shown
    explorer.pick(test="prose")
    assert [pid for _, pid in explorer.prompt.options] == ["p1", "p2"]  # prose has no answer to p3
    explorer.pick(reference="variant")
    assert "reference: variant" in explorer.view.value
    assert XSS not in explorer.static_html() and PROSE["p1"][:40] in explorer.static_html()
