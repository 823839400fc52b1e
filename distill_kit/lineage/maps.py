"""Maps of responses, model-level similarity, clusters of models and the homogenisation index.

Inputs are a long responses frame (``model, prompt, text``; see :func:`distill_kit.datasets.as_responses`)
and one vector per row (usually :func:`distill_kit.text.embed.embed_texts` of ``text``). Functions accept
precomputed vectors so the expensive embedding runs once and every view reuses it.

Homogenisation index (HI)
-------------------------
How indistinguishable a set of models' answers are, in [0, 1]:

1. Align the models on prompts they all answered: ``X[m, p]`` is model m's vector for prompt p.
2. Remove what the prompt dictates: ``R[m, p] = X[m, p] - mean_k X[k, p]``. What is left is how
   model m answers *differently from the others* on that prompt.
3. Nearest-centroid attribution with leave-one-prompt-out: each residual ``R[m, p]`` is assigned to the
   model whose mean residual (computed without prompt p for its own model) has the highest cosine.
   ``accuracy`` is the share attributed to the right model; chance is ``1/K`` for K models.
4. ``HI = 1 - max(0, (accuracy - 1/K) / (1 - 1/K))``.

HI = 1 means no model can be told apart from the others better than chance (fully homogenised);
HI = 0 means every answer is recognisable by its author. It is comparable across model sets of
different sizes because accuracy is rescaled by chance. :func:`pairwise_indistinguishability` gives
the same quantity for every pair of models (K = 2), which is what clusters of homogenised models
are built on.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from distill_kit.lineage.prompts import common_prompts
from distill_kit.lineage.tree import cut_tree, distances


# ------------------------------------------------------------------------------------- alignment
def aligned_tensor(
    frame: pl.DataFrame, vectors: np.ndarray, models: Sequence[str] | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    """(models, prompts, X[model, prompt, dim]) over the prompts every model answered."""
    if len(frame) != len(vectors):
        raise ValueError(f"frame has {len(frame)} rows but {len(vectors)} vectors were given")
    models = list(models) if models is not None else sorted(frame["model"].unique().to_list())
    idx = frame.with_row_index("_i").filter(pl.col("model").is_in(models))
    prompts = common_prompts(idx, models)
    if len(prompts) < 3:
        raise ValueError(f"models share only {len(prompts)} answered prompts; need at least 3")
    pos = {(m, p): i for i, m, p in idx.select("_i", "model", "prompt").iter_rows()}
    X = np.stack([np.stack([vectors[pos[(m, p)]] for p in prompts]) for m in models]).astype(np.float64)
    return models, prompts, X


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


# ------------------------------------------------------------------------------ homogenisation
@dataclass(frozen=True)
class Homogenisation:
    """Result of :func:`homogenisation_index`."""

    index: float  # 1 = indistinguishable, 0 = every answer recognisable
    accuracy: float  # leave-one-prompt-out nearest-centroid accuracy
    chance: float  # 1 / number of models
    n_models: int
    n_prompts: int
    per_model_accuracy: dict[str, float]


def homogenisation_index(X: np.ndarray, models: Sequence[str] | None = None) -> Homogenisation:
    """Homogenisation index of ``X[model, prompt, dim]`` (see the module docstring)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3 or X.shape[0] < 2 or X.shape[1] < 3:
        raise ValueError("X must be [models >= 2, prompts >= 3, dim]")
    K, P, _ = X.shape
    models = list(models) if models is not None else [str(i) for i in range(K)]
    R = X - X.mean(axis=0, keepdims=True)
    sums = R.sum(axis=1)  # [K, d]
    full = _unit(sums / P)
    correct = np.zeros((K, P), dtype=bool)
    for m in range(K):
        own = _unit((sums[m][None, :] - R[m]) / (P - 1))  # [P, d] leave-one-out own centroid
        r = _unit(R[m])
        sims = r @ full.T  # [P, K]
        sims[:, m] = np.sum(r * own, axis=1)
        correct[m] = sims.argmax(axis=1) == m
    acc = float(correct.mean())
    chance = 1.0 / K
    index = 1.0 - max(0.0, (acc - chance) / (1.0 - chance))
    return Homogenisation(
        index=float(index), accuracy=acc, chance=chance, n_models=K, n_prompts=P,
        per_model_accuracy={models[m]: float(correct[m].mean()) for m in range(K)},
    )


def homogenisation_table(X: np.ndarray, models: Sequence[str], sets: dict[str, Sequence[str]]) -> pl.DataFrame:
    """:func:`homogenisation_index` of each named set of models (``X[model, prompt, dim]`` over ``models``):
    one row per set with at least two of its members in ``models`` (set, index, accuracy, chance, n_models)."""
    models = list(models)
    rows = []
    for name, members in sets.items():
        idx = [models.index(m) for m in members if m in models]
        if len(idx) >= 2:
            h = homogenisation_index(X[idx], [models[i] for i in idx])
            rows.append({"set": name, "index": h.index, "accuracy": h.accuracy, "chance": h.chance,
                         "n_models": h.n_models})
    return pl.DataFrame(rows)


