"""The one similarity -> distance -> average linkage -> tree path: lineage trees, clusters, leaf order."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distill_kit.lineage import tree as T
from distill_kit.lineage.attribution import build_features
from distill_kit.lineage.prompts import common_prompts, split_prompts
from tests.helpers.lineage_habits import HABITS

BLOCKS = ["a1", "b1", "a2", "b2", "a3"]
GROUP = {"a1": 0, "a2": 0, "a3": 0, "b1": 1, "b2": 1}


def block_similarity(high: float = 0.9, low: float = 0.2) -> np.ndarray:
    """Two blocks of alike models (a*, b*): ``high`` within a block, ``low`` across; a1 and a2 a bit less alike."""
    S = np.array([[high if GROUP[r] == GROUP[c] else low for c in BLOCKS] for r in BLOCKS])
    S[0, 2] = S[2, 0] = high - 0.1
    np.fill_diagonal(S, 1.0)
    return S


def test_tree_on_attribution_similarity_puts_the_student_by_its_teacher(echo_frame: pl.DataFrame) -> None:
    fit, score = split_prompts(common_prompts(echo_frame), 0.5, 0)
    feats = build_features(echo_frame, list(HABITS) + ["student"], fit, score)
    names, S = T.similarity_matrix(feats)
    assert np.allclose(S, S.T)
    tree = T.lineage_tree(names, S)
    assert sorted(tree.leaves) == sorted(names) and tree.labels == names
    pos = {m: i for i, m in enumerate(tree.leaves)}
    assert abs(pos["student"] - pos["teacher-a"]) <= 2  # the student sits next to its teacher family
    assert len(tree.segments) == 3 * (len(names) - 1)


def test_distances_symmetrise_clip_and_fill_missing() -> None:
    S = np.array([[1.0, 0.4, 1.3], [0.6, 1.0, np.nan], [1.3, np.nan, 1.0]])
    D = T.distances(S)
    assert np.array_equal(np.diag(D), np.zeros(3)) and D[0, 1] == pytest.approx(0.5) and D[0, 2] == 0.0
    assert D[1, 2] == pytest.approx(np.nanmean(1.0 - (S + S.T) / 2))  # the mean distance, diagonal included
    assert T.distances(np.array([[5.0, 3.0], [3.0, 5.0]]), top=None)[0, 1] == 2.0


def test_record_round_trip_and_likert_scale() -> None:
    S = block_similarity()
    tree = T.lineage_tree(BLOCKS, S)
    record = T.tree_record(tree)
    assert record["labels"] == BLOCKS and len(record["linkage"]) == len(BLOCKS) - 1
    again = T.tree_from_record(record)
    assert again.leaves == tree.leaves and np.array_equal(again.linkage, tree.linkage)
    likert = T.lineage_tree(BLOCKS, 1.0 + 4.0 * S, scale=(1.0, 5.0))  # the same similarity on a 1-5 scale
    assert np.allclose(likert.linkage, tree.linkage)
    with pytest.raises(ValueError, match="square"):
        T.lineage_tree(BLOCKS, S[:3])
    with pytest.raises(ValueError, match="order"):
        T.tree_record(T.Tree(tree.leaves, tree.segments, tree.linkage))


def test_cut_tree_finds_the_blocks() -> None:
    by_count = T.cut_tree(BLOCKS, block_similarity(), n_clusters=2)
    assert by_count["a1"] == by_count["a2"] == by_count["a3"] != by_count["b1"] == by_count["b2"]
    assert T.cut_tree(BLOCKS, block_similarity()) == by_count  # the median distance cuts between the blocks
    assert len(set(T.cut_tree(BLOCKS, block_similarity(), threshold=0.01).values())) == 5


def test_cluster_order_groups_blocks() -> None:
    mat = np.array([[5.0 if GROUP[r] == GROUP[c] else 2.0 for c in BLOCKS] for r in BLOCKS])
    mat[0, 2] = mat[2, 0] = 4.5
    frame = pl.DataFrame({c: mat[:, k] for k, c in enumerate(BLOCKS)}).insert_column(0, pl.Series("model", BLOCKS))
    order = T.cluster_order(frame)
    assert sorted(order) == sorted(BLOCKS)
    assert [GROUP[m] for m in order] in ([0, 0, 0, 1, 1], [1, 1, 0, 0, 0])
    assert T.cluster_order(frame.head(2).select("model", "a1", "b1")) == ["a1", "b1"]  # too few to cluster
