"""What every RSE judge offers, whatever scores the pairs (answer profiles, an LLM); ICE's identity judges
have theirs too (:class:`distill_kit.ice.judges.IdentityJudge`).

A judge scores *pairs*: the rows of :func:`distill_kit.rse.llm_judge.judge_pairs_frame` (``prompt_set,
prompt_id, prompt, test_model, reference, test_answer, reference_answer``), and returns them with ``style,
structure, content, overall`` (1-5; null where it gave no verdict) and ``judge`` (its name). Notebook 04 uses
the offline judge's matrices directly (every model against every model) and the LLM judge on sampled pairs;
a new judge implements :class:`SimilarityJudge` and is named in :func:`distill_kit.rse.resolve_similarity_judge`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import polars as pl

#: The columns a judge adds to the pairs it scores.
SCORE_COLUMNS: tuple[str, ...] = ("style", "structure", "content", "overall", "judge")
#: The columns of a pair to score (see ``judge_pairs_frame``).
PAIR_COLUMNS: tuple[str, ...] = ("prompt_id", "prompt", "test_model", "reference", "test_answer", "reference_answer")


@runtime_checkable
class SimilarityJudge(Protocol):
    """An RSE judge: how alike two answers to the same prompt are, on the paper's 1-5 scale."""

    @property
    def name(self) -> str:
        """What the ``judge`` column says (a model name, or ``offline``)."""
        ...

    def score_pairs(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """``pairs`` with :data:`SCORE_COLUMNS` added: one row per pair, in order (a judge that shows each pair
        in both orders returns one row per pair and order, column ``order``)."""
        ...


def check_pairs(pairs: pl.DataFrame) -> None:
    """One clear line when ``pairs`` lacks a column every judge reads."""
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs need columns {', '.join(missing)} (see rse.llm_judge.judge_pairs_frame)")

