"""Which prompts lineage compares models on: the shared ones, a seeded sample, and the fit/score split.

Why one module: every lineage result is only comparable across models on prompts they all answered,
and nothing may be tuned on the answers it scores. So prompts are chosen once (:func:`common_prompts`,
a seeded :func:`distill_kit.datasets.sample_prompts`) and cut once into a *fit* part (vocabularies, classifiers) and a *score* part
(students compared with candidates) by :func:`split_prompts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from distill_kit.datasets import sample_prompts


def common_prompts(frame: pl.DataFrame, models: Sequence[str] | None = None) -> list[str]:
    """Prompts answered by every model in ``models`` (default: all models of ``frame``), sorted.

    ``frame`` holds one answer per row (``model``, ``prompt``); empty answers are already dropped
    (:func:`distill_kit.datasets.as_responses`)."""
    models = list(models) if models is not None else sorted(frame["model"].unique().to_list())
    sub = frame.filter(pl.col("model").is_in(models))
    counts = sub.group_by("prompt").agg(pl.col("model").n_unique().alias("n"))
    return sorted(counts.filter(pl.col("n") == len(models))["prompt"].to_list())


def split_prompts(
    prompts: Sequence[str], fit_fraction: float = 0.5, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Shuffle ``prompts`` with ``seed`` and cut into (fit, score) parts."""
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must be between 0 and 1, got {fit_fraction}")
    uniq = sorted(set(prompts))
    if len(uniq) < 4:
        raise ValueError(f"need at least 4 distinct prompts to split, got {len(uniq)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    n_fit = min(max(2, int(round(fit_fraction * len(uniq)))), len(uniq) - 2)
    fit = [uniq[i] for i in order[:n_fit]]
    score = [uniq[i] for i in order[n_fit:]]
    return fit, score


def attribution_prompts(shared: Sequence[str], embedded: Sequence[str], sample_size: int, seed: int = 0) -> list[str]:
    """Prompts for attribution and the author classifier: a seeded sample of ``shared`` (0 = all) plus
    every ``embedded`` (mapped) prompt, so the embedding signal has score prompts to compare on."""
    return sorted(set(embedded) | set(sample_prompts(shared, sample_size, seed)))


def answers_on(frame: pl.DataFrame, models: Sequence[str], prompts: Sequence[str]) -> pl.DataFrame:
    """The rows of ``frame`` where one of ``models`` answers one of ``prompts`` (e.g. the ones to embed)."""
    return frame.filter(pl.col("model").is_in(list(models)) & pl.col("prompt").is_in(list(prompts)))
