"""Confidence intervals behind every score distill-kit reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distill_kit.stats import bootstrap_ci, stratified_bootstrap_ci, wilson_ci


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
