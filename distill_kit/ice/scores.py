"""Scores and their uncertainty: every share and mean distill-kit reports carries a 95% interval."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from distill_kit.stats import wilson_ci

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


def label_scores(frame: "pl.DataFrame") -> "pl.DataFrame":
    """LIS/SIS of the published GPT-4o-mini labels over the same answers (the reference for our judge)."""
    return identity_scores(frame, loose_col="loose_label", strict_col="strict_label")


def paper_identity_scores() -> "pl.DataFrame":
    """The paper's published LIS/SIS per model, as columns ``model, lis, sis``."""
    from distill_kit import datasets

    return datasets.paper_scores().rename({"loose_identity_score": "lis", "strict_identity_score": "sis"})


def agreement_by_model(judged: "pl.DataFrame") -> "pl.DataFrame":
    """Per model, the judge's agreement with the published labels: ``loose_n, loose_accuracy, loose_kappa,
    strict_accuracy, strict_kappa``, over the answers the judge gave a loose verdict (an unknown strict
    verdict counts as 0, as the labels' strict file does)."""
    import polars as pl

    judged = judged.filter(pl.col("pred_loose").is_not_null())
    return pl.DataFrame([{"model": m, **{f"loose_{k}": v for k, v in agreement(g["pred_loose"], g["loose_label"]).items()},
                          **{f"strict_{k}": v for k, v in agreement(g["pred_strict"].fill_null(False), g["strict_label"]).items()
                             if k != "n"}}
                         for (m,), g in judged.group_by(["model"], maintain_order=True)])


def replay_table(judged: "pl.DataFrame", ours: "pl.DataFrame", labels: "pl.DataFrame",
                 paper: "pl.DataFrame") -> "pl.DataFrame":
    """Notebook 03's replay table: our LIS/SIS with intervals beside the labels' (``lis_labels``), the paper's
    (``lis_paper``, null where the paper has none) and the judge's agreement with the labels."""
    import polars as pl

    return (ours.select("model", "n", "lis", "lis_lo", "lis_hi", "sis", "sis_lo", "sis_hi")
            .join(labels.select("model", pl.col("lis").alias("lis_labels"), pl.col("sis").alias("sis_labels")), on="model")
            .join(paper.select("model", pl.col("lis").alias("lis_paper"), pl.col("sis").alias("sis_paper")), on="model",
                  how="left")
            .join(agreement_by_model(judged).drop("loose_n"), on="model", how="left"))


# ---------------------------------------------------------------- ICE: prevalence-corrected LIS / SIS (issue 12)
#
# A judge's share of positives is a biased LIS whenever its two error rates differ, and they differ from model
# to model. Two corrections, both needing no refit of the judge:
#   * label-free (k = 0): the judge's held-out scores on *other* models (a calibration pool: every answer scored
#     by a judge that never saw its model) give label rates per stratum observable at scoring time (judge
#     confidence bin, language, claimed maker, template); a quantifier (QuaPy's ACC / PACC / EM-SLD, or the
#     stratum's label rate) turns the target's scores into a prevalence. Which one is chosen on the pool alone
#     (leave one pool model out), never on the target; its interval is the spread of its errors on pool models.
#   * with k labelled answers of the target: prediction-powered inference on the calibrated per-answer score,
#     which is unbiased however the judge errs, with a valid 95% interval.

#: (method, strata) pairs tried by ``select_quantifier``; strata are pool/target columns, "conf" = judge-confidence bin.
QUANTIFIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cc", ()), ("pcc", ()), ("acc", ()), ("pacc", ()), ("sld", ()),
    ("cal", ("conf",)), ("cal", ("language", "conf")), ("cal", ("claimed", "conf")),
    ("acc", ("language",)), ("pacc", ("language",)), ("sld", ("language",)),
    ("pacc", ("claimed",)), ("sld", ("claimed",)), ("pacc", ("template_id",)), ("cal", ("template_id", "conf")),
)
CONF_EDGES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95)


def quantifier_name(method: str, strata: Sequence[str]) -> str:
    return method if not strata else f"{method} by {'+'.join(strata)}"


