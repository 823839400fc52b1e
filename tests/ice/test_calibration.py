"""Held-out judge fits (the calibration pool of the corrected LIS/SIS): fitting them side by side in processes
gives the same predictions, to the last bit, as fitting them one after the other."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from distill_kit import datasets
from distill_kit.ice import calibration
from distill_kit.paths import CACHE_DIR_ENV, cache_dir
from tests.helpers.open_folder import build_fourteen_model_folder


@pytest.fixture
def small_identity_folder(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data folder of the 14 identity models with 150 real answers each, and an empty cache: the same fitting
    code and the same threads as the nine published models' 9,000 answers, a fit taking a third of the time."""
    build_fourteen_model_folder(data_dir, tmp_path / "data", n=150)
    monkeypatch.setenv("DISTILL_KIT_DATA_DIR", str(tmp_path / "data"))  # the fitting processes inherit both
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    datasets.clear_caches()
    calibration.load.cache_clear()
    yield tmp_path / "data"
    datasets.clear_caches()
    calibration.load.cache_clear()  # later tests in this process read their own folder's frame


@pytest.mark.slow  # three judge fits, two of them in worker processes
def test_parallel_held_out_fits_equal_sequential_ones(small_identity_folder: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    frame, _, _ = calibration.load()  # featurised once, into the folder's own cache
    features = sorted((cache_dir() / "identity_heldout").glob("features_*.pkl"))
    assert frame["model"].n_unique() == 14 and len(features) == 1
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


def test_the_rules_pool_holds_the_rule_judges_verdicts(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pool("rules") reads the rule verdicts off the featurised rows: the same verdicts the rule judge gives."""
    from distill_kit.ice.judges import OfflineIdentityJudge, resolve_judge

    frame = datasets.identity_responses(["deepseek-chat", "qwen2.5-7b-instruct"]).group_by("model", maintain_order=True).head(60)
    texts, feats = OfflineIdentityJudge(datasets.identity_facts()).featurize(frame["response"].to_list(),
                                                                            frame["family"].to_list())
    monkeypatch.setattr(calibration, "load", lambda: (frame, texts, feats))
    verdicts = resolve_judge("rules").judge_many(frame["response"].to_list(), frame["family"].to_list())
    rules = calibration.pool("rules")
    assert rules.height == frame.height and rules["model"].to_list() == frame["model"].to_list()
    assert rules["loose_prob"].to_list() == [float(v.loose) for v in verdicts]
    assert rules["strict_prob"].to_list() == [float(v.strict) for v in verdicts]
    assert 0 < sum(v.loose for v in verdicts) < frame.height  # both verdicts occur in the sample
