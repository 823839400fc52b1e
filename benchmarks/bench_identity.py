"""ICE judge benchmark: offline identity judge vs the paper's GPT-4o-mini labels, per published model.

For every model in ``identity/responses/`` of the data directory (DISTILL_KIT_DATA_DIR; whichever of the paper's
14 models, or the user's own, the folder holds):
  * held-out offline judge: fitted on the *other* models' labels (leave-one-model-out), scored on this one;
  * rule-only judge (no fitting at all);
  * LIS two ways: share of answers judged positive (classify and count, the score the package reports) and
    mean positive probability (probability-averaged, a standard quantification estimator);
  * accuracy and Cohen's kappa vs the loose and strict labels; LIS/SIS ours vs labels vs paper_scores.csv;
  * throughput of the offline judge (responses/s, featurise + predict, one process);
  * prevalence-corrected LIS/SIS (issue 12) per held-out model for k = 0, 25, 50, 100, 200 labelled answers of
    that model (fixed seed): labels' score, raw (classify and count), corrected, 95% interval, covered?; then
    mean / max absolute error and coverage per k (plus coverage over 200 further draws of the labelled sample).
    k = 0: the quantifier and the rule choosing it are chosen and calibrated on the other models only
    (``scores.select_quantifier``, the rule nested: leave one pool model out with the selection inside);
    k > 0: the k answers drawn by ``scores.label_plan`` (stratified by judge confidence, Neyman-allocated;
    seeded) and the score stratified prediction-powered (PPI++ per stratum) on the calibrated judge scores.
    Over the 200 further draws the same is measured for a simple random sample of k answers (what random
    clicks give), post-stratified and with plain PPI++. Every label-free candidate is also reported on
    every held-out model, for the record (the measurement the choice rests on).
  * the own-voice maker profile and the foreign-maker test per model (``ice.makers``: which makers its own-voice
    identity claims name, and whether the most-named foreign maker is named more often than the model names
    the other foreign makers, Holm over the models), beside the paper's strict labels; and how well the rule
    layer's claimed maker agrees with the labels (a foreign maker claimed vs loose; OpenAI/Anthropic claimed
    vs strict).
Held-out judge fits are cached (``distill_kit.ice.calibration``), so a re-run takes a few minutes.
Prints readable tables and ends with one line of JSON holding every figure
(``per_model`` with ``maker_profile`` and ``foreign_maker_test``, ``makers``, ``by_k``, ``summary_by_k``,
``candidates``, ``targets``).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import polars as pl

from distill_kit import datasets
from distill_kit.ice import calibration as heldout
from distill_kit.ice import makers, scores
from distill_kit.ice.judges import MAKER_COLUMN, RuleIdentityJudge, claimed_makers, default_offline_judge
from distill_kit.stats import wilson_ci

# ---------------------------------------------------------------- prevalence-corrected LIS / SIS (issue 12)

KS = (0, 25, 50, 100, 200)
REPEATS = 200  # extra labelled-sample draws per model and k, for the coverage rate (the tables use draw 0)


def with_probs(part: pl.DataFrame, probs: tuple[np.ndarray, np.ndarray]) -> pl.DataFrame:
    return part.with_columns(pl.Series("loose_prob", probs[0]), pl.Series("strict_prob", probs[1]))


def pool_for(base: pl.DataFrame, target: str, models: list[str], nested: str) -> pl.DataFrame:
    """Other models' answers scored by a judge that saw neither them nor ``target`` (``nested="pairs"``), or,
    as a cheaper approximation, by the judge fitted without them alone (``"lomo"``: that judge saw ``target``)."""
    parts = []
    for m in models:
        if m == target:
            continue
        probs = heldout.predictions((target, m))[m] if nested == "pairs" else heldout.predictions((m,))[m]
        parts.append(with_probs(base.filter(pl.col("model") == m), probs))
    return pl.concat(parts)


def _draw_estimates(y: np.ndarray, f: np.ndarray, codes: np.ndarray, alloc: dict[int, int], k: int,
                    rng: np.random.Generator) -> dict[str, "stats.Estimate"]:
    """One labelled-sample draw, three ways: the package's stratified draw (``scores.label_plan``'s design) with
    stratified PPI++, and, for what random clicks give, a simple random sample with stratified (post-stratified)
    PPI++ and with plain PPI++."""
    from distill_kit import stats

    idx = stats.stratified_sample(codes, alloc, rng)
    srs = rng.choice(y.size, k, replace=False)
    return {"": stats.stratified_ppi_mean(y[idx], idx, f, codes),
            "srs_": stats.stratified_ppi_mean(y[srs], srs, f, codes),
            "srs_ppi_": stats.ppi_mean(y[srs], f[srs], f)}


def corrected_section(frame: pl.DataFrame, feats: list[dict[str, float]], models: list[str], seed: int,
                      nested: str) -> dict:
    """Per held-out model and k: labels' LIS/SIS, raw (classify and count), corrected, interval, covered."""
    from distill_kit import stats

    base = heldout.strata_frame(frame, feats)
    per_k: dict[str, dict[str, dict]] = {str(k): {} for k in KS}
    draws: dict[str, dict[str, list]] = {str(k): {} for k in KS if k}
    candidates: dict[str, dict[str, list[float]]] = {"loose": {}, "strict": {}}
    chosen: dict[str, dict[str, dict]] = {}
    everyone = pl.concat([with_probs(base.filter(pl.col("model") == m), heldout.predictions((m,))[m]) for m in models])
    # lomo: every pool is "all the others" scored by their own held-out judges, so the nine choices share work
    shared = ({s: scores.select_quantifiers_held_out(everyone, s) for s in ("loose", "strict")}
              if nested == "lomo" else None)
    for m in models:
        target = everyone.filter(pl.col("model") == m)
        pool = pool_for(base, m, models, nested)
        chosen[m] = {}
        sel = {}
        for score in ("loose", "strict"):
            sel[score] = shared[score].get(m) if shared else None
            if sel[score] is None:
                sel[score] = scores.select_quantifier(pool, score)
            chosen[m][score] = {"rule": sel[score]["rule"], "name": sel[score]["name"], "pool_mae": sel[score]["mae"]}
            if target[f"{score}_label"].null_count():  # unknown labels: no candidate can be scored on it
                continue
            truth = float(target[f"{score}_label"].mean())
            for method, strata in scores.QUANTIFIERS:  # every candidate, to show what each would have done
                name = scores.quantifier_name(method, strata)
                candidates[score].setdefault(name, []).append(scores.quantify(method, strata, pool, target, score) - truth)
        f = {s: scores.calibrated_scores(pool.filter(pl.col(f"{s}_label").is_not_null()), target, s)
             for s in ("loose", "strict")}
        codes = scores.label_strata(target)
        for k in KS:
            if k >= target.height:  # a folder with few answers per model: k labels would leave none unlabelled
                continue
            row: dict = {"k": k}
            keys = scores.label_plan(target, pool, k, seed)  # the package's stratified draw, seeded
            labels = target.filter(pl.col("key").is_in(keys)).select("model", "key", "loose_label", "strict_label")
            for score, short in (("loose", "lis"), ("strict", "sis")):
                if target[f"{score}_label"].null_count():  # unknown labels (never re-judged upstream): no truth
                    row.update({f"{short}_labels": None, f"{short}_raw": None, f"{short}_corrected": None,
                                f"{short}_ci": None, f"{short}_error": None, f"{short}_covers": None})
                    continue
                truth = float(target[f"{score}_label"].mean())
                prob = target[f"{score}_prob"].to_numpy()
                raw = stats.classify_and_count(prob >= 0.5 if score == "loose" else
                                               (prob >= 0.5) & (target["loose_prob"].to_numpy() >= 0.5))
                est = scores.corrected_identity_score(target, pool, score, labels=labels if k else None,
                                                      selection=sel[score])
                row.update({f"{short}_labels": truth, f"{short}_raw": raw.value, f"{short}_raw_ci": [raw.lo, raw.hi],
                            f"{short}_corrected": est.value, f"{short}_ci": [est.lo, est.hi],
                            f"{short}_method": est.method, f"{short}_n_labels": est.n_labels,
                            f"{short}_covers": est.covers(truth), f"{short}_error": est.value - truth})
                if not k:
                    row[f"{short}_rule"] = sel[score]["rule"]
            per_k[str(k)][m] = row
            if k:
                alloc = scores.label_allocation(target, pool, k)
                rng = np.random.default_rng(seed + 1)
                for r in range(REPEATS):
                    ys = {s: target[f"{s}_label"].to_numpy() for s in ("loose", "strict")
                          if not target[f"{s}_label"].null_count()}
                    state = rng.bit_generator.state
                    for score, short in (("loose", "lis"), ("strict", "sis")):
                        if score not in ys:
                            continue
                        rng.bit_generator.state = state  # one draw of labelled answers serves both scores
                        y = ys[score]
                        for design, e in _draw_estimates(y, f[score], codes, alloc, k, rng).items():
                            draws[str(k)].setdefault(f"{short}|{design}|{m}", []).append(
                                (e.covers(float(y.mean())), abs(e.value - float(y.mean())), e.hi - e.lo))
    summary: dict[str, dict] = {}
    for k in KS:
        out = {}
        for short in ("lis", "sis"):
            rows = {m: r for m, r in per_k[str(k)].items() if r.get(f"{short}_error") is not None}
            if not rows:
                continue
            err = np.array([abs(r[f"{short}_error"]) for r in rows.values()])
            raw_err = np.array([abs(r[f"{short}_raw"] - r[f"{short}_labels"]) for r in rows.values()])
            out.update({f"{short}_mean_abs_error": float(err.mean()), f"{short}_max_abs_error": float(err.max()),
                        f"{short}_within_0.03": int((err <= 0.03).sum()),
                        f"{short}_coverage": float(np.mean([r[f"{short}_covers"] for r in rows.values()])),
                        f"{short}_raw_mean_abs_error": float(raw_err.mean())})
            if k:
                for design in ("", "srs_", "srs_ppi_"):
                    d = {m: np.array(draws[str(k)][f"{short}|{design}|{m}"]) for m in rows}  # (covers, |err|, width)
                    cov = [v[:, 0].mean() for v in d.values()]
                    allin = np.mean([all(d[m][r, 1] <= 0.03 for m in rows) for r in range(REPEATS)])
                    out.update({f"{short}_{design}coverage_over_draws": float(np.mean(cov)),
                                f"{short}_{design}min_model_coverage_over_draws": float(np.min(cov)),
                                f"{short}_{design}mean_abs_error_over_draws": float(np.mean([v[:, 1].mean() for v in d.values()])),
                                f"{short}_{design}mean_width_over_draws": float(np.mean([v[:, 2].mean() for v in d.values()])),
                                f"{short}_{design}share_within_0.03_over_draws": float(np.mean([(v[:, 1] <= 0.03).mean() for v in d.values()])),
                                f"{short}_{design}all_models_within_0.03_share_of_draws": float(allin),
                                # a share of 200 draws is itself uncertain (two seeds' streams differ by ~0.05)
                                f"{short}_{design}all_models_within_0.03_share_ci":
                                    list(wilson_ci(int(round(allin * REPEATS)), REPEATS))})
        summary[str(k)] = out
    cand = {score: {name: {"mean_abs_error": float(np.mean(np.abs(e))), "max_abs_error": float(np.max(np.abs(e)))}
                    for name, e in c.items()} for score, c in candidates.items()}
    return {"by_k": per_k, "summary_by_k": summary, "candidates": cand, "chosen": chosen, "nested": nested,
            "seed": seed, "repeats": REPEATS}


