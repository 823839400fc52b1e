"""Held-out judge fits (the calibration pool of the corrected LIS/SIS): fitting them side by side in processes
gives the same predictions, to the last bit, as fitting them one after the other."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from distill_kit.ice import calibration
from distill_kit.paths import CACHE_DIR_ENV, cache_dir


@pytest.mark.slow  # two judge fits in worker processes (about a minute on two cores)
def test_parallel_held_out_fits_equal_sequential_ones(data_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    frame, _, _ = calibration.load()  # features from the usual cache (computed once if absent)
    features = sorted((cache_dir() / "identity_heldout").glob("features_*.pkl"))
    first, second = frame["model"].unique(maintain_order=True).to_list()[:2]
    folders = {}
    for name in ("parallel", "sequential"):
        folders[name] = tmp_path / name
        (folders[name] / "identity_heldout").mkdir(parents=True)
        for f in features:
            shutil.copy(f, folders[name] / "identity_heldout" / f.name)
    monkeypatch.setenv(CACHE_DIR_ENV, str(folders["parallel"]))
    calibration.fit_held_out([(first,), (second,)], workers=2)
    assert calibration.cached((first,)) and calibration.cached((second,))
    side_by_side = calibration.predictions((first,))[first]
    monkeypatch.setenv(CACHE_DIR_ENV, str(folders["sequential"]))
    assert not calibration.cached((first,))
    one_by_one = calibration.predictions((first,))[first]  # fitted here, in this process
    assert all(np.array_equal(a, b) for a, b in zip(side_by_side, one_by_one))


def test_sample_labels_draws_the_package_plan_with_a_pool_and_a_random_sample_without() -> None:
    import polars as pl

    from distill_kit.ice import scores
    from tests.ice.test_scores import _synthetic_model

    rng = np.random.default_rng(5)
    pool = pl.concat([_synthetic_model(rng, f"m{i}", p, n=400) for i, p in enumerate((0.1, 0.3, 0.5))])
    target = _synthetic_model(rng, "new", 0.2, n=400)
    planned = calibration.sample_labels(target, 40, seed=2, pool=pool)
    assert planned.columns == ["model", "key", "loose_label", "strict_label"] and planned.height == 40
    assert sorted(planned["key"]) == sorted(scores.label_plan(target, pool, 40, seed=2))
    random = calibration.sample_labels(target, 40, seed=2)
    assert random.height == 40 and sorted(random["key"]) != sorted(planned["key"])
    assert calibration.sample_labels(target, 0, pool=pool).height == 0


def test_pool_choices_are_made_once_and_read_back_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import polars as pl

    from distill_kit.ice import scores
    from tests.ice.test_scores import _synthetic_model

    rng = np.random.default_rng(3)
    synthetic = pl.concat([_synthetic_model(rng, f"m{i}", p, n=100) for i, p in enumerate((0.1, 0.3, 0.5))])
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(calibration, "pool", lambda judge="offline", exclude=(): synthetic)
    monkeypatch.setattr(scores, "QUANTIFIERS", tuple(q for q in scores.QUANTIFIERS if q[0] in ("cc", "acc"))[:3])
    monkeypatch.setattr(scores, "SELECTION_RULES", ("mean", "max"))
    calls: list[str] = []
    real = scores.select_quantifiers_held_out
    monkeypatch.setattr(scores, "select_quantifiers_held_out", lambda p, s, **how: calls.append(s) or real(p, s, **how))
    first = calibration.pool_choices("offline")
    assert calls == ["loose", "strict"] and set(first["loose"]["held_out"]) == {"m0", "m1", "m2"}
    assert first["loose"]["new"]["name"] == scores.select_quantifier(
        synthetic, "loose", candidates=scores.QUANTIFIERS, rules=scores.SELECTION_RULES)["name"]
    again = calibration.pool_choices("offline")
    assert calls == ["loose", "strict"] and again == first  # from the cache: nothing chosen twice
    changed = synthetic.with_columns(pl.col("loose_prob") * 0.9)  # other judge scores: another cache entry
    monkeypatch.setattr(calibration, "pool", lambda judge="offline", exclude=(): changed)
    calibration.pool_choices("offline")
    assert calls == ["loose", "strict"] * 2