def pairwise_indistinguishability(X: np.ndarray) -> np.ndarray:
    """[K, K] homogenisation index of every pair of models (1 on the diagonal).

    For a pair, the paired difference ``d_p = X[i, p] - X[j, p]`` is classified by the sign of its dot
    product with the mean of the other differences (leave-one-out): the share of correct signs is the
    two-model accuracy, rescaled as in :func:`homogenisation_index`.
    """
    X = np.asarray(X, dtype=np.float64)
    K, P, _ = X.shape
    H = np.ones((K, K))
    for i in range(K):
        for j in range(i + 1, K):
            d = X[i] - X[j]
            s = d.sum(axis=0)
            dots = d @ s - np.einsum("pd,pd->p", d, d)  # d_p . (S - d_p)
            acc = float(np.mean(dots > 0))
            H[i, j] = H[j, i] = 1.0 - max(0.0, 2.0 * acc - 1.0)
    return H


# ------------------------------------------------------------------------------ model similarity
def model_similarity(X: np.ndarray, method: str = "profile") -> np.ndarray:
    """[K, K] similarity of models from ``X[model, prompt, dim]``.

    ``profile``: cosine between models' mean residuals (what each model does differently from the
    set) -- sensitive to shared habits, used for lineage. ``paired``: mean cosine of the two models'
    answers to the same prompt -- includes content, closer to the paper's RSE.
    """
    X = np.asarray(X, dtype=np.float64)
    if method == "profile":
        prof = _unit((X - X.mean(axis=0, keepdims=True)).mean(axis=1))
        return prof @ prof.T
    if method == "paired":
        U = _unit(X)
        return np.einsum("ipd,jpd->ij", U, U) / X.shape[1]
    raise ValueError(f"unknown similarity method {method!r}; use 'profile' or 'paired'")


def cluster_models(
    models: Sequence[str],
    similarity: np.ndarray,
    *,
    method: str = "agglomerative",
    threshold: float | None = None,
    n_clusters: int | None = None,
    min_cluster_size: int = 2,
) -> dict[str, int]:
    """Clusters of models from a [K, K] similarity (distance = 1 - similarity, :func:`distill_kit.lineage.tree.distances`).

    ``agglomerative`` (average linkage, :func:`distill_kit.lineage.tree.cut_tree`): cut at ``n_clusters`` or at
    distance ``threshold`` (default: the median pairwise distance). ``hdbscan``: sklearn HDBSCAN on the
    precomputed distance; models in no dense group get cluster -1.
    """
    S = np.asarray(similarity, dtype=np.float64)
    if S.shape != (len(models), len(models)):
        raise ValueError(f"similarity must be {len(models)}x{len(models)}, got {S.shape}")
    if method == "agglomerative":
        return cut_tree(models, S, n_clusters=n_clusters, threshold=threshold)
    if method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        hd = HDBSCAN(metric="precomputed", min_cluster_size=max(2, min_cluster_size), allow_single_cluster=True,
                     copy=True)
        labels = hd.fit_predict(distances(S))
        return {m: int(c) for m, c in zip(models, labels)}
    raise ValueError(f"unknown clustering method {method!r}; use 'agglomerative' or 'hdbscan'")


def cluster_table(clusters: dict[str, int]) -> pl.DataFrame:
    """(model, cluster) rows of :func:`cluster_models`'s result, grouped by cluster."""
    return pl.DataFrame({"model": list(clusters), "cluster": list(clusters.values())}).sort("cluster")


# ------------------------------------------------------------------------------------------ maps
def preview(text: str, lines: int = 3, width: int = 240) -> str:
    """First ``lines`` non-empty lines of ``text``, cut to ``width`` chars.

    Not HTML-escaped here: the tooltip (vega-tooltip's default sanitiser) escapes what it shows, and
    escaping twice would display ``&lt;`` for ``<``. Pages embed the spec with ``report.script_json``."""
    kept = [ln.strip() for ln in str(text).splitlines() if ln.strip()][:lines]
    short = " / ".join(kept)
    if len(short) > width:
        short = short[: width - 1] + "…"
    return short


def umap_2d(
    vectors: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1
) -> np.ndarray:
    """Seeded 2-D UMAP (cosine metric) of ``vectors``; tiny inputs fall back to PCA."""
    V = np.asarray(vectors, dtype=np.float32)
    if len(V) < 3:
        raise ValueError(f"need at least 3 vectors for a map, got {len(V)}")
    if len(V) <= n_neighbors + 1:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(V).astype(np.float32)
    import umap

    cache_umap_kernels()
    reducer = umap.UMAP(
        n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed,
        n_jobs=1, precomputed_knn=cosine_knn(V, n_neighbors),
    )
    with warnings.catch_warnings():  # "precomputed_knn ... transform" : the map never transforms new points
        warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
        return reducer.fit_transform(V).astype(np.float32)


