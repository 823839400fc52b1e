"""``stats.quantify_prevalence`` computes what QuaPy's quantifiers compute, without importing QuaPy.

QuaPy stays the reference: this test feeds both the same random calibration and target posteriors (balanced,
skewed, tiny, ties at the threshold, a judge no better than chance) and asks for the same prevalence to 1e-12.
It is slow because importing QuaPy imports torch (its neural quantifiers)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from distill_kit import stats
from tests.helpers.installed import needs

pytestmark = [pytest.mark.slow, needs("quapy")]


def quapy_reference(method: str, cal: np.ndarray, y: np.ndarray, tgt: np.ndarray, threshold: float = 0.5) -> float:
    """The prevalence through QuaPy's own classes, as the package computed it before it wrote them out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from quapy.method import aggregative as agg
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Fixed(ClassifierMixin, BaseEstimator):  # the posteriors were computed elsewhere
        def __init__(self, threshold: float = 0.5) -> None:
            self.threshold = threshold
            self.classes_ = np.array([0, 1])

        def fit(self, X: Any, y: Any) -> "Fixed":  # noqa: N803
            return self

    yi = y.astype(int)
    if method == "acc":
        q = agg.ACC(Fixed(threshold), fit_classifier=False, val_split=None, solver="exact-cc")
        q.aggregation_fit((cal >= threshold).astype(int), yi)
        prev = q.aggregate((tgt >= threshold).astype(int))
    elif method == "pacc":
        q = agg.PACC(Fixed(threshold), fit_classifier=False, val_split=None, solver="exact-cc")
        q.aggregation_fit(np.column_stack([1 - cal, cal]), yi)
        prev = q.aggregate(np.column_stack([1 - tgt, tgt]))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prev, _ = agg.EMQ.EM(np.array([1 - yi.mean(), yi.mean()]), np.column_stack([1 - tgt, tgt]))
    return float(np.clip(np.asarray(prev)[1], 0, 1))


def cases(seed: int = 11) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for n_cal, n_tgt, prior, shift, sharp in [(400, 300, 0.5, 0.2, 2.0), (60, 25, 0.1, 0.6, 1.0), (8, 5, 0.5, 0.5, 3.0),
                                              (2000, 40, 0.02, 0.3, 4.0), (300, 300, 0.9, 0.05, 0.3)] * 8:
        y = rng.random(n_cal) < prior
        y[:2] = [True, False]  # both classes present: the one-class case is the package's own rule
        cal = np.where(y, rng.beta(1 + sharp, 1, n_cal), rng.beta(1, 1 + sharp, n_cal))
        yt = rng.random(n_tgt) < shift
        tgt = np.where(yt, rng.beta(1 + sharp, 1, n_tgt), rng.beta(1, 1 + sharp, n_tgt))
        if rng.random() < 0.3:
            cal, tgt = np.round(cal, 1), np.round(tgt, 1)  # ties at the threshold
        out.append((cal, y, tgt))
    chance = rng.random(200)  # a judge no better than chance: rates equal, the 2 x 2 system singular
    out.append((np.r_[chance, chance], np.r_[np.ones(200, bool), np.zeros(200, bool)], rng.random(50)))
    return out


@pytest.mark.parametrize("method", ["acc", "pacc", "sld"])
def test_the_written_out_quantifiers_equal_quapys(method: str) -> None:
    for cal, y, tgt in cases():
        ours = stats.quantify_prevalence(method, cal, y, tgt)
        assert ours == pytest.approx(quapy_reference(method, cal, y, tgt), abs=1e-12), (method, len(cal), len(tgt))
