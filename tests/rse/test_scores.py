"""RSE results: matrices and long scores from pairwise scores, the paper's RSE table, the per-granularity and
per-reference tables the notebook records, and the charts drawn from them."""

from __future__ import annotations

import polars as pl
import pytest

from distill_kit.rse import offline_judge as oj
from distill_kit.rse import scores
from tests.rse.toy_answers import bag_of_words, toy_aligned

LONG_COLUMNS = ["prompt_set", "prompt_id", "test_model", "reference", "style", "structure", "content", "overall"]


def test_matrices_are_means_over_shared_prompts(toy_scores: oj.PairwiseScores) -> None:
    m = scores.matrices(toy_scores)
    assert set(m) == {"style", "structure", "content", "overall"}
    assert m["overall"]["model"].to_list() == toy_scores.models
    assert m["overall"].filter(pl.col("model") == "copy")["ref"].item() == pytest.approx(5.0)
    raw = scores.matrices(toy_scores, likert=False)
    assert set(raw) == set(oj.GRANULARITIES)  # no overall on the raw [0, 1] scale
    assert raw["style"].filter(pl.col("model") == "copy")["ref"].item() == pytest.approx(1.0)


def test_long_scores_skip_missing_answers() -> None:
    prof = oj.build_profiles(toy_aligned(without=("prose", "p3")), encode=bag_of_words, progress=False)
    sc = oj.pairwise_scores(prof)
    long = scores.long_scores(sc, reference="ref")
    assert long.filter(pl.col("test_model") == "prose").height == 2
    assert long.filter(pl.col("test_model") == "ref").height == 3
    assert long.columns == LONG_COLUMNS and set(long["prompt_set"]) == {"prompts"}
    labelled = scores.long_scores(sc, reference="ref", prompts=toy_aligned().select("prompt_id", "prompt_set"))
    assert set(labelled["prompt_set"]) == {"toy"}
    assert scores.long_scores(sc).height == 4 * 4 * 3 - 7  # every ordered pair on every prompt, bar prose on p3
    with pytest.raises(ValueError, match="has no aligned answers"):
        scores.long_scores(sc, reference="nobody")


TWO_SETS = pl.DataFrame({
    "prompt_set": ["A"] * 4 + ["B"] * 2 + ["A"] * 3 + ["B"] * 3,
    "test_model": ["x"] * 6 + ["y"] * 6,
    "overall": [4.0, 4.0, 5.0, 3.0, 2.0, None, 1.0, 2.0, float("nan"), 3.0, 3.0, 3.0],
})


def test_rse_table_layout_and_mean() -> None:
    t = scores.rse_table(TWO_SETS, prompt_sets=["A", "B"], n_boot=500)
    assert t.columns == ["test_model", "A", "A_lo", "A_hi", "n_A", "B", "B_lo", "B_hi", "n_B", "mean", "mean_lo", "mean_hi"]
    x = t.filter(pl.col("test_model") == "x").to_dicts()[0]
    y = t.filter(pl.col("test_model") == "y").to_dicts()[0]
    assert x["A"] == 4.0 and x["n_A"] == 4 and x["B"] == 2.0 and x["n_B"] == 1
    assert x["mean"] == pytest.approx(3.0)  # mean of the set columns, not of all prompts
    assert y["A"] == pytest.approx(1.5) and y["n_A"] == 2 and y["B"] == 3.0
    assert y["B_lo"] == y["B_hi"] == 3.0
    assert x["A_lo"] <= 4.0 <= x["A_hi"] and x["A_lo"] < x["A_hi"]
    assert x["mean_lo"] <= x["mean"] <= x["mean_hi"]
    assert t["test_model"].to_list() == ["x", "y"]  # sorted by mean
    with pytest.raises(ValueError, match="need columns"):
        scores.rse_table(TWO_SETS.drop("overall"))
    partial = scores.rse_table(TWO_SETS.filter(~((pl.col("test_model") == "y") & (pl.col("prompt_set") == "B"))),
                               prompt_sets=["A", "B"], n_boot=50)
    y = partial.filter(pl.col("test_model") == "y").to_dicts()[0]
    assert y["B"] is None and y["n_B"] == 0 and y["mean"] is None and y["A"] == pytest.approx(1.5)
    assert partial["test_model"].to_list() == ["x", "y"]
    # a judge whose every verdict was unparseable: the model is listed with n = 0, no number made up
    none = scores.rse_table(TWO_SETS.with_columns(pl.lit(None, dtype=pl.Float64).alias("overall")), prompt_sets=["A"])
    assert none["test_model"].to_list() == ["x", "y"] and none["n_A"].to_list() == [0, 0]
    assert none["A"].is_null().all() and none["mean"].is_null().all()
    assert scores.rse_table(TWO_SETS.head(0), prompt_sets=["A"]).height == 0