def targets_met(summary: dict) -> dict:
    """The issue's targets: k = 0 mean error <= 0.02; at some k <= 100 every model within 0.03 and >= 90% covered."""
    out = {}
    for short in ("lis", "sis"):
        ok_k = [k for k in ("25", "50", "100") if f"{short}_max_abs_error" in summary.get(k, {})
                and summary[k][f"{short}_max_abs_error"] <= 0.03 and summary[k][f"{short}_coverage"] >= 0.9]
        out[short] = {"k0_mean_abs_error_le_0.02": summary["0"][f"{short}_mean_abs_error"] <= 0.02,
                      "some_k_le_100_all_within_0.03_and_coverage_ge_0.9": bool(ok_k), "k_meeting_it": ok_k,
                      # one seed can be luck: the share of 200 further draws in which all models are within 0.03
                      "all_within_0.03_share_of_draws": {
                          k: summary[k].get(f"{short}_all_models_within_0.03_share_of_draws") for k in ("25", "50", "100")
                          if k in summary}}
    return out


DESIGNS = (("", "stratified draw"), ("srs_", "random draw"), ("srs_ppi_", "random, plain PPI++"))


def summary_table(summary: dict, short: str) -> pl.DataFrame:
    """One row per k and labelled-sample design: the seed's table (k = 0 and the stratified draw) and the 200 draws."""
    rows = []
    for k, v in summary.items():
        if f"{short}_mean_abs_error" not in v:  # k not run (a folder with fewer answers per model than k)
            continue
        for design, what in DESIGNS if k != "0" else (("", "label-free"),):
            row = {"k": int(k), "design": what}
            if not design:
                row.update({key: v.get(f"{short}_{key}") for key in ("mean_abs_error", "max_abs_error", "within_0.03",
                                                                      "coverage")})
            if k != "0":
                row.update({key: v.get(f"{short}_{design}{key}") for key in (
                    "coverage_over_draws", "min_model_coverage_over_draws", "mean_abs_error_over_draws",
                    "mean_width_over_draws", "all_models_within_0.03_share_of_draws")})
                row["all9_share_ci"] = str([round(x, 3) for x in v[f"{short}_{design}all_models_within_0.03_share_ci"]])
            rows.append(row)
    return pl.DataFrame(rows).with_columns(pl.col(pl.Float64).round(3))


