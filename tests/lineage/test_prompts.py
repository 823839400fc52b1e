"""Prompt choice for lineage: shared prompts, the attribution pool (a sample, 0 = all, plus the embedded ones), the fit/score split."""

from __future__ import annotations

import polars as pl
import pytest

from distill_kit.lineage import prompts

POOL = [f"p{i}" for i in range(20)]


def test_split_is_disjoint_and_seeded() -> None:
    fit, score = prompts.split_prompts(POOL, 0.5, seed=3)
    assert not set(fit) & set(score) and len(fit) + len(score) == 20
    assert (fit, score) == prompts.split_prompts(POOL, 0.5, seed=3)
    assert fit != prompts.split_prompts(POOL, 0.5, seed=4)[0]
    with pytest.raises(ValueError):
        prompts.split_prompts(["a", "b"], 0.5)
    with pytest.raises(ValueError, match="fit_fraction"):
        prompts.split_prompts(POOL, 1.0)


def test_attribution_prompts_always_hold_the_embedded_ones() -> None:
    pool = prompts.attribution_prompts(POOL, ["p3", "extra"], 4, seed=0)
    assert {"p3", "extra"} <= set(pool) and len(pool) in (5, 6) and pool == sorted(pool)
    assert prompts.attribution_prompts(POOL, ["p3"], 0) == sorted(POOL)


def test_common_prompts_and_answers_on() -> None:
    frame = pl.DataFrame({"model": ["a", "a", "b", "b", "c"], "prompt": ["p1", "p2", "p1", "p3", "p1"],
                          "text": ["x"] * 5})
    assert prompts.common_prompts(frame) == ["p1"]
    assert prompts.common_prompts(frame, ["a", "b"]) == ["p1"]
    assert prompts.common_prompts(frame, ["a"]) == ["p1", "p2"]
    sub = prompts.answers_on(frame, ["a", "b"], ["p1", "p3"])
    assert list(zip(sub["model"], sub["prompt"])) == [("a", "p1"), ("b", "p1"), ("b", "p3")]
