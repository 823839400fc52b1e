"""(moved from distill_kit.lineage.signals)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from distill_kit.lineage.signals import LineageFeatures, _signal


@dataclass(frozen=True)
class Tree:
    """A dendrogram: leaf order and the segments to draw (x along leaves, y = merge distance)."""

    leaves: list[str]
    segments: pl.DataFrame  # x, y, x2, y2
    linkage: np.ndarray
def lineage_tree(models: Sequence[str], similarity: np.ndarray, method: str = "average") -> Tree:
    """Hierarchical clustering of models on distance ``1 - similarity`` laid out as a dendrogram."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    S = np.asarray(similarity, dtype=np.float64)
    if S.shape != (len(models), len(models)) or len(models) < 2:
        raise ValueError(f"similarity must be a square matrix over >= 2 models, got {S.shape}")
    D = np.clip(1.0 - (S + S.T) / 2.0, 0.0, None)
    np.fill_diagonal(D, 0.0)
    return tree_from_linkage(linkage(squareform(D, checks=False), method=method), models)
def tree_from_linkage(Z: np.ndarray | Sequence[Sequence[float]], models: Sequence[str]) -> Tree:
    """Dendrogram layout of a scipy linkage matrix (e.g. one a run summary recorded)."""
    from scipy.cluster.hierarchy import dendrogram

    Z = np.asarray(Z, dtype=np.float64)
    dn = dendrogram(Z, labels=list(models), no_plot=True)
    segs = []
    for xs, ys in zip(dn["icoord"], dn["dcoord"]):
        for k in range(3):  # each merge is a U of three segments
            segs.append({"x": (xs[k] - 5) / 10, "y": ys[k], "x2": (xs[k + 1] - 5) / 10, "y2": ys[k + 1]})
    return Tree(leaves=list(dn["ivl"]), segments=pl.DataFrame(segs), linkage=Z)
def similarity_matrix(
    feats: LineageFeatures, models: Sequence[str] | None = None, signal: str = "paired"
) -> tuple[list[str], np.ndarray]:
    """Model x model similarity from one signal (symmetrised), for trees and clusters."""
    models = list(models) if models is not None else list(feats.models)
    S = _signal(feats, signal, models, models)
    return models, (S + S.T) / 2.0