def print_corrected(res: dict) -> None:
    for short, score in (("lis", "loose"), ("sis", "strict")):
        print(f"\n{short.upper()} corrected, per held-out model (k = labelled answers of that model; seed {res['seed']}, "
              f"pool: {res['nested']})")
        rows = []
        for k, per in res["by_k"].items():
            for m, r in per.items():
                if r.get(f"{short}_error") is None:  # unknown labels: nothing to compare with
                    continue
                rows.append({"model": m, "k": int(k), "labels": r[f"{short}_labels"], "raw": r[f"{short}_raw"],
                             "corrected": r[f"{short}_corrected"], "lo": r[f"{short}_ci"][0], "hi": r[f"{short}_ci"][1],
                             "covers": r[f"{short}_covers"], "method": r[f"{short}_method"],
                             "rule": r.get(f"{short}_rule", "")})
        t = pl.DataFrame(rows).with_columns(pl.col(pl.Float64).round(3))
        with pl.Config(tbl_rows=200, tbl_cols=20, tbl_width_chars=200, fmt_str_lengths=40):
            print(t.filter(pl.col("k") == 0).drop("k"))
            print(t.filter(pl.col("k") > 0).drop("rule").sort("model", "k"))
            print(summary_table(res["summary_by_k"], short))
            c = pl.DataFrame([{"quantifier": n, **v} for n, v in res["candidates"][score].items()]).sort("mean_abs_error")
            print("every label-free candidate on every held-out model (for the record; the choice is made on the pool):")
            print(c.with_columns(pl.col(pl.Float64).round(3)))


