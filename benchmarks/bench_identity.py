"""ICE judge benchmark: offline identity judge vs the paper's GPT-4o-mini labels, per published model.

For every model in ``identity/responses/`` of the data directory (DISTILL_KIT_DATA_DIR; whichever of the paper's
14 models, or the user's own, the folder holds):
  * held-out offline judge: fitted on the *other* models' labels (leave-one-model-out), scored on this one;
  * rule-only judge (no fitting at all);
  * LIS two ways: share of answers judged positive (classify and count, the score the package reports) and
    mean positive probability (probability-averaged, a standard quantification estimator);
  * accuracy and Cohen's kappa vs the loose and strict labels; LIS/SIS ours vs labels vs paper_scores.csv;
  * throughput of the offline judge (responses/s, featurise + predict, one process).
Prints a readable table and ends with one line of JSON holding every figure.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import polars as pl

from distill_kit import datasets, scores
from distill_kit.judges.identity import OfflineIdentityJudge, RuleIdentityJudge


def main() -> int:
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

    judge = OfflineIdentityJudge(facts)
    t = time.perf_counter()
    texts, feats = judge.featurize(responses, families)
    featurize_s = time.perf_counter() - t

    pred_l = np.zeros(len(texts), dtype=bool)
    pred_s = np.zeros(len(texts), dtype=bool)
    prob_l = np.zeros(len(texts))
    for m in models:
        tr = np.where(model_col != m)[0]
        te = np.where(model_col == m)[0]
        j = OfflineIdentityJudge(facts).fit_features([texts[i] for i in tr], [feats[i] for i in tr], loose[tr], strict[tr])
        lp, sp, _ = j.predict_features([texts[i] for i in te], [feats[i] for i in te])
        prob_l[te] = lp
        pred_l[te] = np.array(lp) >= 0.5
        pred_s[te] = pred_l[te] & (np.array(sp) >= 0.5)

    rules = RuleIdentityJudge(facts).judge_many(responses, families)
    rule_l = np.array([v.loose for v in rules])
    rule_s = np.array([v.strict for v in rules])

    # throughput: a fitted judge on every published answer, featurise + predict
    full = OfflineIdentityJudge(facts).fit_features(texts, feats, loose, strict)
    t = time.perf_counter()
    fitted = full.judge_many(responses, families)
    judge_s = time.perf_counter() - t
    in_l = np.array([v.loose for v in fitted])
    in_s = np.array([v.strict for v in fitted])

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
        row["lis_ci"] = list(scores.wilson_ci(int(pred_l[i].sum()), int(i.sum())))
        row["sis_ci"] = list(scores.wilson_ci(int(pred_s[i].sum()), int(i.sum())))
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
    print(f"in-sample (fitted on all models, not a fair estimate): loose kappa {overall['in_sample_loose']['kappa']:.3f}, "
          f"strict kappa {overall['in_sample_strict']['kappa']:.3f}, max |LIS diff| {overall['in_sample_max_abs_lis_diff']:.3f}")
    print(f"LIS within ±0.03 of labels: {overall['models_within_0.03']}/{len(rows)} models "
          f"(max |diff| {overall['max_abs_lis_diff']:.3f}); probability-averaged LIS: "
          f"{overall['models_within_0.03_prob']}/{len(rows)} (max |diff| {overall['max_abs_lis_diff_prob']:.3f})")
    print(f"throughput: {overall['throughput_responses_per_s']:.1f} responses/s "
          f"({len(texts)} answers in {judge_s:.1f}s); total {overall['total_s']:.0f}s")
    print(json.dumps({"bench": "identity", "overall": overall, "models": rows}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
