"""Scores and their uncertainty: every share and mean distill-kit reports carries a 95% interval."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from distill_kit.stats import wilson_ci

if TYPE_CHECKING:  # annotations only: importing the module must not import polars
    import polars as pl

    from distill_kit import stats

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
#     stratum's label rate) turns the target's scores into a prevalence. Which one (or the mean of which few) is
#     chosen on the pool alone (leave one pool model out), never on the target, by a selection rule that is
#     itself chosen nested (leave one more pool model out); the interval is the spread of the whole
#     procedure's errors on the pool models.
#   * with k labelled answers of the target, drawn by ``label_plan`` (stratified by judge confidence, more
#     where the judge is unsure) or at random: stratified prediction-powered inference on the calibrated
#     per-answer score, unbiased however the judge errs, with a valid 95% interval.

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
        return stats.quantify_prevalence(method, np.zeros(0), np.zeros(0, dtype=bool), target[prob].to_numpy())
    cal_p, cal_y = pool[prob].to_numpy(), pool[label].to_numpy().astype(bool)
    if not strata:
        return stats.quantify_prevalence(method, cal_p, cal_y, target[prob].to_numpy())
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


#: How the k = 0 estimate is chosen from the candidates' errors on the pool's models (each held out in turn):
#: one candidate by the smallest mean / max / RMS / median error, the mean of the n best by mean (or RMS)
#: error, or the smallest mean / RMS error once EM-SLD and PACC (which diverge on some models) are left out.
#: ``select_quantifier`` picks the rule itself nested: each pool model held out, the rule applied to the
#: others' errors, the rule with the smallest mean error on the held-out pool models wins.
SELECTION_RULES: tuple[str, ...] = ("mean", "max", "rms", "median", "top2", "top3", "top5", "rms-top3",
                                    "mean-stable", "rms-stable")


def _rule_pick(errors: dict[str, np.ndarray], rule: str) -> list[str]:
    """The candidate names a selection rule picks from their signed errors on some pool models."""
    def mean(c: str) -> float:
        return float(np.mean(np.abs(errors[c])))

    def rms(c: str) -> float:
        return float(np.sqrt(np.mean(np.square(errors[c]))))

    names = list(errors)
    stable = [c for c in names if not c.startswith(("sld", "pacc"))] or names
    if rule in ("mean", "max", "rms", "median"):
        key = {"mean": mean, "rms": rms, "max": lambda c: float(np.max(np.abs(errors[c]))),
               "median": lambda c: float(np.median(np.abs(errors[c])))}[rule]
        return [min(names, key=key)]
    if rule.startswith("top"):
        return sorted(names, key=mean)[:int(rule[3:])]
    if rule == "rms-top3":
        return sorted(names, key=rms)[:3]
    if rule in ("mean-stable", "rms-stable"):
        return [min(stable, key=mean if rule == "mean-stable" else rms)]
    raise ValueError(f"unknown selection rule {rule!r}; one of {', '.join(SELECTION_RULES)}")


class _PoolErrors:
    """Every candidate's error on a pool model held out from a pool with some models removed, memoised.

    Why a class: the nested choice of a selection rule needs each candidate's error on model i with models
    {i, j} removed, for every pair -- hundreds of quantifications -- and a row's strata (its confidence bin,
    language, claimed maker) do not depend on which rows are calibrating, so they are computed once here.
    """

    def __init__(self, pool: "pl.DataFrame", score: str, candidates: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        self.score = score
        self.prob = pool[f"{score}_prob"].to_numpy().astype(float)
        self.label = pool[f"{score}_label"].to_numpy().astype(bool)
        self.model = np.asarray(pool["model"].to_list())
        self.models = pool["model"].unique(maintain_order=True).to_list()
        self.candidates = {quantifier_name(m, st): (m, tuple(st)) for m, st in candidates}
        self.strata = {st: np.asarray(_strata(pool, st, f"{score}_prob")) for _, st in self.candidates.values() if st}
        self.truth = {m: float(self.label[self.model == m].mean()) for m in self.models}
        self._memo: dict[tuple[frozenset[str], str, str], float] = {}

    def error(self, removed: frozenset[str], target: str, name: str) -> float:
        """Candidate ``name``'s signed error on ``target``, calibrated on the pool less ``removed`` and ``target``."""
        from distill_kit import stats

        key = (removed, target, name)
        if key not in self._memo:
            method, strata = self.candidates[name]
            t = self.model == target
            c = ~np.isin(self.model, [*removed, target])
            if method in ("cc", "pcc") or not strata:
                est = stats.quantify_prevalence(method, self.prob[c], self.label[c], self.prob[t])
            else:
                s = self.strata[strata]
                est = stats.stratified_prevalence(method, s[c], self.prob[c], self.label[c], s[t], self.prob[t])
            self._memo[key] = est - self.truth[target]
        return self._memo[key]

    def table(self, removed: frozenset[str]) -> dict[str, np.ndarray]:
        """{candidate: its errors on each pool model not in ``removed``, that model held out too}."""
        left = [m for m in self.models if m not in removed]
        return {name: np.array([self.error(removed, m, name) for m in left]) for name in self.candidates}


