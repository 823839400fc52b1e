"""distill_kit.stats on synthetic judges whose error rates are known, and paired tests of known size and power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distill_kit import stats
from distill_kit.stats import bootstrap_ci, stratified_bootstrap_ci, wilson_ci


def synthetic_judge(rng: np.random.Generator, n: int, prevalence: float, tpr: float, fpr: float):
    """Labels with the given prevalence and a binary judge with exactly these error rates (in expectation),
    plus a judge probability that is informative but not calibrated."""
    y = rng.random(n) < prevalence
    pred = np.where(y, rng.random(n) < tpr, rng.random(n) < fpr)
    prob = np.clip(np.where(pred, 0.55 + 0.4 * rng.random(n), 0.45 * rng.random(n)), 0, 1)
    return y, pred, prob


def test_classify_and_count_is_biased_and_adjusted_cc_recovers_prevalence():
    rng = np.random.default_rng(1)
    y_cal, p_cal, _ = synthetic_judge(rng, 4000, 0.5, tpr=0.6, fpr=0.05)
    y, p, _ = synthetic_judge(rng, 5000, 0.2, tpr=0.6, fpr=0.05)
    truth = float(y.mean())
    cc = stats.classify_and_count(p)
    assert not cc.covers(truth)  # 0.2 * 0.6 + 0.8 * 0.05 = 0.16: far outside its Wilson interval
    rates = stats.error_rates(p_cal, y_cal)
    acc = stats.adjusted_cc(p, rates["tpr"], rates["fpr"], rates["n_pos"], rates["n_neg"])
    assert acc.covers(truth) and abs(acc.value - truth) < 0.02
    assert acc.lo < acc.value < acc.hi and acc.n_labels == 4000


def test_adjusted_cc_interval_holds_coverage_over_repetitions():
    rng = np.random.default_rng(2)
    covered_acc = covered_cc = 0
    for _ in range(200):
        y_cal, p_cal, _ = synthetic_judge(rng, 600, 0.4, tpr=0.7, fpr=0.1)
        y, p, _ = synthetic_judge(rng, 1000, 0.45, tpr=0.7, fpr=0.1)
        r = stats.error_rates(p_cal, y_cal)
        covered_acc += stats.adjusted_cc(p, r["tpr"], r["fpr"], r["n_pos"], r["n_neg"]).covers(y.mean())
        covered_cc += stats.classify_and_count(p).covers(y.mean())
    assert covered_acc / 200 >= 0.9
    assert covered_cc / 200 <= 0.2


@pytest.mark.parametrize("method", ["acc", "pacc", "sld"])
def test_quantifiers_recover_a_shifted_prevalence_where_cc_does_not(method):
    rng = np.random.default_rng(3)
    # posteriors calibrated under the calibration prior 0.5: with Beta(4,2) vs Beta(2,4) scores the
    # likelihood ratio is s^2 / (1 - s)^2, so p(y=1 | s) = s^2 / (s^2 + (1 - s)^2)
    def draw(n, prev):
        y = rng.random(n) < prev
        s = np.where(y, rng.beta(4, 2, n), rng.beta(2, 4, n))
        return y, s ** 2 / (s ** 2 + (1 - s) ** 2)
    y_cal, s_cal = draw(6000, 0.5)
    y, s = draw(6000, 0.15)
    est = stats.quantify_prevalence(method, s_cal, y_cal, s)
    cc = stats.quantify_prevalence("cc", s_cal, y_cal, s)
    assert abs(est - y.mean()) < 0.03
    assert abs(cc - y.mean()) > 0.1


def test_stratified_quantification_fixes_what_pooled_rates_get_wrong():
    """Two strata (e.g. languages) where the judge errs differently; the target's mix of strata differs."""
    rng = np.random.default_rng(4)

    def make(n_en, n_zh):
        ye, pe, fe = synthetic_judge(rng, n_en, 0.6, tpr=0.9, fpr=0.02)
        yz, pz, fz = synthetic_judge(rng, n_zh, 0.1, tpr=0.7, fpr=0.3)
        return (np.r_[ye, yz], np.r_[pe, pz], np.r_[fe, fz], ["en"] * n_en + ["zh"] * n_zh)

    y_cal, p_cal, f_cal, s_cal = make(10000, 10000)
    y, p, f, s = make(1000, 9000)
    pooled = stats.quantify_prevalence("acc", f_cal, y_cal, f)
    strat = stats.stratified_prevalence("acc", s_cal, f_cal, y_cal, s, f)
    assert abs(strat - y.mean()) < 0.03
    assert abs(pooled - y.mean()) > 0.05


