"""Prevalence-corrected LIS/SIS (``distill_kit.ice.scores``) on synthetic models whose judge errs in known ways:
the label-free choice is made on the pool alone (the rule too, nested), the labelled sample is drawn without
looking at the target's labels, and the corrected estimates recover the true share where classify and count
does not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distill_kit import stats
from distill_kit.ice import scores

FAST = (("cc", ()), ("pcc", ()), ("acc", ()), ("cal", ("conf",)), ("cal", ("language", "conf")))


def _synthetic_model(rng, name: str, prevalence: float, n: int = 1500):
    """A model's answers scored by a judge whose probability is calibrated in every stratum but thresholds badly:
    p(y=1 | score) is the same on every model (the assumption stratified calibration rests on)."""
    y = rng.random(n) < prevalence
    prob = np.clip(np.where(y, rng.beta(3, 3, n), rng.beta(1.2, 6, n)), 0, 1)
    lang = np.where(rng.random(n) < 0.5, "en", "zh")
    return pl.DataFrame({"model": [name] * n, "key": [str(i) for i in range(n)], "language": lang,
                         "claimed": ["none"] * n, "template_id": ["t"] * n, "loose_prob": prob, "strict_prob": prob * 0.5,
                         "loose_label": y, "strict_label": y & (rng.random(n) < 0.5)})


@pytest.fixture(scope="module")
def pool() -> pl.DataFrame:
    rng = np.random.default_rng(13)
    return pl.concat([_synthetic_model(rng, f"m{i}", p) for i, p in enumerate((0.1, 0.2, 0.3, 0.4, 0.5))])


@pytest.fixture(scope="module")
def target() -> pl.DataFrame:
    return _synthetic_model(np.random.default_rng(14), "new", 0.35)


def test_corrected_identity_score_recovers_prevalence_where_classify_and_count_does_not(pool, target):
    truth = float(target["loose_label"].mean())
    sel = scores.select_quantifier(pool, "loose")
    assert sel["name"] != "cc" and len(sel["errors"]) == 5 and sel["mae"] < 0.03
    assert sel["rule"] in scores.SELECTION_RULES and {r["rule"] for r in sel["rules"]} == set(scores.SELECTION_RULES)
    est = scores.corrected_identity_score(target, pool, "loose", selection=sel)
    raw = stats.classify_and_count(target["loose_prob"].to_numpy() >= 0.5)
    assert est.covers(truth) and abs(est.value - truth) < 0.03 and est.n_labels == 0
    assert not raw.covers(truth) and abs(raw.value - truth) > 0.05
    labels = target.head(150).select("model", "key", "loose_label", "strict_label")
    ppi = scores.corrected_identity_score(target, pool, "loose", labels=labels)
    assert ppi.n_labels == 150 and ppi.covers(truth) and ppi.method.startswith("stratified PPI++")
    with pytest.raises(ValueError, match="key"):
        scores.corrected_identity_score(target.drop("key"), pool, "loose", labels=labels)


def test_one_rule_is_the_smallest_mean_error_and_the_nested_errors_are_the_procedures(pool):
    one = scores.select_quantifier(pool, "loose", candidates=FAST, rules=("mean",))
    table = {r["name"]: r["mae"] for r in one["table"]}
    assert one["name"] == min(table, key=table.get) and one["mae"] == pytest.approx(table[one["name"]])
    assert one["rules"] == [] and one["members"] == [dict((scores.quantifier_name(m, s), (m, s)) for m, s in FAST)[one["name"]]]
    nested = scores.select_quantifier(pool, "loose", candidates=FAST, rules=("mean", "top3"))
    by_rule = {r["rule"]: r["mae"] for r in nested["rules"]}
    assert nested["rule"] == min(by_rule, key=by_rule.get) and nested["mae"] == pytest.approx(by_rule[nested["rule"]])
    top3 = scores.select_quantifier(pool, "loose", candidates=FAST, rules=("top3",))
    assert top3["name"].startswith("mean of ") and len(top3["members"]) == 3
    with pytest.raises(ValueError, match="unknown selection rule"):
        scores.select_quantifier(pool, "loose", rules=("best",))


def test_choices_for_each_held_out_model_equal_choices_on_each_reduced_pool(pool):
    together = scores.select_quantifiers_held_out(pool, "strict", candidates=FAST, rules=("mean", "max", "top2"))
    assert set(together) == set(pool["model"].unique())
    for m in ("m0", "m3"):
        alone = scores.select_quantifier(pool.filter(pl.col("model") != m), "strict", candidates=FAST,
                                         rules=("mean", "max", "top2"))
        assert together[m]["name"] == alone["name"] and together[m]["rule"] == alone["rule"]
        assert together[m]["errors"] == pytest.approx(alone["errors"])


def test_label_plan_looks_at_no_label_of_the_target_and_favours_unsure_answers(pool, target):
    keys = scores.label_plan(target, pool, 100, seed=3)
    assert len(keys) == len(set(keys)) == 100 and scores.label_plan(target, pool, 0) == []
    flipped = target.with_columns(~pl.col("loose_label"), ~pl.col("strict_label"))
    assert scores.label_plan(flipped, pool, 100, seed=3) == keys
    assert scores.label_plan(target, pool, 100, seed=4) != keys
    prob = dict(zip(target["key"], target["loose_prob"]))
    unsure = np.mean([(0.2 <= prob[k] < 0.8) for k in keys])
    assert unsure > np.mean((0.2 <= target["loose_prob"].to_numpy()) & (target["loose_prob"].to_numpy() < 0.8))


def test_planned_labels_give_a_valid_stratified_estimate(pool, target):
    covered = 0
    for seed in range(40):
        keys = scores.label_plan(target, pool, 60, seed=seed)
        lab = target.filter(pl.col("key").is_in(keys)).select("model", "key", "loose_label", "strict_label")
        for score in ("loose", "strict"):
            est = scores.corrected_identity_score(target, pool, score, labels=lab)
            assert est.n_labels == 60
            covered += est.covers(float(target[f"{score}_label"].mean()))
    assert covered / 80 >= 0.9