def test_tables_by_granularity_and_by_reference(toy_scores: oj.PairwiseScores) -> None:
    prompts = toy_aligned().select("prompt_id", "prompt_set")
    long = scores.long_scores(toy_scores, reference="ref", prompts=prompts).filter(pl.col("test_model") != "ref")
    table = scores.rse_table(long, prompt_sets=["toy"])
    by_g = scores.rse_by_granularity(long, ["toy"])
    assert list(by_g) == list(oj.GRANULARITIES) and by_g["style"].columns == ["test_model", "mean", "mean_lo", "mean_hi"]
    assert by_g["structure"].filter(pl.col("test_model") == "copy")["mean"].item() == pytest.approx(5.0)
    assert list(scores.rse_by_granularity(long.drop("content"), ["toy"])) == ["style", "structure"]
    by_ref = scores.rse_by_reference(toy_scores, table, "ref", ["ref", "prose", "absent"], prompts, ["toy"])
    assert list(by_ref) == ["ref", "prose"]  # a reference without answers is left out
    assert by_ref["ref"] == table.select("test_model", "mean", "mean_lo", "mean_hi").to_dicts()
    assert {r["test_model"] for r in by_ref["prose"]} == {"ref", "copy", "variant"}  # never scored against itself


def test_closest_model_and_compare_pairs() -> None:
    table = scores.rse_table(TWO_SETS, prompt_sets=["A"], n_boot=50)
    assert scores.closest_model(table, "ref") == "x" and scores.closest_model(table.head(0), "ref") == "ref"
    assert scores.compare_pairs(["a:b", " c : d "]) == [("a", "b"), ("c", "d")]
    assert scores.compare_pairs([]) is None  # neighbours in the ranking
    with pytest.raises(ValueError, match="'ab' is not a pair 'model_a:model_b'"):
        scores.compare_pairs(["ab"])


def test_charts_build_from_real_frames(toy_scores: oj.PairwiseScores) -> None:
    from distill_kit.rse import charts

    mats = scores.matrices(toy_scores)
    heat = charts.similarity_heatmap(mats["overall"], toy_scores.models, title="overall").to_dict()
    values = heat["datasets"][next(iter(heat["datasets"]))]
    assert len(values) == 16
    long = scores.long_scores(toy_scores, reference="ref")
    table = scores.rse_table(long.filter(pl.col("test_model") != "ref"), n_boot=100)
    spec = charts.rse_table_chart(table, ["prompts"]).to_dict()
    with pytest.raises(ValueError, match="none of the columns"):
        charts.rse_table_chart(table, ["toy"])
    assert spec["layer"][1]["encoding"]["x"]["scale"]["domain"] == [1, 5]
    assert charts.granularity_chart(long).to_dict()["mark"]["type"] == "point"
    import vl_convert as vlc

    # one merged legend for colour + shape, and labelled cells large enough for their text
    assert vlc.vegalite_to_svg(charts.granularity_chart(long).to_json()).count(">granularity<") == 1
    assert heat["width"] == 4 * 24 and charts.similarity_heatmap(mats["overall"], labels=False).to_dict()["width"] == 4 * 16


def test_drilldown_escapes_model_text() -> None:
    from distill_kit.rse import charts

    out = charts.drilldown_html("<b>Q</b>", "ref<1>", "<script>alert(1)</script>", "t&t", "**bold** <img src=x>",
                                {"style": 4.0, "rationale": "<i>why</i>"})
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<img" not in out and "&lt;img src=x&gt;" in out
    assert "ref&lt;1&gt;" in out and "t&amp;t" in out and "&lt;i&gt;why&lt;/i&gt;" in out
    assert "style: <b>4.00</b>" in out
    # notebook CSS right-aligns cells and breaks words anywhere; the drill-down overrides both
    assert out.count("text-align:left") >= 4 and "word-break:normal" in out