#: Bump when the code of the choice changes (its results are cached: ``ice.calibration.pool_choices``).
CHOICE_VERSION = 1


def select_quantifier(pool: "pl.DataFrame", score: str = "loose",
                      candidates: Sequence[tuple[str, tuple[str, ...]]] = QUANTIFIERS,
                      rules: Sequence[str] = SELECTION_RULES) -> dict[str, Any]:
    """Choose the label-free estimate for a model outside ``pool`` from the pool alone (the target's labels never
    pick the method): each candidate is scored on every pool model held out in turn, and a selection rule
    turns those errors into a choice (one candidate, or the mean of a few). With several ``rules``, the rule
    too is chosen *nested*: each pool model j held out, every rule picks from the other pool models' errors
    (their rates estimated without j), and the rule whose picks err least on the held-out j's, on average,
    wins; its errors on those j's are the errors of the whole procedure, and they, not the (optimistic) errors
    of the candidates it picked, give the interval (``stats.shift_interval``). With one rule (e.g. ``("mean",)``,
    the earlier behaviour) the errors are those of the picked candidates.

    Returns ``{"name", "members" [(method, strata)], "method", "strata" (the first member), "rule",
    "errors" {pool model: signed error}, "mae", "table" [per candidate], "rules" [per rule]}``."""
    return _select(_pool_errors(pool, score, candidates, rules), frozenset(), rules)


def select_quantifiers_held_out(pool: "pl.DataFrame", score: str = "loose",
                                candidates: Sequence[tuple[str, tuple[str, ...]]] = QUANTIFIERS,
                                rules: Sequence[str] = SELECTION_RULES) -> dict[str, dict[str, Any]]:
    """``select_quantifier`` for each model of ``pool`` as the target, on the pool less that model --
    ``{model: selection}``. The same choices as calling it on each reduced pool, computed together (the
    nested errors of one target's pool are largely another's), so about half the quantifications."""
    errs = _pool_errors(pool, score, candidates, rules)
    return {m: _select(errs, frozenset([m]), rules) for m in errs.models}


def _pool_errors(pool: "pl.DataFrame", score: str, candidates: Sequence[tuple[str, tuple[str, ...]]],
                 rules: Sequence[str]) -> "_PoolErrors":
    import polars as pl

    for r in rules:
        _rule_pick({"cc": np.zeros(1)}, r)  # unknown rule names fail before any work
    pool = pool.filter(pl.col(f"{score}_label").is_not_null())  # a model whose labels are unknown cannot calibrate
    return _PoolErrors(pool, score, candidates)


def _select(errs: "_PoolErrors", removed: frozenset[str], rules: Sequence[str]) -> dict[str, Any]:
    """The nested choice of ``select_quantifier`` on the pool less ``removed``."""
    models = [m for m in errs.models if m not in removed]
    if len(models) < 2:
        raise ValueError("choosing a quantifier needs a calibration pool of at least two models")
    outer = errs.table(removed)
    per_rule: dict[str, dict[str, float]] = {}
    if len(rules) > 1 and len(models) >= 3:
        for j in models:
            inner = errs.table(removed | {j})
            for r in rules:
                picks = _rule_pick(inner, r)
                per_rule.setdefault(r, {})[j] = float(np.mean([outer[c][models.index(j)] for c in picks]))
        rule = min(rules, key=lambda r: float(np.mean(np.abs(list(per_rule[r].values())))))
    else:
        rule = rules[0]
    picks = _rule_pick(outer, rule)
    errors = per_rule.get(rule) or {m: float(np.mean([outer[c][i] for c in picks])) for i, m in enumerate(models)}
    members = [errs.candidates[c] for c in picks]
    name = picks[0] if len(picks) == 1 else f"mean of {', '.join(picks)}"
    return {"name": name, "members": members, "method": members[0][0], "strata": members[0][1], "rule": rule,
            "errors": errors, "mae": float(np.mean(np.abs(list(errors.values())))),
            "table": [{"name": c, "mae": float(np.mean(np.abs(e)))} for c, e in outer.items()],
            "rules": [{"rule": r, "mae": float(np.mean(np.abs(list(v.values()))))} for r, v in per_rule.items()]}


