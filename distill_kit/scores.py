"""Scores and their uncertainty: every share and mean distill-kit reports carries a 95% interval."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion; sane at 0/n and n/n where the normal interval collapses."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= k <= n:
        raise ValueError(f"wilson_ci needs 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_ci(values: Sequence[float] | np.ndarray, stat: Callable[[np.ndarray], float] = np.mean,
                 n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat``; for means of bounded scores such as 1-5 similarities."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return (math.nan, math.nan)
    if arr.size == 1:
        return (float(arr[0]), float(arr[0]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    if stat is np.mean:
        stats = arr[idx].mean(axis=1)
    else:
        stats = np.array([stat(arr[row]) for row in idx])
    alpha = (1 - level) / 2
    return (float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)))


def stratified_bootstrap_ci(groups: Sequence[np.ndarray], n_boot: int = 2000, seed: int = 0,
                            level: float = 0.95) -> tuple[float, float]:
    """Interval of the mean of group means, resampling within each group (e.g. one group per prompt set)."""
    groups = [np.asarray(g, dtype=float) for g in groups if np.size(g)]
    if not groups:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    boots = np.zeros(n_boot)
    for g in groups:
        boots += g[rng.integers(0, g.size, size=(n_boot, g.size))].mean(axis=1)
    boots /= len(groups)
    alpha = (1 - level) / 2
    return (float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha)))


# ---------------------------------------------------------------- ICE: Loose / Strict Identity Scores (issue 3)

def identity_scores(frame: "pl.DataFrame", by: Sequence[str] = ("model",), loose_col: str = "pred_loose",
                    strict_col: str = "pred_strict", z: float = 1.96) -> "pl.DataFrame":
    """LIS / SIS per group with Wilson 95% intervals.

    LIS = share of judged answers that contradict the true identity; SIS = share claiming an OpenAI /
    Anthropic / ChatGPT / Claude identity. Unparseable verdicts (null) are left out of ``n`` and counted
    in ``n_unjudged`` so they are never silently scored as 0.
    """
    import polars as pl

    missing = [c for c in (*by, loose_col, strict_col) if c not in frame.columns]
    if missing:
        raise ValueError(f"identity_scores: frame lacks column(s) {missing}")
    rows = []
    for key, g in frame.group_by(list(by), maintain_order=True):
        key = key if isinstance(key, tuple) else (key,)
        lo = g[loose_col].drop_nulls()
        st = g[strict_col].drop_nulls()
        k_l, n_l = int(lo.sum()), lo.len()
        k_s, n_s = int(st.sum()), st.len()
        l_lo, l_hi = wilson_ci(k_l, n_l, z)
        s_lo, s_hi = wilson_ci(k_s, n_s, z)
        rows.append({**dict(zip(by, key)), "n": n_l, "n_unjudged": g.height - n_l,
                     "lis": k_l / n_l if n_l else math.nan, "lis_lo": l_lo, "lis_hi": l_hi,
                     "sis": k_s / n_s if n_s else math.nan, "sis_lo": s_lo, "sis_hi": s_hi})
    return pl.DataFrame(rows).sort(list(by)) if rows else pl.DataFrame()


def identity_breakdowns(frame: "pl.DataFrame", loose_col: str = "pred_loose", strict_col: str = "pred_strict",
                        dims: Sequence[str] = ("template", "language", "category")) -> dict[str, "pl.DataFrame"]:
    """LIS/SIS per model and each of ``dims`` (columns that are absent are skipped)."""
    return {d: identity_scores(frame, ("model", d), loose_col, strict_col) for d in dims if d in frame.columns}


def agreement(pred: Sequence[bool], gold: Sequence[bool]) -> dict[str, float]:
    """Accuracy and Cohen's kappa of binary verdicts against reference labels."""
    p = np.asarray(pred, dtype=bool)
    g = np.asarray(gold, dtype=bool)
    if p.shape != g.shape or p.size == 0:
        raise ValueError("agreement needs two non-empty sequences of the same length")
    acc = float((p == g).mean())
    pe = float(p.mean() * g.mean() + (1 - p.mean()) * (1 - g.mean()))
    kappa = 1.0 if pe == 1.0 else (acc - pe) / (1 - pe)
    return {"n": int(p.size), "accuracy": acc, "kappa": float(kappa)}
