"""The one way from a model x model similarity to a tree: distance, average linkage, dendrogram, leaf order.

Why one module: the lineage tree (notebook 05), the clusters of homogenised models
(:func:`distill_kit.lineage.maps.cluster_models`), the RSE heatmaps' model order (:func:`cluster_order`)
and the report's tree all turn a similarity into a distance and cluster it; doing it in one place keeps
them consistent. Distance is ``top - similarity`` after symmetrising (``top`` = 1 for similarities in
[0, 1]); average linkage throughout. A run records its tree as :func:`tree_record` so the report draws
it without recomputing (:func:`tree_from_record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from distill_kit.lineage.attribution import LineageFeatures, signal_matrix


@dataclass(frozen=True)
class Tree:
    """A dendrogram: leaf order and the segments to draw (x along leaves, y = merge distance)."""

    leaves: list[str]
    segments: pl.DataFrame  # x, y, x2, y2
    linkage: np.ndarray
    labels: list[str] | None = None  # the models in linkage order (the similarity's rows)


def distances(similarity: np.ndarray | Sequence[Sequence[float]], top: float | None = 1.0) -> np.ndarray:
    """Square distance ``top - (S + S.T) / 2`` with a zero diagonal, clipped at 0; missing (NaN) cells take
    the mean distance. ``top=None`` uses the largest similarity present (for scores on any scale)."""
    S = np.asarray(similarity, dtype=np.float64)
    S = (S + S.T) / 2.0
    D = (np.nanmax(S) if top is None else top) - S
    if np.isnan(D).any():
        D = np.where(np.isnan(D), np.nanmean(D), D)
    np.fill_diagonal(D, 0.0)
    return np.clip(D, 0.0, None)


def _condensed(D: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import squareform

    return squareform(D, checks=False)


def average_linkage(D: np.ndarray, method: str = "average") -> np.ndarray:
    """scipy linkage matrix of a square distance (:func:`distances`)."""
    from scipy.cluster.hierarchy import linkage

    return linkage(_condensed(D), method=method)


def lineage_tree(models: Sequence[str], similarity: np.ndarray | Sequence[Sequence[float]], method: str = "average",
                 scale: tuple[float, float] = (0.0, 1.0)) -> Tree:
    """Hierarchical clustering of models on distance ``1 - similarity`` laid out as a dendrogram.

    ``scale`` is the similarity's range (e.g. ``(1, 5)`` for Likert scores), mapped to [0, 1] first."""
    S = np.asarray(similarity, dtype=np.float64)
    if S.shape != (len(models), len(models)) or len(models) < 2:
        raise ValueError(f"similarity must be a square matrix over >= 2 models, got {S.shape}")
    lo, hi = scale
    if (lo, hi) != (0.0, 1.0):
        S = (S - lo) / (hi - lo)
    return tree_from_linkage(average_linkage(distances(S), method), models)


def tree_from_linkage(Z: np.ndarray | Sequence[Sequence[float]], models: Sequence[str]) -> Tree:
    """Dendrogram layout of a scipy linkage matrix over ``models`` (e.g. one a run summary recorded)."""
    from scipy.cluster.hierarchy import dendrogram

    Z = np.asarray(Z, dtype=np.float64)
    dn = dendrogram(Z, labels=list(models), no_plot=True)
    segs = []
    for xs, ys in zip(dn["icoord"], dn["dcoord"]):
        for k in range(3):  # each merge is a U of three segments
            segs.append({"x": (xs[k] - 5) / 10, "y": ys[k], "x2": (xs[k + 1] - 5) / 10, "y2": ys[k + 1]})
    return Tree(leaves=list(dn["ivl"]), segments=pl.DataFrame(segs), linkage=Z, labels=[str(m) for m in models])


def tree_record(tree: Tree) -> dict[str, Any]:
    """What a run summary records of a tree: ``{"labels": models in linkage order, "linkage": [[...]]}``,
    enough for :func:`tree_from_record` to draw it again."""
    if tree.labels is None:
        raise ValueError("the tree does not know its models' order; build it with lineage_tree or tree_from_linkage")
    return {"labels": list(tree.labels), "linkage": tree.linkage.tolist()}


def tree_from_record(record: dict[str, Any]) -> Tree:
    """The tree a run summary recorded (:func:`tree_record`)."""
    return tree_from_linkage(record["linkage"], record["labels"])


def cut_tree(models: Sequence[str], similarity: np.ndarray, *, n_clusters: int | None = None,
             threshold: float | None = None) -> dict[str, int]:
    """Average-linkage clusters (0-based ids) of models on ``1 - similarity``: cut into ``n_clusters``, or at
    distance ``threshold`` (default: the median pairwise distance)."""
    from scipy.cluster.hierarchy import fcluster

    D = distances(similarity)
    Z = average_linkage(D)
    if n_clusters is not None:
        labels = fcluster(Z, t=n_clusters, criterion="maxclust")
    else:
        t = threshold if threshold is not None else float(np.median(D[np.triu_indices(len(models), 1)]))
        labels = fcluster(Z, t=t, criterion="distance")
    return {m: int(c) - 1 for m, c in zip(models, labels)}


def cluster_order(matrix: pl.DataFrame) -> list[str]:
    """Models ordered by average-linkage hierarchical clustering of a similarity matrix (a ``model``
    column plus one column per model), with optimal leaf ordering so similar models sit side by side.

    Distance = max similarity - symmetrised similarity (any score scale); missing cells take the mean distance.
    """
    from scipy.cluster.hierarchy import leaves_list, optimal_leaf_ordering

    models = matrix["model"].to_list()
    if len(models) < 3:
        return models
    D = distances(matrix.select(models).to_numpy().astype(float), top=None)
    Z = optimal_leaf_ordering(average_linkage(D), _condensed(D))
    return [models[i] for i in leaves_list(Z)]


def similarity_matrix(
    feats: LineageFeatures, models: Sequence[str] | None = None, signal: str = "paired"
) -> tuple[list[str], np.ndarray]:
    """Model x model similarity from one attribution signal (symmetrised), for trees and clusters."""
    models = list(models) if models is not None else list(feats.models)
    S = signal_matrix(feats, signal, models, models)
    return models, (S + S.T) / 2.0
