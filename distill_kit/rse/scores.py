"""RSE results: model x model matrices and per-prompt long scores from the offline judge's pairwise scores,
and the paper's RSE table (one row per test model, one column per prompt set + the mean, bootstrap CIs).

``rse_table`` takes per-prompt 1-5 scores from either judge (``long_scores`` here or the LLM judge's
frame in :mod:`distill_kit.rse.llm_judge`), so both judges end in the same table.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from distill_kit.rse.offline_judge import PairwiseScores


def matrices(scores: PairwiseScores, likert: bool = True) -> dict[str, pl.DataFrame]:
    """Model x model matrix per granularity (+ ``overall``): mean over prompts both answered.

    Each frame has a ``model`` column (row = test model) and one column per model (reference).
    """
    out: dict[str, pl.DataFrame] = {}
    names = scores.granularities + (["overall"] if likert else [])
    for g in names:
        arr = scores.likert(g) if likert else scores.sims[g]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (no shared prompt) stay NaN
            mat = np.nanmean(arr, axis=2)
        frame = pl.DataFrame({m: mat[:, k] for k, m in enumerate(scores.models)})
        out[g] = frame.insert_column(0, pl.Series("model", scores.models))
    return out


def long_scores(
    scores: PairwiseScores,
    reference: str | None = None,
    prompts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per-prompt 1-5 scores of test models against ``reference`` (or every ordered pair when None)
    -> ``prompt_set, prompt_id, test_model, reference, style, structure, content, overall``.

    Rows where either answer is missing are dropped. ``prompts`` (``prompt_id, prompt_set``)
    supplies the prompt-set label; without it the column is ``"prompts"``.
    """
    mi = {m: i for i, m in enumerate(scores.models)}
    if reference is not None and reference not in mi:
        raise ValueError(f"reference {reference!r} has no aligned answers; models: {', '.join(scores.models)}")
    refs = [reference] if reference else scores.models
    lik = {g: scores.likert(g) for g in scores.granularities + ["overall"]}
    parts = []
    for ref in refs:
        b = mi[ref]
        for test in scores.models:
            a = mi[test]
            cols = {g: lik[g][a, b] for g in lik}
            keep = ~np.isnan(cols["overall"])
            if not keep.any():
                continue
            parts.append(
                pl.DataFrame(
                    {
                        "prompt_id": np.array(scores.prompt_ids, dtype=object)[keep].tolist(),
                        "test_model": [test] * int(keep.sum()),
                        "reference": [ref] * int(keep.sum()),
                        **{g: cols[g][keep] for g in cols},
                    }
                )
            )
    if not parts:
        return pl.DataFrame()
    df = pl.concat(parts)
    if prompts is not None:
        labels = prompts.select("prompt_id", "prompt_set").unique(subset="prompt_id", keep="first")
        df = df.join(labels, on="prompt_id", how="left")
    else:
        df = df.with_columns(pl.lit("prompts").alias("prompt_set"))
    return df.select("prompt_set", "prompt_id", "test_model", "reference", *lik.keys())