@lru_cache(maxsize=1)
def cache_umap_kernels() -> int:
    """Have numba keep UMAP's compiled kernels on disk, as pynndescent (which UMAP uses) already does for its own.

    Why: umap-learn 0.5 compiles a handful of numba functions without ``cache=True`` (the layout's SGD epoch,
    ``smooth_knn_dist``, the membership strengths, its random numbers): about 7-10 CPU s before the first map in
    every new process -- every notebook 05 kernel, every papermill run, every Ray worker. ``enable_caching`` is
    what numba's ``cache=True`` calls: the machine code is stored beside umap's source (or in numba's user-wide
    cache folder where that is read-only) and keyed by that source file, so another umap version compiles
    afresh. The maps are the same (seeded); only the compilation is skipped. Returns how many were switched
    (0 where numba's internals are not the ones this was written for: the map then compiles, as before)."""
    import umap.layouts
    import umap.umap_
    import umap.utils

    try:
        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return 0

    switched = 0
    for module in (umap.umap_, umap.layouts, umap.utils):
        for kernel in vars(module).values():
            if (isinstance(kernel, CPUDispatcher) and isinstance(getattr(kernel, "_cache", None), NullCache)
                    and not kernel.overloads and hasattr(kernel, "enable_caching")):
                kernel.enable_caching()
                switched += 1
    return switched


def cosine_knn(vectors: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours by cosine distance (1 - cos), each point its own first neighbour:
    ``(indices, distances)``, both [N, k], as UMAP's ``precomputed_knn`` takes them.

    Why not UMAP's own: below 4,096 points it computes the same exact neighbours, but through a
    numba-parallel kernel compiled in every new process (about 13 of the 16.6 CPU seconds of a first
    map of 1,275 answers here), and above that it switches to approximate NN-descent (more compilation).
    Here it is one matrix product per block of rows: ~0.1 CPU s for 1,275 points, a few for 10,000."""
    V = np.asarray(vectors, dtype=np.float32)
    n = len(V)
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    U = V / np.where(norms > 0, norms, 1.0)
    k = min(k, n)
    idx = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        D = 1.0 - U[start:stop] @ U.T
        rows = np.arange(stop - start)
        D[rows, start + rows] = -1.0  # self first, even beside an identical answer
        part = np.argpartition(D, k - 1, axis=1)[:, :k]
        d = np.take_along_axis(D, part, axis=1)
        order = np.lexsort((part, d), axis=1)  # by distance, ties by index: the same on every machine
        idx[start:stop] = np.take_along_axis(part, order, axis=1)
        dist[start:stop] = np.maximum(np.take_along_axis(d, order, axis=1), 0.0)
    return idx, dist


def prompt_residuals(frame: pl.DataFrame, vectors: np.ndarray) -> np.ndarray:
    """Each vector minus the mean vector of all answers to the same prompt.

    Raw answer embeddings cluster by *prompt* (content dominates); residuals show how each model
    answers differently from the others, which is what lineage and homogenisation are about.
    """
    if len(frame) != len(vectors):
        raise ValueError(f"frame has {len(frame)} rows but {len(vectors)} vectors were given")
    V = np.asarray(vectors, dtype=np.float64)
    prompts = np.asarray(frame["prompt"].to_list(), dtype=object)
    out = np.empty_like(V)
    for p in set(prompts.tolist()):
        idx = np.flatnonzero(prompts == p)
        out[idx] = V[idx] - V[idx].mean(axis=0)
    return out


def response_map(
    frame: pl.DataFrame, vectors: np.ndarray, *, seed: int = 0, n_neighbors: int = 15,
    min_dist: float = 0.1, residual: bool = True, extra: Sequence[str] = (),
) -> pl.DataFrame:
    """Frame for the response map: x, y, model, prompt (first line), preview (first lines of the answer).

    ``residual`` maps :func:`prompt_residuals` (model style) instead of raw vectors (prompt content).
    ``extra`` names further columns of ``frame`` to carry over (e.g. ``cluster``, ``dataset``).
    """
    V = prompt_residuals(frame, vectors) if residual else vectors
    xy = umap_2d(V, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    return pl.DataFrame({
        "x": xy[:, 0],
        "y": xy[:, 1],
        "model": frame["model"].to_list(),
        "prompt": [preview(p, lines=1, width=160) for p in frame["prompt"].to_list()],
        "preview": [preview(t) for t in frame["text"].to_list()],
        **{c: frame[c].to_list() for c in extra},
    })


def map_centroids(points: pl.DataFrame) -> pl.DataFrame:
    """Per-model centroid of the 2-D map points (for labelling the map)."""
    return points.group_by("model").agg(pl.col("x").mean(), pl.col("y").mean(), pl.len().alias("n")).sort("model")


def similarity_frame(models: Sequence[str], S: np.ndarray, name: str = "similarity") -> pl.DataFrame:
    """Long (model_a, model_b, value) frame of a [K, K] matrix, for heatmaps."""
    return pl.DataFrame([
        {"model_a": a, "model_b": b, name: float(S[i, j])}
        for i, a in enumerate(models) for j, b in enumerate(models)
    ])