def maker_section(frame: pl.DataFrame, facts: dict[str, str], paper: dict[str, dict], alpha: float,
                  seed: int = 0) -> dict:
    """The own-voice maker profile and foreign-maker test per model, and the claimed maker against the labels.

    No fitting: the claimed maker is read by the rule layer, so every figure here is as held out as it gets.
    """
    claimed = claimed_makers(frame["response"].to_list(), frame["family"].to_list(), facts)
    judged = frame.with_columns(pl.Series(MAKER_COLUMN, claimed, dtype=pl.String))
    rows = {r["model"]: r for r in makers.maker_rows(judged, alpha=alpha, facts=facts)}
    own = {m: set(r["own_makers"]) for m, r in rows.items()}
    model_col = judged["model"].to_list()
    foreign = np.array([c != makers.NO_MAKER and c not in own[m] for c, m in zip(claimed, model_col)])
    lab = np.array([c in ("openai", "anthropic") and c not in own[m] for c, m in zip(claimed, model_col)])
    loose = np.array(judged["loose_label"].to_list(), dtype=bool)
    strict_known = ~np.array(judged["strict_label"].is_null().to_list())
    strict = np.array(judged["strict_label"].fill_null(False).to_list(), dtype=bool)
    extraction = {"foreign_claim_vs_loose": scores.agreement(foreign, loose),
                  "lab_claim_vs_strict": scores.agreement(lab[strict_known], strict[strict_known])}
    for m, r in rows.items():
        i = np.array(model_col) == m
        p = paper.get(m, {})
        r.update(sis_labels=None if not strict_known[i].all() else float(strict[i].mean()),
                 lis_labels=float(loose[i].mean()), sis_paper=p.get("strict_identity_score"),
                 lab_claim_share=float(lab[i].mean()), foreign_claim_share=float(foreign[i].mean()))
    reps = 2000
    calibration = maker_test_calibration({m: (r["n_foreign"], r["k_foreign"]) for m, r in rows.items()}, alpha, seed,
                                         reps)
    return {"rows": rows, "extraction": extraction, "alpha": alpha, "calibration": calibration,
            "calibration_reps": reps}


