"""Old home of RSE, kept only so callers outside ``rse/`` keep working until they import the new homes:
prompt sets -> :mod:`distill_kit.datasets`; answers -> :mod:`distill_kit.rse.responses`; the offline judge ->
:mod:`distill_kit.rse.offline_judge`; tables and matrices -> :mod:`distill_kit.rse.scores`; ``cluster_order``
-> ``distill_kit.lineage.tree``. Delete this module once nothing imports it."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from distill_kit.datasets import (  # noqa: F401
    BUILTIN_PROMPT_SETS,
    load_prompts,
    normalise_prompt,
    prompt_key,
    prompt_set,
    sample_prompts,
)
from distill_kit.datasets import response_models as replay_models  # noqa: F401
from distill_kit.rse.offline_judge import (  # noqa: F401
    GRANULARITIES,
    LIKERT_FLOORS,
    MAX_SENTENCES,
    AnswerProfiles,
    Encoder,
    PairwiseScores,
    build_profiles,
    calibrate_floors,
    pairwise_scores,
    sentence_f1,
    to_likert,
)
from distill_kit.rse.responses import (  # noqa: F401
    AlignReport,
    ResponseSet,
    align_responses,
    answered_line,
    collect_responses,
    gather_responses,
)
from distill_kit.rse.scores import long_scores, matrices, rse_table  # noqa: F401


def replay_responses(name: str, models: Sequence[str] | None = None) -> pl.DataFrame:
    """``datasets.load_responses(name, models, keep_empty=True)`` (published answers, empty ones kept) with the
    text also under its old name ``response``, for callers not yet moved to the response schema."""
    from distill_kit.datasets import load_responses

    return load_responses(name, models, keep_empty=True).with_columns(pl.col("text").alias("response"))
