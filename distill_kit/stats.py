"""Estimators a reviewer can trust: prevalence correction, prediction-powered inference, paired tests.

Why this module exists: an identity score (LIS/SIS) is a *prevalence* -- the share of a model's answers
that contradict its identity -- and counting a judge's positives (classify and count) is a biased estimate
of it whenever the judge's two error rates differ. Here live:

* ``Estimate``: a value with its 95% interval, the method that produced it and how many labels it used;
* quantification of a prevalence from judge scores (classify-and-count, probabilistic CC, adjusted CC with
  the calibration sample's uncertainty, and QuaPy's ACC / PACC / EM-SLD, written out for two classes, fed with
  held-out judge posteriors),
  all optionally *stratified* by what is observable at scoring time (language, template, answer type,
  judge-confidence bin), with rates estimated on other models;
* prediction-powered inference (Angelopoulos et al., Science 2023; PPI++ power tuning, Angelopoulos, Duchi
  & Zrnic 2023) in its finite-population form: a few labelled answers of the target model plus the judge on
  all of them give an unbiased score with a valid interval, however biased the judge is; and its stratified
  form (Fisch et al. 2024) with a Neyman-allocated labelled sample over judge-confidence strata, which spends
  the labels where the judge is unsure;
* paired tests on the same prompts (bootstrap interval, sign-flip permutation test, exact McNemar) and the
  Holm correction over a table of comparisons;
* agreement between judges (Krippendorff's alpha, Kendall's W).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A prevalence (or difference) estimate with its 95% interval.

    ``method`` names the estimator (shown next to the number so a reader knows what was corrected and how);
    ``n`` is how many answers were scored, ``n_labels`` how many of them carried a trusted label.
    """

    value: float
    lo: float
    hi: float
    method: str
    n: int
    n_labels: int = 0

    def covers(self, truth: float) -> bool:
        return bool(self.lo - 1e-12 <= truth <= self.hi + 1e-12)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _bool_array(values: Sequence[Any] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{what} must hold booleans or 0/1 values")
        arr = arr.astype(bool)
    return arr


def _prob_array(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.size and (np.isnan(arr).any() or arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{what} must be probabilities in [0, 1] without NaN")
    return arr


# ---------------------------------------------------------------- plain estimators

def classify_and_count(pred: Sequence[bool] | np.ndarray) -> Estimate:
    """Share of positive verdicts with a Wilson interval: what the judge says, not corrected for its errors."""
    p = _bool_array(pred, "pred")
    lo, hi = wilson_ci(int(p.sum()), int(p.size))
    return Estimate(float(p.mean()) if p.size else math.nan, lo, hi, "classify-and-count", int(p.size))


def probabilistic_cc(prob: Sequence[float] | np.ndarray) -> Estimate:
    """Mean positive probability (PCC); unbiased only if the probabilities are calibrated on this model."""
    f = _prob_array(prob, "prob")
    if f.size == 0:
        return Estimate(math.nan, math.nan, math.nan, "probabilistic-cc", 0)
    se = float(f.std(ddof=1) / math.sqrt(f.size)) if f.size > 1 else 0.0
    m = float(f.mean())
    return Estimate(m, _clip01(m - Z95 * se), _clip01(m + Z95 * se), "probabilistic-cc", int(f.size))


def error_rates(pred: Sequence[bool] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> dict[str, float]:
    """True- and false-positive rates of binary verdicts against labels, with the counts they rest on."""
    p, y = _bool_array(pred, "pred"), _bool_array(labels, "labels")
    if p.shape != y.shape:
        raise ValueError("pred and labels must have the same length")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return {"tpr": float(p[y].mean()) if n_pos else math.nan, "fpr": float(p[~y].mean()) if n_neg else math.nan,
            "n_pos": n_pos, "n_neg": n_neg}


def adjusted_cc(pred: Sequence[bool] | np.ndarray, tpr: float, fpr: float, n_pos: int, n_neg: int) -> Estimate:
    """Adjusted classify-and-count (Rogan-Gladen): (cc - fpr) / (tpr - fpr), clipped to [0, 1].

    The interval propagates the sampling error of ``cc`` *and* of the two rates (estimated on ``n_pos``
    positives and ``n_neg`` negatives of a calibration sample) by the delta method, as in "How to Correctly
    Report LLM-as-a-Judge Evaluations" (2025). Valid only when the calibration sample's error rates are the
    target's -- the assumption the benchmark shows breaking across models.
    """
    p = _bool_array(pred, "pred")
    n = int(p.size)
    if n == 0 or not (tpr - fpr) > 1e-6:
        return Estimate(math.nan, math.nan, math.nan, "adjusted-cc", n, n_pos + n_neg)
    q = float(p.mean())
    d = tpr - fpr
    theta = (q - fpr) / d
    var = (q * (1 - q) / n
           + (theta ** 2) * tpr * (1 - tpr) / max(n_pos, 1)
           + ((1 - theta) ** 2) * fpr * (1 - fpr) / max(n_neg, 1)) / d ** 2
    se = math.sqrt(max(var, 0.0))
    return Estimate(_clip01(theta), _clip01(theta - Z95 * se), _clip01(theta + Z95 * se), "adjusted-cc", n,
                    n_pos + n_neg)


# ---------------------------------------------------------------- quantification (QuaPy's estimators, two classes)

QUANTIFICATION_METHODS = ("cc", "pcc", "acc", "pacc", "sld")

#: QuaPy's EMQ defaults: stop when the mean absolute change of the prevalence is below EPSILON (after 10 rounds)
SLD_EPSILON, SLD_MAX_ITER = 1e-4, 1000


def quantify_prevalence(method: str, cal_prob: np.ndarray, cal_labels: np.ndarray, target_prob: np.ndarray,
                        threshold: float = 0.5) -> float:
    """Prevalence of the target by an aggregative quantifier fed with precomputed judge posteriors.

    ``cal_prob``/``cal_labels``: the judge's positive probabilities and the true labels on a calibration set
    (answers of *other* models, scored by a judge that never saw them); ``target_prob``: the judge on the
    target's answers. ``method``: cc, pcc, acc, pacc or sld (EM of Saerens, Latinne & Decaestecker).

    Why not QuaPy itself: these are QuaPy's estimators with the settings used here (ACC and PACC by exact
    inversion, ``solver="exact-cc"``, clipped; EMQ's EM with its defaults), written out for two classes and
    tested equal to QuaPy's on random inputs (``tests/test_quantify_parity.py``). Importing QuaPy imports torch
    (its neural quantifiers), 4 s in every process that scores identity, and each call went through sklearn's
    input validation: about 1.7 ms a call (profiled), tens of thousands of calls in a nested method choice.
    """
    if method not in QUANTIFICATION_METHODS:
        raise ValueError(f"quantification method must be one of {', '.join(QUANTIFICATION_METHODS)}, not {method!r}")
    cal = _prob_array(cal_prob, "cal_prob")
    y = _bool_array(cal_labels, "cal_labels")
    tgt = _prob_array(target_prob, "target_prob")
    if tgt.size == 0:
        return math.nan
    if method == "cc":
        return float((tgt >= threshold).mean())
    if method == "pcc":
        return float(tgt.mean())
    if y.all() or not y.any():
        # a one-class calibration set has no error rates to adjust with: the judge's own probability stands
        return float(tgt.mean())
    if method == "acc":
        return _clip01(_adjusted(_two_class((cal >= threshold).astype(float)), y,
                                 _two_class((tgt >= threshold).astype(float))))
    if method == "pacc":
        return _clip01(_adjusted(_two_class(cal), y, _two_class(tgt)))
    return _clip01(_sld(float(y.mean()), tgt))


def _two_class(positive: np.ndarray) -> np.ndarray:
    """``[n, 2]`` posteriors (negative, positive) from the positive class's, as QuaPy's quantifiers take them."""
    return np.column_stack([1 - positive, positive])


def _adjusted(cal_post: np.ndarray, cal_labels: np.ndarray, target_post: np.ndarray) -> float:
    """QuaPy's ACC / PACC adjustment for two classes (crisp or soft ``[n, 2]`` posteriors): solve ``q = M p``,
    ``M[:, j]`` the mean posterior of the calibration answers of class j and ``q`` the target's, by inversion;
    fall back to ``q`` where ``M`` is singular (``exact-cc``); clip to [0, 1] and renormalise (``norm="clip"``).
    The arithmetic follows QuaPy's step by step (equal to 1e-12 in the parity test). Returns the positive share."""
    m = np.column_stack([cal_post[~cal_labels].mean(axis=0), cal_post[cal_labels].mean(axis=0)])
    q = target_post.mean(axis=0)
    q = q / q.sum()
    try:
        p = np.linalg.solve(m, q)
    except np.linalg.LinAlgError:
        p = q
    p = np.clip(p, 0, 1)
    total = p.sum()
    return float(p[1] / total) if total > 0 else 0.5


def _sld(train_prior: float, target_prob: np.ndarray) -> float:
    """EM-SLD (QuaPy's ``EMQ.EM``): re-weight the posteriors from the calibration prior to the target's own."""
    prior = np.array([1 - train_prior, train_prior])
    if np.prod(prior) == 0:
        prior = (prior + SLD_EPSILON) / (prior + SLD_EPSILON).sum()
    post = _two_class(target_prob)
    qs, previous = prior.copy(), None
    for step in range(SLD_MAX_ITER):
        weighted = (qs / prior) * post
        qs = (weighted / weighted.sum(axis=1, keepdims=True)).mean(axis=0)
        if previous is not None and float(np.abs(qs - previous).mean()) < SLD_EPSILON and step > 10:
            break
        previous = qs
    return float(qs[1])


# ---------------------------------------------------------------- stratified quantification

def stratified_prevalence(method: str, cal_strata: Sequence[Any], cal_prob: np.ndarray, cal_labels: np.ndarray,
                          target_strata: Sequence[Any], target_prob: np.ndarray, min_cal: int = 30) -> float:
    """Quantify within each stratum observable at scoring time, then weight by the target's stratum sizes.

    The assumption moves from "the judge's error rates are the same on every model" to "they are the same
    within a stratum" (e.g. Chinese answers that name no maker). A target stratum with fewer than
    ``min_cal`` calibration answers falls back to the pooled calibration set. ``method`` is one of
    ``QUANTIFICATION_METHODS`` or ``"cal"`` (the calibration set's label rate in the stratum: histogram calibration).
    """
    cs = np.asarray(cal_strata).astype(str)
    ts = np.asarray(target_strata).astype(str)
    cal_prob, tgt = np.asarray(cal_prob, dtype=float), np.asarray(target_prob, dtype=float)
    y = _bool_array(cal_labels, "cal_labels")
    if ts.size == 0:
        return math.nan
    total = 0.0
    for s in np.unique(ts):
        t_idx = ts == s
        c_idx = cs == s
        if c_idx.sum() < min_cal:
            c_idx = np.ones(cs.size, dtype=bool)
        if method == "cal":
            est = float(y[c_idx].mean())
        else:
            est = quantify_prevalence(method, cal_prob[c_idx], y[c_idx], tgt[t_idx])
        total += est * t_idx.sum()
    return float(total / ts.size)


def confidence_bins(prob: Sequence[float] | np.ndarray, edges: Sequence[float] = (0.05, 0.2, 0.4, 0.6, 0.8, 0.95)) -> list[str]:
    """Judge-confidence strata: the positive probability cut at ``edges`` (labels like ``p<0.05``)."""
    f = np.asarray(prob, dtype=float)
    idx = np.searchsorted(np.asarray(edges), f, side="right")
    names = [f"p<{edges[0]}"] + [f"p{edges[i]}-{edges[i + 1]}" for i in range(len(edges) - 1)] + [f"p>={edges[-1]}"]
    return [names[i] for i in idx]


def shift_interval(value: float, shift_errors: Sequence[float], n: int, what: str) -> Estimate:
    """An interval for a label-free estimate whose main error is the *model shift*, not sampling.

    ``shift_errors``: the same estimator's errors on other models held out one at a time (estimated minus
    labelled prevalence). The half-width is 1.96 x sqrt(RMS of those errors^2 + value(1 - value)/n): the spread
    of the error over models (a normal approximation) plus the sampling error of the target's own ``n``
    answers, which dominates for a handful of live answers. Honest about what it is: its coverage is measured
    in the benchmark, not guaranteed.
    """
    e = np.asarray(list(shift_errors), dtype=float)
    e = e[~np.isnan(e)]
    rmse = float(np.sqrt(np.mean(e ** 2))) if e.size else math.nan
    v = _clip01(value)
    half = Z95 * math.sqrt(rmse ** 2 + (v * (1 - v) / n if n > 0 else 0.25))
    return Estimate(_clip01(value), _clip01(value - half), _clip01(value + half), what, n)


# ---------------------------------------------------------------- prediction-powered inference

def ppi_mean(labels: Sequence[bool] | np.ndarray, pred_labelled: Sequence[float] | np.ndarray,
             pred_all: Sequence[float] | np.ndarray, lam: float | None = None, level: float = 0.95,
             finite_population: bool = True) -> Estimate:
    """Prediction-powered mean of a label over all answers from ``k`` labelled ones (PPI++).

    ``pred_all`` is the judge's score (a probability, or a corrected per-answer estimate) on *every* answer
    of the model, ``pred_labelled`` the same scores on the labelled answers (a simple random sample of
    them) and ``labels`` their trusted labels. The estimate mean(lam*f over all) + mean(y - lam*f over
    labelled) is unbiased for the share of positive labels over all answers whatever the judge's errors;
    ``lam`` = None tunes it for power (cov(y, f) / var(f), clipped to [0, 1]; 0 is the labels alone, 1 is
    classic PPI). With ``finite_population`` the target is the model's answers themselves (the share a full
    labelling would give), so the variance carries the finite-population correction (1 - k/N).
    """
    y = _bool_array(labels, "labels").astype(float)
    fl = np.asarray(pred_labelled, dtype=float)
    fa = np.asarray(pred_all, dtype=float)
    k, n = int(y.size), int(fa.size)
    if fl.shape != y.shape:
        raise ValueError("labels and pred_labelled must have the same length")
    if n == 0 or k > n:
        raise ValueError("ppi_mean needs the judge on all answers (pred_all), a superset of the labelled ones")
    if k == 0:
        raise ValueError("ppi_mean needs at least one labelled answer; use a label-free estimator for k = 0")
    if lam is None:
        vf = float(np.var(fl, ddof=1)) if k > 1 else 0.0
        lam = 0.0 if vf <= 1e-12 else float(np.cov(y, fl, ddof=1)[0, 1] / ((1 + k / n) * vf))
        lam = min(1.0, max(0.0, lam))
    resid = y - lam * fl
    value = float(lam * fa.mean() + resid.mean())
    fpc = (1 - k / n) if finite_population else (1 + k / n)
    var_r = float(np.var(resid, ddof=1)) if k > 1 else 0.25
    var = fpc * var_r / k if finite_population else var_r / k + lam ** 2 * float(np.var(fa, ddof=1)) / n
    z = _z(level)
    if lam == 0.0 and k < n:
        # the judge carries no information on these labels (e.g. 25 answers, none positive): the estimate is the
        # labels' share, and a sample without spread must not give a zero-width interval -- use Wilson's
        lo, hi = wilson_ci(int(y.sum()), k, z)
        return Estimate(_clip01(value), min(lo, value), max(hi, value), "labels only (Wilson; judge uninformative)", n, k)
    half = z * math.sqrt(max(var, 0.0))
    return Estimate(_clip01(value), _clip01(value - half), _clip01(value + half), f"PPI++ (lambda={lam:.2f})", n, k)


def neyman_allocation(sizes: Sequence[int] | np.ndarray, sds: Sequence[float] | np.ndarray, k: int,
                      min_per_stratum: int = 2, sd_floor: float = 0.05) -> np.ndarray:
    """How many of ``k`` labels to draw in each stratum: proportional to size x spread (Neyman allocation).

    Why: a label is worth most where the judge is unsure; in a stratum where it is confident (probability
    near 0 or 1) the labels barely vary and a couple suffice. ``sds`` are the strata's expected label spreads
    (sqrt(p(1 - p)) of the calibrated judge score, observable before any label); ``sd_floor`` keeps a
    stratum the judge is wrongly sure about from being starved, ``min_per_stratum`` (capped at the stratum's
    size) lets its variance be estimated. Largest-remainder rounding; the result sums to min(k, total size).
    """
    n = np.asarray(sizes, dtype=int)
    w = n * np.maximum(np.asarray(sds, dtype=float), sd_floor)
    k = int(min(k, n.sum()))
    alloc = np.minimum(np.full(n.size, min_per_stratum), n)
    if alloc.sum() > k:  # fewer labels than strata x minimum: one each to the largest weights first
        alloc = np.zeros(n.size, dtype=int)
        for i in np.argsort(-w, kind="stable")[:k]:
            alloc[i] = 1
        return alloc
    while alloc.sum() < k:
        room = n - alloc
        share = np.where(room > 0, w, 0.0)
        if share.sum() <= 0:
            share = (room > 0).astype(float)
        want = (k - alloc.sum()) * share / share.sum()
        add = np.minimum(np.floor(want).astype(int), room)
        if add.sum() == 0:  # the remainders: one more to the stratum with the largest remainder that has room
            add[int(np.argmax(np.where(room > 0, want - np.floor(want) + 1e-9, -1.0)))] = 1
        alloc = alloc + add
    return alloc


def stratified_sample(strata: Sequence[Any] | np.ndarray, allocation: Mapping[Any, int],
                      rng: np.random.Generator) -> np.ndarray:
    """Indices of a stratified random sample: ``allocation[h]`` drawn without replacement within stratum h."""
    s = np.asarray(strata)
    parts = [rng.choice(np.where(s == h)[0], int(a), replace=False) for h, a in allocation.items() if a > 0]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=int)


def _merge_thin_strata(codes: np.ndarray, labelled: np.ndarray, min_labels: int) -> np.ndarray:
    """Ordered stratum codes with every stratum holding >= ``min_labels`` labelled answers: a thin stratum is
    merged into its neighbour (the next one up, or down at the top), as the strata are confidence bins."""
    s = codes.copy()
    while True:
        u = np.unique(s)
        if u.size <= 1:
            return s
        counts = np.array([int((s[labelled] == h).sum()) for h in u])
        thin = np.where(counts < min_labels)[0]
        if thin.size == 0:
            return s
        i = int(thin[0])
        s[s == u[i]] = u[i + 1] if i + 1 < u.size else u[i - 1]


def stratified_ppi_mean(labels: Sequence[bool] | np.ndarray, labelled: Sequence[int] | np.ndarray,
                        pred_all: Sequence[float] | np.ndarray, strata_all: Sequence[int] | np.ndarray,
                        level: float = 0.95, min_labels: int = 2) -> Estimate:
    """Stratified prediction-powered mean (Fisch et al. 2024, "Stratified Prediction-Powered Inference"):
    PPI++ within each stratum, the strata's estimates weighted by their sizes.

    ``labelled``: indices (into ``pred_all``) of the answers carrying ``labels``, a random sample *within
    each stratum* -- a stratified draw (e.g. :func:`neyman_allocation`), or a simple random sample
    (post-stratification); ``strata_all``: ordered integer stratum codes of every answer (judge-confidence
    bins), thin strata merged with a neighbour until each has ``min_labels`` labels. Why: the judge's errors
    are concentrated where it is unsure, so labels drawn there (and the variance estimated per stratum)
    buy a much narrower interval than the same number drawn at random, while staying unbiased however the
    judge errs. A stratum whose labels do not vary (all 0, say) would claim zero variance: its variance is
    that of a proportion with half a pseudo-label each way, (y + 0.5) / (k_h + 1), so the interval never
    collapses on a handful of agreeing labels.
    """
    y = _bool_array(labels, "labels").astype(float)
    idx = np.asarray(labelled, dtype=int)
    fa = np.asarray(pred_all, dtype=float)
    codes = np.asarray(strata_all, dtype=int)
    n, k = int(fa.size), int(y.size)
    if idx.shape != y.shape:
        raise ValueError("labels and labelled (their indices) must have the same length")
    if codes.shape != fa.shape:
        raise ValueError("strata_all must give a stratum for every answer of pred_all")
    if k == 0:
        raise ValueError("stratified_ppi_mean needs at least one labelled answer")
    if n == 0 or idx.min() < 0 or idx.max() >= n or np.unique(idx).size != k:
        raise ValueError("labelled must hold distinct indices into pred_all")
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    y_all = np.full(n, np.nan)
    y_all[idx] = y
    s = _merge_thin_strata(codes, mask, min_labels)
    value = var = 0.0
    for h in np.unique(s):
        in_h = s == h
        lab_h = in_h & mask
        n_h, k_h = int(in_h.sum()), int(lab_h.sum())
        yh, fl, fh = y_all[lab_h], fa[lab_h], fa[in_h]
        lam = 0.0
        if k_h > 2:
            vf = float(np.var(fl, ddof=1))
            if vf > 1e-12:
                lam = min(1.0, max(0.0, float(np.cov(yh, fl, ddof=1)[0, 1] / ((1 + k_h / n_h) * vf))))
        resid = yh - lam * fl
        est_h = lam * float(fh.mean()) + float(resid.mean())
        if k_h > 1 and float(np.var(yh)) > 0:
            var_h = float(np.var(resid, ddof=1))
        else:  # labels without spread (or one label): a proportion's variance with half a pseudo-label each way
            p = (yh.sum() + 0.5) / (k_h + 1)
            var_h = float(p * (1 - p))
        w = n_h / n
        value += w * est_h
        var += w * w * (1 - k_h / n_h) * var_h / k_h
    half = _z(level) * math.sqrt(max(var, 0.0))
    strata_used = int(np.unique(s).size)
    return Estimate(_clip01(value), _clip01(value - half), _clip01(value + half),
                    f"stratified PPI++ ({strata_used} judge-confidence strata)", n, k)


def _z(level: float) -> float:
    from scipy.stats import norm

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


# ---------------------------------------------------------------- paired tests on the same prompts

@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of A and B on the same items: mean difference A - B, its interval, a p-value."""

    a: str
    b: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    p_value: float
    test: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _paired_arrays(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError("paired tests need the two models scored on the same items (equal lengths)")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], n_boot: int = 5000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float, float]:
    """Mean of a - b over items scored for both, with a percentile bootstrap interval resampling items."""
    x, y = _paired_arrays(a, b)
    d = x - y
    if d.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(d.mean()), float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


def paired_permutation_test(a: Sequence[float], b: Sequence[float], n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided p-value of "A and B score the same on average": random sign flips of the per-item differences."""
    from scipy.stats import permutation_test

    x, y = _paired_arrays(a, b)
    if x.size == 0:
        return math.nan
    if np.allclose(x, y):
        return 1.0
    res = permutation_test((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), permutation_type="samples",
                           n_resamples=n_resamples, alternative="two-sided", random_state=seed, vectorized=True)
    return float(res.pvalue)


def mcnemar_test(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Exact McNemar p-value for two binary verdicts on the same items (binomial test on the discordant pairs)."""
    from scipy.stats import binomtest

    x, y = _bool_array(a, "a"), _bool_array(b, "b")
    if x.shape != y.shape:
        raise ValueError("McNemar needs the two verdicts on the same items (equal lengths)")
    only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def compare_paired(a: Sequence[float], b: Sequence[float], name_a: str = "A", name_b: str = "B",
                   binary: bool = False, seed: int = 0, n_boot: int = 5000, n_resamples: int = 9999) -> PairedResult:
    """Is A different from B on the same items? Bootstrap interval of the mean difference plus a paired test
    (McNemar for binary verdicts, a sign-flip permutation test otherwise)."""
    x, y = _paired_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    diff, lo, hi = paired_bootstrap_ci(x, y, n_boot=n_boot, seed=seed)
    if binary:
        p, test = mcnemar_test(x.astype(bool), y.astype(bool)), "McNemar (exact)"
    else:
        p, test = paired_permutation_test(x, y, n_resamples=n_resamples, seed=seed), "paired permutation"
    return PairedResult(name_a, name_b, int(x.size), float(x.mean()) if x.size else math.nan,
                        float(y.mean()) if y.size else math.nan, diff, lo, hi, p, test)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error control over a table of comparisons)."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def comparison_table(scores: Mapping[str, Sequence[float]], pairs: Iterable[tuple[str, str]] | None = None,
                     binary: bool = False, alpha: float = 0.05, seed: int = 0) -> "Any":
    """Every requested pair (default: all pairs) compared on the same items, Holm-corrected -> polars frame
    with ``a, b, n, mean_a, mean_b, diff, lo, hi, p_value, test, p_holm, significant``."""
    import itertools

    import polars as pl

    names = list(scores)
    chosen = list(pairs) if pairs is not None else list(itertools.combinations(names, 2))
    missing = sorted({m for pr in chosen for m in pr} - set(names))
    if missing:
        raise ValueError(f"comparison_table: no scores for {', '.join(missing)}")
    rows = [compare_paired(scores[a], scores[b], a, b, binary=binary, seed=seed).as_dict() for a, b in chosen]
    if not rows:
        return pl.DataFrame()
    adj = holm([r["p_value"] for r in rows])
    for r, q in zip(rows, adj):
        r["p_holm"] = q
        r["significant"] = bool(q < alpha)
    return pl.DataFrame(rows)


# ---------------------------------------------------------------- agreement between judges

def krippendorff_alpha(ratings: Sequence[Sequence[float]] | np.ndarray, level: str = "interval") -> float:
    """Krippendorff's alpha of several judges (rows) over the same items (columns); NaN marks a missing score."""
    import krippendorff

    data = np.asarray(ratings, dtype=float)
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError("krippendorff_alpha needs a judges x items matrix with at least two judges")
    if np.isfinite(data).sum(axis=0).max(initial=0) < 2:
        return math.nan
    if np.nanmin(data) == np.nanmax(data):
        return 1.0
    if level == "interval":
        return _interval_alpha(data)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def _interval_alpha(data: np.ndarray) -> float:
    """Interval alpha in closed form, the value ``krippendorff.alpha`` gives (to rounding), in O(judges x items).

    Why not the library here: it builds a coincidence matrix per item over every distinct value, an
    ``items x values x values`` array, and continuous scores (the offline judge's) make nearly every value
    distinct: 40 GiB for the paper's 500 Arena-Hard prompts x 5 models. With the squared difference as the
    metric, both disagreements reduce to sums of squares: per item, the sum over ordered pairs of
    ``(a - b)^2`` is ``2 (m sum(v^2) - sum(v)^2)``; alpha = 1 - (n - 1) * sum over items of that / (m - 1),
    over the same sum across all n pairable values.
    """
    x = data - np.nanmean(data)  # centred: the sums of squares below do not cancel catastrophically
    ok = np.isfinite(x)
    m = ok.sum(axis=0)
    keep = m >= 2  # only items with two or more scores are pairable
    x, ok, m = np.where(ok, x, 0.0)[:, keep], ok[:, keep], m[keep]
    s1, s2 = x.sum(axis=0), (x * x).sum(axis=0)
    n = m.sum()
    observed = (2 * (m * s2 - s1 * s1) / (m - 1)).sum()
    expected = 2 * (n * s2.sum() - s1.sum() ** 2)
    return float(1 - (n - 1) * observed / expected) if expected > 0 else math.nan


def kendall_w(ratings: Sequence[Sequence[float]] | np.ndarray) -> float:
    """Kendall's W (coefficient of concordance, tie-corrected) of judges (rows) ranking the same items (columns)."""
    from scipy.stats import rankdata

    data = np.asarray(ratings, dtype=float)
    data = data[:, ~np.isnan(data).any(axis=0)] if data.ndim == 2 else data
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] < 2:
        return math.nan
    m, n = data.shape
    ranks = np.vstack([rankdata(r) for r in data])
    s = float(((ranks.sum(axis=0) - m * (n + 1) / 2) ** 2).sum())
    ties = 0.0
    for r in data:
        _, counts = np.unique(r, return_counts=True)
        ties += float((counts ** 3 - counts).sum())
    denom = m ** 2 * (n ** 3 - n) - m * ties
    return float(12 * s / denom) if denom > 0 else math.nan


__all__ = [
    "Z95", "wilson_ci", "bootstrap_ci", "stratified_bootstrap_ci",
    "Estimate", "classify_and_count", "probabilistic_cc", "error_rates", "adjusted_cc", "quantify_prevalence",
    "stratified_prevalence", "confidence_bins", "shift_interval", "ppi_mean", "neyman_allocation",
    "stratified_sample", "stratified_ppi_mean", "PairedResult",
    "paired_bootstrap_ci", "paired_permutation_test", "mcnemar_test", "compare_paired", "holm",
    "comparison_table", "krippendorff_alpha", "kendall_w", "QUANTIFICATION_METHODS",
]



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