def _strata(frame: "pl.DataFrame", dims: Sequence[str], prob_col: str) -> list[str]:
    from distill_kit import stats

    parts = []
    for d in dims:
        if d == "conf":
            parts.append(stats.confidence_bins(frame[prob_col].to_numpy(), CONF_EDGES))
        elif d in frame.columns:
            parts.append([str(v) for v in frame[d].to_list()])
        else:
            raise ValueError(f"stratum column {d!r} is missing from the frame")
    if not parts:
        return ["all"] * frame.height
    return ["|".join(t) for t in zip(*parts)]


def quantify(method: str, strata: Sequence[str], pool: "pl.DataFrame", target: "pl.DataFrame",
             score: str = "loose") -> float:
    """Prevalence of ``score`` ("loose" or "strict") labels in ``target`` estimated from its judge
    probabilities (column ``{score}_prob``) with rates learned on ``pool`` (which also has ``{score}_label``)."""
    from distill_kit import stats

    prob, label = f"{score}_prob", f"{score}_label"
    if method in ("cc", "pcc"):
        return stats.quapy_prevalence(method, np.zeros(0), np.zeros(0, dtype=bool), target[prob].to_numpy())
    cal_p, cal_y = pool[prob].to_numpy(), pool[label].to_numpy().astype(bool)
    if not strata:
        return stats.quapy_prevalence(method, cal_p, cal_y, target[prob].to_numpy())
    return stats.stratified_prevalence(method, _strata(pool, strata, prob), cal_p, cal_y,
                                       _strata(target, strata, prob), target[prob].to_numpy())


def calibrated_scores(pool: "pl.DataFrame", target: "pl.DataFrame", score: str = "loose",
                      strata: Sequence[str] = ("language", "conf"), min_cal: int = 30) -> np.ndarray:
    """Per-answer calibrated probability: the pool's label rate in the answer's stratum (histogram
    calibration, falling back to confidence bins alone, then to the raw probability, when a stratum is thin)."""
    prob, label = f"{score}_prob", f"{score}_label"
    y = pool[label].to_numpy().astype(float)
    out = target[prob].to_numpy().astype(float).copy()
    done = np.zeros(target.height, dtype=bool)
    for dims in (tuple(strata), ("conf",)):
        ps, ts = np.asarray(_strata(pool, dims, prob)), np.asarray(_strata(target, dims, prob))
        for s in np.unique(ts[~done]):
            c = ps == s
            if c.sum() >= min_cal:
                idx = (ts == s) & ~done
                out[idx] = y[c].mean()
                done |= idx
    return out


def select_quantifier(pool: "pl.DataFrame", score: str = "loose",
                      candidates: Sequence[tuple[str, tuple[str, ...]]] = QUANTIFIERS) -> dict[str, Any]:
    """Choose the quantifier with the smallest mean absolute error over the pool's models, each held out in
    turn (rates from the others). Uses only the pool, so the target's labels never pick the method.

    Returns ``{"method", "strata", "name", "errors" (per pool model, signed), "mae", "table"}``."""
    import polars as pl

    label = f"{score}_label"
    pool = pool.filter(pl.col(label).is_not_null())  # a model whose labels are unknown cannot calibrate
    models = pool["model"].unique(maintain_order=True).to_list()
    if len(models) < 2:
        raise ValueError("choosing a quantifier needs a calibration pool of at least two models")
    results = []
    for method, strata in candidates:
        errs = {}
        for m in models:
            inner_t = pool.filter(pl.col("model") == m)
            inner_p = pool.filter(pl.col("model") != m)
            errs[m] = quantify(method, strata, inner_p, inner_t, score) - float(inner_t[label].mean())
        mae = float(np.mean(np.abs(list(errs.values()))))
        results.append({"method": method, "strata": tuple(strata), "name": quantifier_name(method, strata),
                        "errors": errs, "mae": mae})
    best = min(results, key=lambda r: r["mae"])
    return {**best, "table": [{"name": r["name"], "mae": r["mae"]} for r in results]}


