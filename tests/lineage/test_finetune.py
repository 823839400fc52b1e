"""Fine-tuned MiniLM author vote (distill_kit.lineage.finetune) on synthetic references with known habits.

The fit is small (six references, a few answers each, 32 tokens) but real: the bundled MiniLM is
fine-tuned on CPU. Slow-marked because it trains a transformer (tens of seconds on shared cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill_kit.lineage import finetune as FT
from distill_kit.lineage import votes as A
from tests.helpers.lineage_habits import HABITS, LINES, habits_frame

CFG = FT.FinetuneConfig(max_tokens=32, train_per_candidate=12, vote_per_fold=8, self_per_fold=4, epochs=3,
                        lr=3e-4, batch_size=8, frozen_layers=4, threads=1)


def test_sample_is_seeded_and_bounded() -> None:
    items = [f"p{i}" for i in range(30)]
    a = FT._sample(items, 5, 0, "x")
    assert len(a) == 5 and a == FT._sample(items, 5, 0, "x") and a != FT._sample(items, 5, 0, "y")
    assert FT._sample(items[:3], 5, 0, "x") == items[:3]
    assert "threads" not in CFG.key()  # thread count does not change the result, so not the cache key


@pytest.mark.slow
def test_finetuned_vote_attributes_an_echoing_student(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_KIT_CACHE_DIR", str(tmp_path))
    frame = habits_frame(HABITS["teacher-a"], 24)
    cands = list(HABITS)
    fv = FT.finetuned_votes(frame, cands, ["student", "control"], LINES, config=CFG)
    folds = A.prompt_folds(sorted(set(frame["prompt"].to_list())), 2, 0)
    assert fv.votes.probs["student"].shape == (16, 6) and fv.n_train == 2 * 6 * 12
    assert np.allclose(fv.votes.probs["student"].sum(axis=1), 1.0)
    # cross-fitted: every voted prompt lies in some fold, and both folds voted
    assert {sum(p in f for p in fv.votes.prompts["student"]) for f in folds} == {8}
    r = A.rank(fv.votes, "student", A.Method("minilm", "soft", "sum"), LINES)
    assert r.lines[0] == "A"
    # self votes never give a reference's own line any weight
    for c, P in fv.self_votes.probs.items():
        own = [LINES[x] == LINES[c] for x in cands]
        assert np.all(P[:, own] == 0) and np.allclose(P.sum(axis=1), 1.0)
    weights = sorted((tmp_path / "lineage_finetune").glob("*.pt"))
    assert len(weights) == 2
    # the weights do not depend on who votes: another voter set reuses the cached fits, same votes
    again = FT.finetuned_votes(frame, cands, ["student"], LINES, config=CFG)
    assert sorted((tmp_path / "lineage_finetune").glob("*.pt")) == weights
    assert np.allclose(again.votes.probs["student"], fv.votes.probs["student"], atol=1e-6)
    with pytest.raises(ValueError, match="both voter and candidate"):
        FT.finetuned_votes(frame, cands, ["teacher-a"], LINES, config=CFG)
