"""The offline RSE judge: the 1-5 mapping, answer profiles, pairwise similarity at three granularities."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from distill_kit.rse import offline_judge as oj
from distill_kit.rse import scores
from tests.rse.toy_answers import bag_of_words, toy_aligned


def test_to_likert_mapping_pins() -> None:
    assert oj.to_likert(0.4, 0.4) == 1.0
    assert oj.to_likert(1.0, 0.4) == 5.0
    assert oj.to_likert(0.7, 0.4) == pytest.approx(3.0)
    assert oj.to_likert(0.1, 0.4) == 1.0  # below the unrelated baseline clips to 1
    assert oj.to_likert(0.55, 0.4) == pytest.approx(2.0)
    arr = oj.to_likert(np.array([np.nan, 0.0, 1.0]), 0.0)
    assert math.isnan(arr[0]) and list(arr[1:]) == [1.0, 5.0]
    with pytest.raises(ValueError):
        oj.to_likert(0.5, 1.0)


def test_documented_floors_are_the_ones_used(toy_scores: oj.PairwiseScores) -> None:
    assert set(oj.LIKERT_FLOORS) == set(oj.GRANULARITIES)
    assert all(0 <= v < 1 for v in oj.LIKERT_FLOORS.values())
    assert toy_scores.floors == oj.LIKERT_FLOORS
    assert "1 + 4 * clip((sim - floor) / (1 - floor), 0, 1)" in (oj.__doc__ or "")


def test_pairwise_shapes_symmetry_and_diagonal(toy_scores: oj.PairwiseScores) -> None:
    assert toy_scores.models == ["ref", "copy", "variant", "prose"]
    for g in oj.GRANULARITIES:
        s = toy_scores.sims[g]
        assert s.shape == (4, 4, 3)
        assert np.allclose(s, s.transpose(1, 0, 2))
        assert np.allclose(np.diagonal(s, axis1=0, axis2=1), 1.0)
        assert np.allclose(s[0, 1], 1.0)  # identical answers


def test_bulleted_variant_is_closer_than_prose(toy_scores: oj.PairwiseScores) -> None:
    lik = {g: toy_scores.likert(g) for g in (*oj.GRANULARITIES, "overall")}
    ref, variant, prose = 0, 2, 3
    for g in ("style", "structure", "overall"):
        assert np.all(lik[g][variant, ref] > lik[g][prose, ref]), g
    # same skeleton "PUUUP" vs "P": 0.5 * (1 - 4/5) + 0.5 * (1 - 2/3) -> mapped with the structure floor
    raw = toy_scores.sims["structure"][prose, ref, 0]
    assert raw == pytest.approx(0.5 * 0.2 + 0.5 / 3)
    assert lik["structure"][prose, ref, 0] == pytest.approx(oj.to_likert(raw, oj.LIKERT_FLOORS["structure"]))
    assert np.all(lik["structure"][variant, ref] == 5.0)


def test_missing_answers_are_nan() -> None:
    prof = oj.build_profiles(toy_aligned(without=("prose", "p3")), encode=bag_of_words, progress=False)
    assert not prof.present[3, 2]
    sc = oj.pairwise_scores(prof)
    assert np.isnan(sc.sims["style"][3, 0, 2]) and np.isnan(sc.sims["content"][0, 3, 2])


def test_sentence_f1_pins() -> None:
    e = np.eye(4, dtype=np.float32)
    # answer 0: sentences e0, e1 ; answer 1: e0 ; answer 2: e2, e3
    sent = np.stack([e[0], e[1], e[0], e[2], e[3]])
    ptr = np.array([[0, 2], [2, 3], [3, 5]])
    f1 = oj.sentence_f1(sent, ptr)
    # R[0,1] = mean(1, 0) = 0.5 ; R[1,0] = 1 -> F1 = 2*0.5/(1.5)
    assert f1[0, 1] == pytest.approx(2 / 3) and f1[1, 0] == pytest.approx(2 / 3)
    assert f1[0, 2] == 0.0 and f1[0, 0] == pytest.approx(1.0)


def test_content_needs_embeddings() -> None:
    prof = oj.build_profiles(toy_aligned(), content=False, progress=False)
    assert prof.answer_emb is None
    sc = oj.pairwise_scores(prof, granularities=("style", "structure"))
    assert sc.granularities == ["style", "structure"]
    with pytest.raises(ValueError, match="needs embeddings"):
        oj.pairwise_scores(prof)
    with pytest.raises(ValueError, match="unknown granularity"):
        oj.pairwise_scores(prof, granularities=("tone",))


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="encode returned shape"):
        oj.build_profiles(toy_aligned(), encode=lambda t: np.zeros((1, 3)), progress=False)
    with pytest.raises(ValueError, match="no aligned responses"):
        oj.build_profiles(toy_aligned().head(0), progress=False)


def test_calibrate_floors_separates_unrelated_from_identical() -> None:
    prof = oj.build_profiles(toy_aligned(), encode=bag_of_words, progress=False)
    floors = oj.calibrate_floors(prof, n_pairs=20)
    assert set(floors) == set(oj.GRANULARITIES)
    assert all(0 <= v < 1 for v in floors.values())


def test_real_alpaca_sample_style_structure(data_dir: Path) -> None:
    """On real answers: a model is most similar to itself, and gpt4_0613_concise (same model asked
    for concise answers) is closer to gpt4_0613 than claude is."""
    from distill_kit.rse.responses import gather_responses

    rs = gather_responses(["alpaca-eval"], ["gpt4_0613", "gpt4_0613_concise", "claude", "alpaca-7b"], "gpt4_0613",
                          sample_size=60, seed=0)
    prof = oj.build_profiles(rs.aligned, rs.models, content=False, progress=False)
    o = scores.matrices(oj.pairwise_scores(prof, ("style", "structure")))["overall"]
    row = dict(zip(o["model"].to_list(), o["gpt4_0613"].to_list()))
    assert row["gpt4_0613"] == pytest.approx(5.0)
    assert row["gpt4_0613_concise"] > row["claude"]
    assert o.filter(pl.col("model") == "alpaca-7b")["alpaca-7b"].item() == pytest.approx(5.0)