def corrected_identity_score(target: "pl.DataFrame", pool: "pl.DataFrame", score: str = "loose",
                             labels: "pl.DataFrame | None" = None, selection: dict[str, Any] | None = None,
                             level: float = 0.95) -> "stats.Estimate":
    """The corrected LIS (``score="loose"``) or SIS (``"strict"``) of one model.

    ``target``: that model's answers with the judge's ``{score}_prob`` and the stratum columns (``language``,
    ``claimed``, ``template_id``); ``pool``: held-out judge scores and labels of other models (see
    ``benchmarks/identity_heldout.py``). ``labels``: trusted labels of some of the target's answers, a frame
    ``(model, key, loose_label, strict_label)`` joined on ``key`` (``target`` needs a ``key`` column) -- with
    at least one, the estimate is prediction-powered (unbiased, valid interval); without, it is the pool-chosen
    quantifier with an interval from its errors on the pool's models.
    """
    import polars as pl

    from distill_kit import stats

    label = f"{score}_label"
    pool = pool.filter(pl.col(label).is_not_null())  # unknown labels (never re-judged upstream) cannot calibrate
    lab = None
    if labels is not None and labels.height:
        if "key" not in target.columns or "key" not in labels.columns:
            raise ValueError("labels are matched to answers by a 'key' column in both frames")
        keys = target["key"].cast(str).to_list()
        known = dict(zip(labels["key"].cast(str).to_list(), labels[label].to_list()))
        lab = np.array([k in known and known[k] is not None for k in keys])
        if lab.any():
            f = calibrated_scores(pool, target, score)
            y = np.array([bool(known[k]) for k, has in zip(keys, lab) if has])
            est = stats.ppi_mean(y, f[lab], f, level=level)
            return est
    sel = selection or select_quantifier(pool, score)
    value = quantify(sel["method"], sel["strata"], pool, target, score)
    return stats.shift_interval(value, list(sel["errors"].values()), target.height, sel["name"])


# ---------------------------------------------------------------- paired comparisons on the same prompts (issue 12)

def paired_table(frame: "pl.DataFrame", score: str, item: Sequence[str] = ("prompt_id",), model_col: str = "test_model",
                 pairs: Sequence[tuple[str, str]] | None = None, binary: bool = False, alpha: float = 0.05,
                 seed: int = 0) -> "pl.DataFrame":
    """Is A more like the reference (higher ``score``) than B on the same prompts? One row per pair: mean
    difference A - B with a paired bootstrap 95% interval, a paired test (McNemar for binary verdicts, sign-flip
    permutation otherwise) and Holm-adjusted p-values over the whole table.

    ``pairs`` default: neighbours in the ranking by mean score (1st vs 2nd, 2nd vs 3rd, ...), the comparisons a
    reader of a ranked table makes. Only items scored for both models of a pair count.
    """
    import polars as pl

    from distill_kit import stats

    need = [*item, model_col, score]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"paired_table: frame lacks column(s) {missing}")
    data = frame.select(*need).drop_nulls()
    if binary:
        data = data.with_columns(pl.col(score).cast(pl.Float64))
    keys = list(item)
    wide = (data.group_by([*keys, model_col]).agg(pl.col(score).mean())
            .pivot(on=model_col, index=keys, values=score).sort(keys))  # a fixed item order: the bootstrap draws by position
    models = [c for c in wide.columns if c not in keys]
    if pairs is None:
        means = data.group_by(model_col).agg(pl.col(score).mean()).sort(score, descending=True)[model_col].to_list()
        pairs = list(zip(means[:-1], means[1:]))
    unknown = sorted({m for pr in pairs for m in pr} - set(models))
    if unknown:
        raise ValueError(f"paired_table: no {score} scores for {', '.join(unknown)}")
    rows = []
    for a, b in pairs:
        both = wide.select(a, b).drop_nulls()
        if both.height == 0:
            continue
        rows.append(stats.compare_paired(both[a].to_numpy(), both[b].to_numpy(), a, b, binary=binary, seed=seed).as_dict())
    if not rows:
        return pl.DataFrame()
    for r, q in zip(rows, stats.holm([r["p_value"] for r in rows])):
        r["p_holm"] = q
        r["significant"] = bool(q < alpha)
    return pl.DataFrame(rows)