def test_confidence_bins_cut_at_edges():
    assert stats.confidence_bins([0.0, 0.1, 0.5, 0.99]) == ["p<0.05", "p0.05-0.2", "p0.4-0.6", "p>=0.95"]


def test_ppi_recovers_prevalence_with_valid_intervals_and_cc_does_not():
    rng = np.random.default_rng(5)
    covered = widths = 0.0
    reps, k = 300, 100
    cc_cover = 0
    for _ in range(reps):
        y, pred, prob = synthetic_judge(rng, 1000, 0.3, tpr=0.55, fpr=0.08)
        idx = rng.choice(1000, k, replace=False)
        est = stats.ppi_mean(y[idx], prob[idx], prob)
        covered += est.covers(y.mean())
        widths += est.hi - est.lo
        cc_cover += stats.classify_and_count(pred).covers(y.mean())
        assert est.n_labels == k and est.n == 1000 and est.method.startswith("PPI++")
    assert covered / reps >= 0.92
    assert cc_cover / reps <= 0.05
    # power tuning beats the labels alone: narrower than a Wilson interval on the k labels
    lo, hi = stats.wilson_ci(30, 100)
    assert widths / reps < (hi - lo)


def test_ppi_with_every_answer_labelled_is_exact():
    rng = np.random.default_rng(6)
    y, _, prob = synthetic_judge(rng, 200, 0.4, 0.7, 0.1)
    est = stats.ppi_mean(y, prob, prob)
    assert est.value == pytest.approx(y.mean()) and est.lo == pytest.approx(est.hi)


