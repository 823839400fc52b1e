"""Held-out offline-judge probabilities for the ICE benchmark, computed once and cached on disk.

Why: an honest prevalence correction needs the judge's scores on answers of models it never saw, both for
the target (fitted without it) and, for choosing and calibrating the correction, for every *other* model
scored by a judge that saw neither it nor the target (nested leave-one-model-out). One fit takes about 40 s
on two busy cores and the nesting needs one per pair of models, so every fit's predictions are cached under
``cache_dir()/identity_heldout/`` keyed by the judge version, the data's models and the excluded models.
Run ``python benchmarks/identity_heldout.py`` to fill the cache ahead of ``bench_identity.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from distill_kit import datasets
from distill_kit.config import cache_dir
from distill_kit.judges.identity import OfflineIdentityJudge

JUDGE_TAG = "offline-v6"  # bump with judges.identity's cache tag when the judge changes


def _dir() -> Path:
    path = cache_dir() / "identity_heldout"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fingerprint(frame: pl.DataFrame) -> str:
    models = frame["model"].unique(maintain_order=True).to_list()
    sizes = frame.group_by("model", maintain_order=True).len()["len"].to_list()
    pos = frame.group_by("model", maintain_order=True).agg(pl.col("loose_label").sum(), pl.col("strict_label").sum())
    raw = f"{JUDGE_TAG}|{models}|{sizes}|{pos.rows()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


@lru_cache(maxsize=1)
def load() -> tuple[pl.DataFrame, list[str], list[dict[str, float]]]:
    """The labelled frame and its featurised rows (cached: featurising 9,000 answers takes ~25 s)."""
    frame = datasets.identity_responses()
    path = _dir() / f"features_{_fingerprint(frame)}.pkl"
    if path.exists():
        with path.open("rb") as fh:
            texts, feats = pickle.load(fh)
    else:
        judge = OfflineIdentityJudge(datasets.identity_facts())
        texts, feats = judge.featurize(frame["response"].to_list(), frame["family"].to_list())
        _atomic_pickle(path, (texts, feats))
    return frame, texts, feats


def _atomic_pickle(path: Path, obj: object) -> None:
    tmp = path.with_suffix(f".tmp{time.time_ns()}")
    with tmp.open("wb") as fh:
        pickle.dump(obj, fh)
    tmp.replace(path)


def predictions(excluded: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loose and strict positive probabilities, on the rows of each model in ``excluded``, of a judge fitted
    on every other model's labels -> {model: (loose_prob, strict_prob)}."""
    frame, texts, feats = load()
    excluded = tuple(sorted(set(excluded)))
    path = _dir() / f"pred_{_fingerprint(frame)}_{hashlib.sha256('|'.join(excluded).encode()).hexdigest()[:12]}.pkl"
    if path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh)
    model_col = np.array(frame["model"].to_list())
    loose = np.array(frame["loose_label"].to_list(), dtype=bool)
    strict = np.array(frame["strict_label"].to_list(), dtype=bool)
    tr = np.where(~np.isin(model_col, excluded))[0]
    judge = OfflineIdentityJudge(datasets.identity_facts()).fit_features(
        [texts[i] for i in tr], [feats[i] for i in tr], loose[tr], strict[tr])
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m in excluded:
        te = np.where(model_col == m)[0]
        lp, sp, _ = judge.predict_features([texts[i] for i in te], [feats[i] for i in te])
        out[m] = (np.asarray(lp), np.asarray(sp))
    _atomic_pickle(path, out)
    return out


def cached(excluded: tuple[str, ...]) -> bool:
    frame, _, _ = load()
    excluded = tuple(sorted(set(excluded)))
    return (_dir() / f"pred_{_fingerprint(frame)}_{hashlib.sha256('|'.join(excluded).encode()).hexdigest()[:12]}.pkl").exists()


def main() -> int:
    frame, _, _ = load()
    models = frame["model"].unique(maintain_order=True).to_list()
    jobs = [(m,) for m in models] + [tuple(sorted(p)) for p in itertools.combinations(models, 2)]
    t0 = time.perf_counter()
    for i, ex in enumerate(jobs, 1):
        hit = cached(ex)
        predictions(ex)
        print(f"[{i}/{len(jobs)}] {'cached' if hit else 'fitted'} without {', '.join(ex)} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