def maker_test_calibration(n_foreign: dict[str, tuple[int, int]], alpha: float, seed: int, reps: int = 2000,
                           ratios: tuple[float, ...] = (2.0, 3.0, 5.0)) -> dict:
    """The foreign-maker test's level and power at each model's own number of foreign claims, by simulation.

    ``n_foreign``: model -> (its foreign claims, its ``k`` foreign candidate makers).
    Null: the foreign claims spread evenly over the ``k`` candidate makers; planted: one maker named ``ratio``
    times as often as each of the others. Rejection rates at ``alpha`` (before Holm), with Wilson intervals.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for model, (total, k) in n_foreign.items():
        if total < 1 or k < 2:
            continue
        row = {"n_foreign": total, "k": k}
        for name, ratio in (("null", 1.0), *((f"planted_x{r:g}", r) for r in ratios)):
            probs = np.array([ratio] + [1.0] * (k - 1))
            draws = rng.multinomial(total, probs / probs.sum(), size=reps)
            top = draws.max(axis=1)
            rejected = np.array([makers.max_cell_pvalue(int(t), total, k) < alpha for t in top])
            if ratio != 1.0:  # power: the planted maker is the one found (first cell, ties not counted)
                rejected &= draws[:, 0] > np.sort(draws[:, 1:], axis=1)[:, -1]
            row[name] = float(rejected.mean())
            row[f"{name}_ci"] = list(wilson_ci(int(rejected.sum()), reps))
        out[model] = row
    return out


def print_makers(res: dict) -> None:
    t = pl.DataFrame([{"model": m, "n_own_voice": r["n_own_voice"], "top_foreign": r["top_foreign"],
                       "share": r["share"], "baseline": r["baseline"], "p": r["p"], "p_adj": r["p_adj"],
                       "passed": r["passed"], "lab_claims": r["lab_claim_share"], "sis_labels": r["sis_labels"],
                       "sis_paper": r["sis_paper"]} for m, r in res["rows"].items()])
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200, float_precision=4):
        print(f"\nOwn-voice maker profile and foreign-maker test (alpha {res['alpha']}, Holm over models)")
        print(t)
        print(pl.DataFrame([{"model": m, **{k: round(v, 3) for k, v in r["profile"].items()}}
                            for m, r in res["rows"].items()], infer_schema_length=None))
    cal = pl.DataFrame([{"model": m, **{k: v for k, v in r.items() if not k.endswith("_ci")}}
                        for m, r in res["calibration"].items()])
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200, float_precision=3):
        print(f"the test by simulation at each model's number of foreign claims and candidate makers "
              f"({res['calibration_reps']} draws each): rejection rate at alpha under the null (level) and with one "
              "maker planted at 2x / 3x / 5x the others' rate (power)")
        print(cal)
    e = res["extraction"]
    print(f"claimed maker vs labels: foreign maker claimed vs loose kappa {e['foreign_claim_vs_loose']['kappa']:.3f} "
          f"(acc {e['foreign_claim_vs_loose']['accuracy']:.3f}); OpenAI/Anthropic claimed vs strict kappa "
          f"{e['lab_claim_vs_strict']['kappa']:.3f} (acc {e['lab_claim_vs_strict']['accuracy']:.3f})")


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="seed of the labelled samples (default 0)")
    ap.add_argument("--nested", choices=("lomo", "pairs"), default="lomo",
                    help="calibration pool for a held-out target: lomo = the other models scored by the judge fitted "
                         "without each of them (the quantifier is chosen and calibrated on their labels only, but "
                         "those judges were fitted with the target's labels among others); pairs = scored by judges "
                         "that saw neither the pool model nor the target (one fit per pair of models: 36 for nine "
                         "models, cached; about an hour on two quiet cores)")
    ap.add_argument("--no-throughput", dest="throughput", action="store_false",
                    help="skip the in-sample judge (throughput and in-sample diagnostics): saves one fit")
    ap.add_argument("--alpha", type=float, default=makers.ALPHA, help="level of the foreign-maker test (default 0.05)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    frame = datasets.identity_responses()
    facts = datasets.identity_facts()
    paper = {r["model"]: r for r in datasets.paper_scores().to_dicts()}
    models = frame["model"].unique(maintain_order=True).to_list()
    responses, families = frame["response"].to_list(), frame["family"].to_list()
    loose = np.array(frame["loose_label"].to_list(), dtype=bool)
    strict = np.array(frame["strict_label"].to_list(), dtype=bool)
    strict_known = ~np.array(frame["strict_label"].is_null().to_list())  # null: no usable strict file upstream
    model_col = np.array(frame["model"].to_list())

    t = time.perf_counter()
    _, texts, feats = heldout.load()  # featurised once, cached on disk
    featurize_s = time.perf_counter() - t

    heldout.fit_held_out([(m,) for m in models])  # the leave-one-model-out fits not cached yet, side by side
    pred_l = np.zeros(len(texts), dtype=bool)
    pred_s = np.zeros(len(texts), dtype=bool)
    prob_l = np.zeros(len(texts))
    prob_s = np.zeros(len(texts))
    for m in models:
        te = np.where(model_col == m)[0]
        lp, sp = heldout.predictions((m,))[m]  # judge fitted on the other models' labels (cached)
        prob_l[te], prob_s[te] = lp, sp
        pred_l[te] = lp >= 0.5
        pred_s[te] = pred_l[te] & (sp >= 0.5)

    rules = RuleIdentityJudge(facts).judge_many(responses, families)
    rule_l = np.array([v.loose for v in rules])
    rule_s = np.array([v.strict for v in rules])

    # throughput: the judge fitted on every published answer (the package's default, cached), featurise + predict
    if args.throughput:
        full = default_offline_judge()
        t = time.perf_counter()
        fitted = full.judge_many(responses, families)
        judge_s = time.perf_counter() - t
        in_l = np.array([v.loose for v in fitted])
        in_s = np.array([v.strict for v in fitted])
    else:  # --no-throughput: skip the in-sample fit (diagnostics below read NaN)
        judge_s, in_l, in_s = float("nan"), pred_l, pred_s

    rows = []
    for m in models:
        i = model_col == m
        p = paper.get(m, {})
        row = {"model": m, "n": int(i.sum()),
               **{f"loose_{k}": v for k, v in scores.agreement(pred_l[i], loose[i]).items() if k != "n"},
               **{f"strict_{k}": v for k, v in scores.agreement(pred_s[i], strict[i]).items() if k != "n"},
               "rules_loose_kappa": scores.agreement(rule_l[i], loose[i])["kappa"],
               "lis_ours": float(pred_l[i].mean()), "lis_prob": float(prob_l[i].mean()), "lis_labels": float(loose[i].mean()),
               "lis_paper": p.get("loose_identity_score"), "lis_rules": float(rule_l[i].mean()),
               "sis_ours": float(pred_s[i].mean()), "sis_labels": float(strict[i].mean()),
               "sis_paper": p.get("strict_identity_score"), "sis_rules": float(rule_s[i].mean())}
        if not strict_known[i].all():  # e.g. qwen2.5-72b-instruct: never re-judged, so no strict label to compare
            row.update(strict_accuracy=None, strict_kappa=None, sis_labels=None)
        row["lis_diff"] = row["lis_ours"] - row["lis_labels"]
        row["lis_ci"] = list(wilson_ci(int(pred_l[i].sum()), int(i.sum())))
        row["sis_ci"] = list(wilson_ci(int(pred_s[i].sum()), int(i.sum())))
        rows.append(row)
    overall = {"n": len(texts),
               "loose": scores.agreement(pred_l, loose), "strict": scores.agreement(pred_s, strict),
               "rules_loose": scores.agreement(rule_l, loose), "rules_strict": scores.agreement(rule_s, strict),
               "in_sample_loose": scores.agreement(in_l, loose), "in_sample_strict": scores.agreement(in_s, strict),
               "in_sample_max_abs_lis_diff": max(abs(float(in_l[model_col == m].mean() - loose[model_col == m].mean()))
                                                 for m in models),
               "max_abs_lis_diff": max(abs(r["lis_diff"]) for r in rows),
               "models_within_0.03": sum(abs(r["lis_diff"]) <= 0.03 for r in rows),
               "models_within_0.03_prob": sum(abs(r["lis_prob"] - r["lis_labels"]) <= 0.03 for r in rows),
               "max_abs_lis_diff_prob": max(abs(r["lis_prob"] - r["lis_labels"]) for r in rows),
               "featurize_s": featurize_s, "judge_s": judge_s,
               "throughput_responses_per_s": len(texts) / judge_s, "total_s": time.perf_counter() - t0,
               "evaluation": "leave-one-model-out (judge fitted on the other models' labels)"}

    if not args.throughput:
        for key in ("in_sample_loose", "in_sample_strict", "in_sample_max_abs_lis_diff", "judge_s",
                    "throughput_responses_per_s"):
            overall[key] = None
    table = pl.DataFrame(rows).select(
        "model", "n", pl.col("loose_accuracy").round(3).alias("acc_L"), pl.col("loose_kappa").round(3).alias("kappa_L"),
        pl.col("strict_accuracy").round(3).alias("acc_S"), pl.col("strict_kappa").round(3).alias("kappa_S"),
        pl.col("rules_loose_kappa").round(3).alias("kappa_L_rules"),
        pl.col("lis_ours").round(3), pl.col("lis_prob").round(3), pl.col("lis_labels").round(3), pl.col("lis_paper"),
        pl.col("sis_ours").round(3), pl.col("sis_labels").round(3), pl.col("sis_paper"))
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200):
        print("Offline identity judge vs GPT-4o-mini labels (held-out: fitted on the other models)")
        print(table)
    print(f"overall loose: acc {overall['loose']['accuracy']:.3f} kappa {overall['loose']['kappa']:.3f} | "
          f"strict: acc {overall['strict']['accuracy']:.3f} kappa {overall['strict']['kappa']:.3f} | "
          f"rules-only loose kappa {overall['rules_loose']['kappa']:.3f}")
    if args.throughput:
        print(f"in-sample (fitted on all models, not a fair estimate): loose kappa {overall['in_sample_loose']['kappa']:.3f}, "
              f"strict kappa {overall['in_sample_strict']['kappa']:.3f}, max |LIS diff| {overall['in_sample_max_abs_lis_diff']:.3f}")
    print(f"LIS within ±0.03 of labels: {overall['models_within_0.03']}/{len(rows)} models "
          f"(max |diff| {overall['max_abs_lis_diff']:.3f}); probability-averaged LIS: "
          f"{overall['models_within_0.03_prob']}/{len(rows)} (max |diff| {overall['max_abs_lis_diff_prob']:.3f})")
    if args.throughput:
        print(f"throughput: {overall['throughput_responses_per_s']:.1f} responses/s "
              f"({len(texts)} answers in {judge_s:.1f}s); total {overall['total_s']:.0f}s")
    print(f"total {overall['total_s']:.0f}s")
    maker_res = maker_section(frame, facts, paper, args.alpha, args.seed)
    print_makers(maker_res)
    corr = corrected_section(frame, feats, models, args.seed, args.nested)
    print_corrected(corr)
    keys = ("lis_labels", "lis_raw", "lis_corrected", "lis_ci", "lis_method", "lis_rule", "lis_covers",
            "sis_labels", "sis_raw", "sis_corrected", "sis_ci", "sis_method", "sis_rule", "sis_covers")
    per_model = {r["model"]: {**{key: corr["by_k"]["0"][r["model"]].get(key) for key in keys},
                              "kappa_L": r["loose_kappa"], "kappa_S": r["strict_kappa"]} for r in rows}
    for m, r in maker_res["rows"].items():
        per_model[m]["maker_profile"] = r["profile"]
        per_model[m]["maker_profile_ci"] = r["profile_ci"]
        per_model[m]["foreign_maker_test"] = {"maker": r["top_foreign"], "share": r["share"], "baseline": r["baseline"],
                                              "p": r["p"], "p_adj": r["p_adj"], "passed": r["passed"],
                                              "n_foreign": r["n_foreign"], "k_foreign": r["k_foreign"]}
    targets = targets_met(corr["summary_by_k"])
    print("targets:", json.dumps(targets))
    print(json.dumps({"bench": "identity", "overall": overall, "models": rows, "per_model": per_model,
                      "makers": {key: maker_res[key] for key in ("alpha", "extraction", "calibration",
                                                                  "calibration_reps")},
                      "by_k": corr["by_k"], "summary_by_k": corr["summary_by_k"], "candidates": corr["candidates"],
                      "chosen": corr["chosen"], "nested": corr["nested"], "seed": corr["seed"], "targets": targets},
                     default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
