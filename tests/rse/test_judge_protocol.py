"""The RSE judge protocol: the offline and the LLM judge score the same pairs into the same columns."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distill_kit.rse import judge as rj
from distill_kit.rse import resolve_similarity_judge
from distill_kit.rse import llm_judge as js
from distill_kit.rse import offline_judge as oj
from distill_kit.rse import scores as rse_scores
from distill_kit.store import Store
from tests.helpers.mocked import mock_model
from tests.rse.toy_answers import bag_of_words, toy_aligned


def toy_pairs() -> pl.DataFrame:
    return js.judge_pairs_frame(toy_aligned(), "ref", ["copy", "variant", "prose"])


def test_the_offline_judge_scores_pairs_as_the_matrices_do() -> None:
    judge = resolve_similarity_judge("offline", encode=bag_of_words)
    assert isinstance(judge, rj.SimilarityJudge) and judge.name == "offline"
    pairs = toy_pairs()
    scored = judge.score_pairs(pairs)
    assert scored.columns == [*pairs.columns, *rj.SCORE_COLUMNS] and scored.height == pairs.height
    # the same numbers notebook 04 reads off the full matrices
    prof = oj.build_profiles(toy_aligned(), encode=bag_of_words, progress=False)
    want = rse_scores.long_scores(oj.pairwise_scores(prof), reference="ref").select("prompt_id", "test_model", "overall")
    got = scored.join(want, on=["prompt_id", "test_model"], suffix="_matrix")
    assert got.height == pairs.height
    assert np.allclose(got["overall"].to_numpy(), got["overall_matrix"].to_numpy())
    copy = scored.filter(pl.col("test_model") == "copy")
    assert copy["overall"].to_list() == pytest.approx([5.0] * copy.height)


def test_without_content_the_content_column_is_null() -> None:
    scored = oj.OfflineSimilarityJudge(content=False).score_pairs(toy_pairs())
    assert scored["content"].null_count() == scored.height and scored["overall"].null_count() == 0


def test_the_llm_judge_is_one_too_and_reads_its_own_prompt(tmp_path) -> None:
    seen: list[js.SimilarityPrompt] = []

    def reply(message: str) -> str:
        shown = js.parse_similarity_prompt(message)
        seen.append(shown)
        score = 5 if shown.reference == shown.test else 2
        return f"<style>{score}</style><structure>{score}</structure><content>{score}</content>"

    pairs = toy_pairs()
    with mock_model(reply) as (cfg, _), Store(tmp_path / "s.sqlite") as store:
        judge = resolve_similarity_judge(cfg, store, progress=False)
        assert isinstance(judge, rj.SimilarityJudge) and judge.name == cfg.name
        scored = judge.score_pairs(pairs)
    assert set(rj.SCORE_COLUMNS) <= set(scored.columns) and scored.height == pairs.height
    assert (scored.filter(pl.col("test_model") == "copy")["overall"] == 5).all()
    assert (scored.filter(pl.col("test_model") == "prose")["overall"] == 2).all()
    assert {s.prompt for s in seen} == set(pairs["prompt"]) and not any(s.test_first for s in seen)


def test_pairs_without_the_columns_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match="pairs need columns test_answer"):
        oj.OfflineSimilarityJudge().score_pairs(toy_pairs().drop("test_answer"))


@pytest.mark.parametrize("test_first", [False, True])
def test_the_prompt_reader_inverts_judge_prompt(test_first: bool) -> None:
    message = js.judge_prompt("Why {x}?", "ref\n\n- a", "x" * 30, max_answer_chars=20, test_first=test_first,
                              aspect_order=("content", "style", "structure"))
    shown = js.parse_similarity_prompt(message)
    assert shown == js.SimilarityPrompt("Why {x}?", "ref\n\n- a", "x" * 20 + js.TRUNCATED, test_first)
    assert js.parse_similarity_prompt("Rate how similar these are") is None