def test_ppi_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one labelled"):
        stats.ppi_mean([], [], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        stats.ppi_mean([True], [0.1, 0.2], [0.1, 0.2])


def test_shift_interval_width_is_rms_of_other_models_errors():
    est = stats.shift_interval(0.3, [0.01, -0.02, 0.02], 1000, "x")
    rms = np.sqrt(np.mean(np.square([0.01, -0.02, 0.02])))
    assert est.hi - est.value == pytest.approx(1.959963984540054 * np.sqrt(rms ** 2 + 0.3 * 0.7 / 1000))
    few = stats.shift_interval(0.3, [0.01, -0.02, 0.02], 5, "x")  # five live answers: sampling error dominates
    assert few.hi - few.lo > 0.7


def test_paired_permutation_holds_its_size_on_identical_models():
    rng = np.random.default_rng(7)
    rejections = 0
    reps = 200
    for i in range(reps):
        prompt_effect = rng.normal(3, 1, 60)  # prompts differ a lot; the two models do not
        a = prompt_effect + rng.normal(0, 0.5, 60)
        b = prompt_effect + rng.normal(0, 0.5, 60)
        rejections += stats.paired_permutation_test(a, b, n_resamples=999, seed=i) < 0.05
    assert rejections / reps <= 0.08


def test_paired_tests_detect_a_planted_difference():
    rng = np.random.default_rng(8)
    prompt_effect = rng.normal(3, 1, 60)
    a = prompt_effect + 0.4 + rng.normal(0, 0.5, 60)
    b = prompt_effect + rng.normal(0, 0.5, 60)
    res = stats.compare_paired(a, b, "A", "B")
    assert res.p_value < 0.01 and res.lo > 0 and res.diff == pytest.approx(0.4, abs=0.2)
    # an unpaired view of the same numbers would drown the difference in the prompt-to-prompt spread
    assert res.hi - res.lo < 0.5


def test_mcnemar_size_and_power():
    rng = np.random.default_rng(9)
    rej = 0
    for _ in range(300):
        base = rng.random(200) < 0.3
        a = np.where(rng.random(200) < 0.1, ~base, base)
        b = np.where(rng.random(200) < 0.1, ~base, base)
        rej += stats.mcnemar_test(a, b) < 0.05
    assert rej / 300 <= 0.07
    base = rng.random(400) < 0.3
    a = base | (rng.random(400) < 0.15)
    assert stats.mcnemar_test(a, base) < 0.001
    assert stats.mcnemar_test(base, base) == 1.0


def test_holm_matches_the_textbook_example():
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_comparison_table_applies_holm_and_flags_significance():
    rng = np.random.default_rng(10)
    base = rng.normal(3, 1, 80)
    scores = {"a": base + 0.5 + rng.normal(0, 0.3, 80), "b": base + rng.normal(0, 0.3, 80),
              "c": base + rng.normal(0, 0.3, 80)}
    t = stats.comparison_table(scores)
    assert t.height == 3 and set(t.columns) >= {"a", "b", "diff", "lo", "hi", "p_value", "p_holm", "significant"}
    row = {(r["a"], r["b"]): r for r in t.to_dicts()}
    assert row[("a", "b")]["significant"] and row[("a", "c")]["significant"]
    assert not row[("b", "c")]["significant"]
    assert all(r["p_holm"] >= r["p_value"] for r in t.to_dicts())
    with pytest.raises(ValueError, match="no scores for z"):
        stats.comparison_table(scores, pairs=[("a", "z")])


def test_agreement_between_judges():
    rng = np.random.default_rng(11)
    truth = rng.integers(1, 6, 50).astype(float)
    same = np.vstack([truth, truth, truth])
    assert stats.krippendorff_alpha(same) == pytest.approx(1.0)
    assert stats.kendall_w(same) == pytest.approx(1.0)
    noise = rng.integers(1, 6, (3, 50)).astype(float)
    assert abs(stats.krippendorff_alpha(noise)) < 0.2
    assert stats.kendall_w(noise) < 0.5
    with pytest.raises(ValueError):
        stats.krippendorff_alpha([[1, 2, 3]])


def test_interval_alpha_equals_the_library_and_scales_to_continuous_scores():
    """The closed form gives the krippendorff package's value; with continuous scores (every value distinct) the
    package needs items x values^2 memory (40 GiB at the paper's RSE scale), the closed form does not."""
    import time

    import krippendorff

    rng = np.random.default_rng(5)
    # the package's cost grows with items x distinct values^2, so the continuous cases stay at a few hundred scores
    for judges, items, levels in [(2, 40, None), (3, 120, None), (4, 60, 5), (2, 150, None)]:
        data = rng.normal(3, 1, (judges, items)) if levels is None else rng.integers(1, levels + 1, (judges, items)).astype(float)
        data[:, :10] += rng.normal(0, 0.1, (judges, 10))  # some agreement
        data[rng.random(data.shape) < 0.15] = np.nan  # missing scores, some items left with one
        want = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
        assert stats.krippendorff_alpha(data) == pytest.approx(want, abs=1e-10)
    truth = rng.normal(3, 1, 200_000)
    big = np.vstack([truth + rng.normal(0, 0.5, truth.size), truth + rng.normal(0, 0.5, truth.size)])
    t = time.perf_counter()
    alpha = stats.krippendorff_alpha(big)  # the package would need 200,000 x 400,000^2 floats here
    assert time.perf_counter() - t < 2.0
    assert alpha == pytest.approx(1 - 0.5 / 2.5, abs=0.01)  # E(a - b)^2: 2 x 0.25 within an item, 2 x 1.25 across


def test_paired_table_on_a_long_frame_ranks_neighbours_and_skips_unpaired_prompts():
    import polars as pl

    from distill_kit.ice import scores

    rng = np.random.default_rng(12)
    base = rng.normal(3, 1, 50)
    rows = []
    for m, shift in (("near", 0.6), ("mid", 0.0), ("twin", 0.0)):
        vals = base + shift + rng.normal(0, 0.3, 50)
        rows += [{"prompt_id": i, "test_model": m, "overall": float(v)} for i, v in enumerate(vals)]
    rows.append({"prompt_id": 999, "test_model": "near", "overall": 5.0})  # a prompt only one model answered
    t = scores.paired_table(pl.DataFrame(rows), "overall")
    assert t.height == 2 and t["a"][0] == "near" and t["n"].to_list() == [50, 50]
    assert t["significant"].to_list()[0] and not t["significant"].to_list()[1]
    binary = pl.DataFrame(rows).with_columns((pl.col("overall") > 3).alias("hit"))
    tb = scores.paired_table(binary, "hit", binary=True, pairs=[("near", "mid")])
    assert tb["test"][0].startswith("McNemar") and tb["p_value"][0] < 0.05
    with pytest.raises(ValueError, match="lacks column"):
        scores.paired_table(pl.DataFrame(rows), "missing")


def test_paired_table_does_not_depend_on_row_order():
    """The bootstrap resamples items by position, so the items are put in a fixed order first: the demo's
    paired RSE intervals once changed from run to run because a group_by handed them over in any order."""
    import polars as pl

    from distill_kit.ice import scores

    rng = np.random.default_rng(3)
    frame = pl.DataFrame([{"prompt_id": f"p{i}", "test_model": m, "overall": float(rng.normal(3, 1))}
                          for m in ("a", "b", "c") for i in range(40)])
    first = scores.paired_table(frame, "overall", seed=0)
    for shuffle_seed in range(5):
        again = scores.paired_table(frame.sample(fraction=1.0, shuffle=True, seed=shuffle_seed), "overall", seed=0)
        assert again.equals(first)


def test_ppi_never_returns_a_zero_width_interval_from_labels_without_spread():
    # 25 labelled answers, none positive, of a model whose true share is small but not zero
    y = np.zeros(1000, dtype=bool)
    y[:7] = True
    prob = np.full(1000, 0.02)
    idx = np.arange(100, 125)
    est = stats.ppi_mean(y[idx], prob[idx], prob)
    assert est.value == 0.0 and est.hi > 0.05 and est.covers(y.mean())
    assert est.method.startswith("labels only")


def confident_judge(rng: np.random.Generator, n: int, prevalence: float):
    """Labels and a judge probability that is sure (near 0 or 1) on most answers and unsure on a fifth, where
    its errors are -- the shape of the offline identity judge's scores."""
    y = rng.random(n) < prevalence
    unsure = rng.random(n) < 0.2
    sure = np.where(y, rng.uniform(0.9, 1.0, n), rng.uniform(0.0, 0.04, n))
    sure = np.where(rng.random(n) < 0.03, 1 - sure, sure)  # a few confident mistakes
    prob = np.where(unsure, np.clip(0.5 + 0.25 * (y - 0.5) + rng.normal(0, 0.15, n), 0.05, 0.95), sure)
    return y, prob


def test_neyman_allocation_puts_labels_where_the_judge_is_unsure():
    alloc = stats.neyman_allocation([500, 300, 200], [0.05, 0.5, 0.1], 100)
    assert alloc.sum() == 100 and alloc[1] > alloc[0] > 0 and (alloc >= 2).all()
    assert alloc[1] > 100 * 300 / 1000  # more than its share of answers
    assert stats.neyman_allocation([3, 500], [0.5, 0.5], 100).tolist()[0] <= 3  # never more than a stratum holds
    assert stats.neyman_allocation([10, 10, 10], [0.1, 0.5, 0.2], 2).tolist() == [0, 1, 1]  # fewer labels than strata
    assert stats.neyman_allocation([5, 5], [0.5, 0.5], 50).tolist() == [5, 5]  # k beyond the answers: all of them


def test_stratified_sample_draws_the_allocation_within_each_stratum():
    strata = np.repeat([0, 1, 2], [50, 30, 20])
    idx = stats.stratified_sample(strata, {0: 3, 1: 10, 2: 0}, np.random.default_rng(0))
    assert np.unique(idx).size == 13 and np.bincount(strata[idx], minlength=3).tolist() == [3, 10, 0]


def test_stratified_ppi_recovers_prevalence_with_valid_intervals_closer_than_plain_ppi():
    """A stratified draw (Neyman-allocated over confidence bins) and the stratified estimator: unbiased, covering
    >= 92% of 300 draws, and closer to the truth than plain PPI++ on a random sample of the same size (its
    interval is not narrower: a sure stratum's few agreeing labels keep a pseudo-label's variance); CC never
    covers."""
    rng = np.random.default_rng(21)
    reps, k, n = 300, 100, 1000
    covered = plain_covered = 0
    err = abs_err = plain_abs_err = 0.0
    cc_cover = 0
    for _ in range(reps):
        y, prob = confident_judge(rng, n, 0.3)
        codes = np.searchsorted(np.array([0.05, 0.2, 0.5, 0.8, 0.95]), prob, side="right")
        hs = np.unique(codes)
        rate = np.array([prob[codes == h].mean() for h in hs])
        alloc = stats.neyman_allocation(np.array([(codes == h).sum() for h in hs]), np.sqrt(rate * (1 - rate)), k)
        idx = stats.stratified_sample(codes, dict(zip(hs.tolist(), alloc.tolist())), rng)
        est = stats.stratified_ppi_mean(y[idx], idx, prob, codes)
        assert est.n_labels == k and est.n == n and est.method.startswith("stratified PPI++")
        covered += est.covers(y.mean())
        err += est.value - y.mean()
        abs_err += abs(est.value - y.mean())
        srs = rng.choice(n, k, replace=False)
        plain = stats.ppi_mean(y[srs], prob[srs], prob)
        plain_covered += plain.covers(y.mean())
        plain_abs_err += abs(plain.value - y.mean())
        cc_cover += stats.classify_and_count(prob[:] >= 0.8).covers(y.mean())
    assert covered / reps >= 0.92 and plain_covered / reps >= 0.92
    assert abs(err / reps) < 0.005  # unbiased
    assert abs_err < 0.9 * plain_abs_err
    assert cc_cover / reps <= 0.05


def test_stratified_ppi_post_stratifies_a_random_sample_and_never_collapses():
    rng = np.random.default_rng(22)
    y, prob = confident_judge(rng, 1000, 0.3)
    codes = np.searchsorted(np.array([0.05, 0.2, 0.5, 0.8, 0.95]), prob, side="right")
    covered = 0
    for _ in range(200):  # labels of a simple random sample: thin strata merged, still valid
        idx = rng.choice(1000, 50, replace=False)
        covered += stats.stratified_ppi_mean(y[idx], idx, prob, codes).covers(y.mean())
    assert covered / 200 >= 0.92
    every = np.arange(1000)
    exact = stats.stratified_ppi_mean(y, every, prob, codes)
    assert exact.value == pytest.approx(y.mean()) and exact.lo == pytest.approx(exact.hi)
    none_positive = np.zeros(1000, dtype=bool)
    none_positive[:5] = True  # a small share, none of it labelled: the interval must not be [0, 0]
    low = stats.stratified_ppi_mean(none_positive[100:130], np.arange(100, 130), np.full(1000, 0.01), np.zeros(1000, int))
    assert low.value == 0.0 and low.hi > 0.01 and low.covers(0.005)


def test_stratified_ppi_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        stats.stratified_ppi_mean([], [], [0.1, 0.2], [0, 1])
    with pytest.raises(ValueError, match="same length"):
        stats.stratified_ppi_mean([True], [0, 1], [0.1, 0.2], [0, 1])
    with pytest.raises(ValueError, match="distinct"):
        stats.stratified_ppi_mean([True, False], [1, 1], [0.1, 0.2], [0, 1])
    with pytest.raises(ValueError, match="every answer"):
        stats.stratified_ppi_mean([True], [0], [0.1, 0.2], [0])


# ---------------------------------------------------------------- the intervals behind every score

def test_wilson_matches_the_textbook_value_and_stays_inside_0_1():
    lo, hi = wilson_ci(34, 100)
    assert (lo, hi) == pytest.approx((0.2547, 0.4369), abs=1e-3)
    assert wilson_ci(0, 50)[0] == 0.0 and 0 < wilson_ci(0, 50)[1] < 0.1  # not the collapsed [0, 0]
    assert wilson_ci(50, 50)[1] == 1.0 and wilson_ci(50, 50)[0] > 0.9
    assert all(math.isnan(x) for x in wilson_ci(0, 0))
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_ci(5, 3)


def test_bootstrap_covers_the_mean_and_is_reproducible():
    values = np.random.default_rng(1).normal(3.0, 0.5, size=400)
    lo, hi = bootstrap_ci(values, seed=0)
    assert lo < values.mean() < hi and hi - lo < 0.15
    assert bootstrap_ci(values, seed=0) == (lo, hi)
    assert bootstrap_ci([np.nan, 2.0, np.nan]) == (2.0, 2.0)
    assert bootstrap_ci(values, stat=np.median, n_boot=200)[0] < np.median(values)


def test_stratified_bootstrap_weights_groups_equally():
    small = np.full(5, 5.0)
    large = np.full(500, 1.0)
    lo, hi = stratified_bootstrap_ci([small, large])
    assert lo == pytest.approx(3.0) and hi == pytest.approx(3.0)  # mean of group means, not of all rows
    one = np.random.default_rng(2).normal(size=100)
    assert stratified_bootstrap_ci([one], seed=3) == pytest.approx(bootstrap_ci(one, seed=3), abs=0.05)
    assert all(math.isnan(x) for x in stratified_bootstrap_ci([]))


def test_paired_table_pairs_tied_models_in_the_same_order_every_time():
    """Models with equal means are paired by name: the same frame gives the same pairs in any row order."""
    import random

    import polars as pl

    from distill_kit.ice import scores

    rows = [{"test_model": m, "prompt_id": i, "overall": v} for i in range(6)
            for m, v in (("b", 3.0), ("a", 3.0), ("c", 3.0 + (i % 2)), ("d", 1.0))]
    seen = set()
    for seed in range(12):
        random.Random(seed).shuffle(rows)
        t = scores.paired_table(pl.DataFrame(rows), "overall")
        seen.add(tuple(zip(t["a"].to_list(), t["b"].to_list())))
    assert seen == {(("c", "a"), ("a", "b"), ("b", "d"))}