#: Judge-confidence strata of a labelled sample (cut on the loose probability; the same strata for LIS and SIS,
#: as one labelled answer carries both labels). Fixed before any measurement; coarse enough that 25 labels give
#: a few per stratum.
LABEL_STRATA_EDGES: tuple[float, ...] = (0.05, 0.2, 0.5, 0.8, 0.95)


def label_strata(target: "pl.DataFrame") -> np.ndarray:
    """Ordered stratum code of every answer of ``target`` for a labelled sample: its loose-probability bin."""
    return np.searchsorted(np.asarray(LABEL_STRATA_EDGES), target["loose_prob"].to_numpy(), side="right")


def label_allocation(target: "pl.DataFrame", pool: "pl.DataFrame", k: int) -> dict[int, int]:
    """How many of ``k`` labels to draw in each judge-confidence stratum of ``target`` (``label_strata``):
    Neyman allocation by the spread of the pool-calibrated loose score in the stratum. Uses no label of
    the target."""
    import polars as pl

    from distill_kit import stats

    codes = label_strata(target)
    f = calibrated_scores(pool.filter(pl.col("loose_label").is_not_null()), target, "loose")
    hs = np.unique(codes)
    rate = np.array([f[codes == h].mean() for h in hs])
    alloc = stats.neyman_allocation(np.array([(codes == h).sum() for h in hs]), np.sqrt(rate * (1 - rate)), k)
    return dict(zip(hs.tolist(), alloc.tolist()))


def label_plan(target: "pl.DataFrame", pool: "pl.DataFrame", k: int, seed: int = 0) -> list[str]:
    """Which ``k`` of the target's answers to label (their ``key``s): a stratified draw over judge-confidence
    strata with ``label_allocation`` (more labels where the judge is unsure), seeded. Labels of a simple random
    sample are fine too (post-stratified by ``corrected_identity_score``), just less informative for the same k."""
    from distill_kit import stats

    if k <= 0:
        return []
    idx = stats.stratified_sample(label_strata(target), label_allocation(target, pool, k), np.random.default_rng(seed))
    keys = target["key"].cast(str).to_list()
    return [keys[i] for i in idx]


def corrected_identity_score(target: "pl.DataFrame", pool: "pl.DataFrame", score: str = "loose",
                             labels: "pl.DataFrame | None" = None, selection: dict[str, Any] | None = None,
                             level: float = 0.95) -> "stats.Estimate":
    """The corrected LIS (``score="loose"``) or SIS (``"strict"``) of one model.

    ``target``: that model's answers with the judge's ``loose_prob``/``strict_prob`` and the stratum columns
    (``language``, ``claimed``, ``template_id``); ``pool``: held-out judge scores and labels of other models
    (``distill_kit.ice.calibration.pool``). ``labels``: trusted labels of some of the target's answers, a frame
    ``(model, key, loose_label, strict_label)`` joined on ``key`` (``target`` needs a ``key`` column) -- with
    at least one, the estimate is stratified prediction-powered (``stats.stratified_ppi_mean`` over
    judge-confidence strata on the pool-calibrated scores: unbiased, valid interval, provided the labelled
    answers are a random sample within each stratum, as ``label_plan`` draws them or a simple random sample
    is); without, it is the label-free estimate ``select_quantifier`` chose on the pool, with an interval
    from the errors of that choice on the pool's models.
    """
    import polars as pl

    from distill_kit import stats

    label = f"{score}_label"
    pool = pool.filter(pl.col(label).is_not_null())  # unknown labels (never re-judged upstream) cannot calibrate
    if labels is not None and labels.height:
        if "key" not in target.columns or "key" not in labels.columns:
            raise ValueError("labels are matched to answers by a 'key' column in both frames")
        keys = target["key"].cast(str).to_list()
        known = dict(zip(labels["key"].cast(str).to_list(), labels[label].to_list()))
        idx = np.array([i for i, k in enumerate(keys) if known.get(k) is not None], dtype=int)
        if idx.size:
            f = calibrated_scores(pool, target, score)
            y = np.array([bool(known[keys[i]]) for i in idx])
            return stats.stratified_ppi_mean(y, idx, f, label_strata(target), level=level)
    sel = selection or select_quantifier(pool, score)
    members = sel.get("members") or [(sel["method"], sel["strata"])]
    value = float(np.mean([quantify(m, st, pool, target, score) for m, st in members]))
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
        # ties broken by name: group_by's order changes from run to run, and so would the pairs compared
        means = (data.group_by(model_col).agg(pl.col(score).mean())
                 .sort([score, model_col], descending=[True, False])[model_col].to_list())
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