def rse_table(
    scores: pl.DataFrame,
    score: str = "overall",
    prompt_sets: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> pl.DataFrame:
    """The paper's RSE table: one row per test model, one column per prompt set + ``mean``.

    ``scores``: per-prompt 1-5 scores (``long_scores`` or the LLM judge's frame) with columns
    ``prompt_set, test_model`` and ``score``; null/NaN scores (unparseable verdicts) are left out
    and counted in ``n_<set>``. Each cell is the mean with a 95% bootstrap CI over prompts
    (``<set>_lo``, ``<set>_hi``); ``mean`` is the mean of the set columns (the paper's Avg) with a
    stratified bootstrap CI, null when the model lacks a set (a partial mean would not compare).
    Rows are sorted by ``mean``, highest first.
    """
    from distill_kit.stats import bootstrap_ci, stratified_bootstrap_ci

    need = {"prompt_set", "test_model", score}
    if not need <= set(scores.columns):
        raise ValueError(f"scores need columns {', '.join(sorted(need))}; got {', '.join(scores.columns)}")
    clean = scores.filter(pl.col(score).is_not_null() & pl.col(score).is_not_nan())
    sets = list(prompt_sets) if prompt_sets else scores["prompt_set"].unique(maintain_order=True).to_list()
    rows = []
    for test in scores["test_model"].unique(maintain_order=True).to_list():
        row: dict[str, Any] = {"test_model": test}
        groups = []
        for s in sets:
            v = clean.filter((pl.col("test_model") == test) & (pl.col("prompt_set") == s))[score].to_numpy()
            row[f"n_{s}"] = int(v.size)
            if v.size == 0:
                row[s] = row[f"{s}_lo"] = row[f"{s}_hi"] = None
                continue
            groups.append(v.astype(float))
            row[s] = float(v.mean())
            lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed)
            row[f"{s}_lo"], row[f"{s}_hi"] = float(lo), float(hi)
        if groups and len(groups) == len(sets):
            row["mean"] = float(np.mean([g.mean() for g in groups]))
            row["mean_lo"], row["mean_hi"] = stratified_bootstrap_ci(groups, n_boot=n_boot, seed=seed)
        else:
            row["mean"] = row["mean_lo"] = row["mean_hi"] = None
        rows.append(row)
    schema: dict[str, Any] = {"test_model": pl.Utf8}
    for s in sets:
        schema.update({s: pl.Float64, f"{s}_lo": pl.Float64, f"{s}_hi": pl.Float64, f"n_{s}": pl.Int64})
    schema.update({"mean": pl.Float64, "mean_lo": pl.Float64, "mean_hi": pl.Float64})
    return pl.DataFrame(rows, schema=schema).sort("mean", descending=True, nulls_last=True)


def rse_by_granularity(scores: pl.DataFrame, prompt_sets: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
    """The RSE table's mean (with CI) per granularity the scores hold: ``{granularity: test_model, mean,
    mean_lo, mean_hi}`` (the LLM judge's aspects and the offline judge's granularities share names)."""
    from distill_kit.rse.offline_judge import GRANULARITIES

    return {g: rse_table(scores, score=g, prompt_sets=prompt_sets).select("test_model", "mean", "mean_lo", "mean_hi")
            for g in GRANULARITIES if g in scores.columns}


def rse_by_reference(scores: PairwiseScores, table: pl.DataFrame, reference: str, references: Sequence[str],
                     prompts: pl.DataFrame | None = None,
                     prompt_sets: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Overall RSE of every test model against each reference, for the verdict table of the report:
    ``reference`` -> rows of its ``table``; every other reference of ``references`` with aligned answers ->
    its offline table (each reference left out of its own rows). Rows are ``test_model, mean, mean_lo, mean_hi``."""
    cols = ("test_model", "mean", "mean_lo", "mean_hi")
    out = {reference: table.select(cols).to_dicts()}
    for ref in references:
        if ref != reference and ref in scores.models:
            long = long_scores(scores, reference=ref, prompts=prompts).filter(pl.col("test_model") != ref)
            out[ref] = rse_table(long, score="overall", prompt_sets=prompt_sets).select(cols).to_dicts()
    return out


def closest_model(table: pl.DataFrame, fallback: str) -> str:
    """The test model most like the reference (the RSE table's first row), or ``fallback`` for an empty table."""
    return table["test_model"][0] if table.height else fallback


def compare_pairs(specs: Sequence[str]) -> list[tuple[str, str]] | None:
    """Model pairs to test from ``"a:b"`` strings; None (= neighbours in the ranking) when there are none."""
    pairs = []
    for spec in specs:
        a, sep, b = str(spec).partition(":")
        if not sep or not a.strip() or not b.strip():
            raise ValueError(f"compare: {spec!r} is not a pair 'model_a:model_b'")
        pairs.append((a.strip(), b.strip()))
    return pairs or None
