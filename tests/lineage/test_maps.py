"""Homogenisation index, pairwise indistinguishability, clusters and map frames on synthetic data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distill_kit.lineage import maps


def synthetic(offsets: np.ndarray, n_prompts: int = 120, noise: float = 1.0, seed: int = 0) -> np.ndarray:
    """X[model, prompt, dim] = prompt content (shared, large) + model offset + answer noise."""
    rng = np.random.default_rng(seed)
    k, d = offsets.shape
    content = rng.normal(scale=5.0, size=(1, n_prompts, d))
    return content + offsets[:, None, :] + rng.normal(scale=noise, size=(k, n_prompts, d))


def test_identical_models_are_homogenised() -> None:
    h = maps.homogenisation_index(synthetic(np.zeros((5, 16))))
    assert h.index > 0.85, h
    assert abs(h.accuracy - 0.2) < 0.1


def test_distinct_models_are_not() -> None:
    rng = np.random.default_rng(1)
    h = maps.homogenisation_index(synthetic(rng.normal(scale=3.0, size=(5, 16))))
    assert h.index < 0.05, h
    assert h.accuracy > 0.95


def test_two_groups_pairwise_and_clusters() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(scale=3.0, size=16), rng.normal(scale=3.0, size=16)
    X = synthetic(np.stack([a, a, b, b]))
    names = ["a1", "a2", "b1", "b2"]
    H = maps.pairwise_indistinguishability(X)
    assert H[0, 1] > 0.7 and H[2, 3] > 0.7  # same offset: indistinguishable
    assert H[0, 2] < 0.1 and H[1, 3] < 0.1  # different offset: separable
    whole = maps.homogenisation_index(X, names)
    assert 0.2 < whole.index < 0.8  # half the models are twins: in between
    for method in ("profile", "paired"):
        S = maps.model_similarity(X, method)
        clusters = maps.cluster_models(names, S, n_clusters=2)
        assert clusters["a1"] == clusters["a2"] != clusters["b1"] == clusters["b2"]
    hd = maps.cluster_models(names, maps.model_similarity(X, "profile"), method="hdbscan")
    assert hd["a1"] == hd["a2"] and hd["b1"] == hd["b2"]


def test_aligned_tensor_and_map_escape() -> None:
    frame = pl.DataFrame({
        "model": ["m1", "m2", "m1", "m2", "m1", "m2", "m1"],
        "prompt": ["p1", "p1", "p2", "p2", "p3", "p3", "p4"],
        "text": ["<script>x</script>\nline2", "b", "c", "d", "e", "f", "g"],
    })
    vecs = np.random.default_rng(0).normal(size=(7, 4))
    models, prompts, X = maps.aligned_tensor(frame, vecs)
    assert models == ["m1", "m2"] and prompts == ["p1", "p2", "p3"] and X.shape == (2, 3, 4)
    assert np.allclose(X[1, 0], vecs[1])
    pts = maps.response_map(frame, vecs, seed=0)
    # raw text in the data (the tooltip escapes once); a page embedding the spec must not carry raw tags
    assert pts.height == 7 and pts["preview"][0] == "<script>x</script> / line2"
    assert set(maps.map_centroids(pts)["model"]) == {"m1", "m2"}
    from distill_kit.lineage import charts

    spec = charts.response_map(pts, maps.map_centroids(pts)).to_dict()
    from distill_kit.run.report import script_json

    embedded = script_json(spec)
    assert "<script>" not in embedded and "</script>" not in embedded and "\\u003cscript" in embedded
    assert spec["layer"][0]["encoding"]["color"]["scale"]["scheme"] == "tableau10"
    many = pl.DataFrame({"model": [f"m{i}" for i in range(12)], "x": [0.0] * 12, "y": [0.0] * 12,
                         "prompt": ["p"] * 12, "preview": ["t"] * 12})
    assert charts.response_map(many).to_dict()["layer"][0]["encoding"]["color"]["scale"]["scheme"] == "tableau20"
    heat = charts.heatmap(maps.similarity_frame(["m1", "m2"], np.eye(2), "indistinguishability"), "model_a", "model_b",
                          "indistinguishability").to_dict()
    assert heat["encoding"]["color"]["legend"]["titleLimit"] == 260  # long value names shown whole
    with pytest.raises(ValueError, match="rows"):
        maps.aligned_tensor(frame, vecs[:3])
    with pytest.raises(ValueError, match="unknown"):
        maps.model_similarity(X, "nope")


def test_answer_map_past_altairs_row_guard() -> None:
    """Paper scale: 200 prompts x 34 models = 6,800 points, past Altair's default 5,000-row limit."""
    import polars as pl

    from distill_kit.lineage import charts

    n = 6800
    points = pl.DataFrame({"model": [f"m{i % 34}" for i in range(n)], "x": [float(i % 97) for i in range(n)],
                           "y": [float(i % 89) for i in range(n)], "prompt": ["p"] * n, "preview": ["t"] * n})
    spec = charts.response_map(points).to_dict()
    assert sum(len(v) for v in spec.get("datasets", {}).values()) >= n


def test_homogenisation_table_and_cluster_table() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(scale=3.0, size=16), rng.normal(scale=3.0, size=16)
    X = synthetic(np.stack([a, a, b, b]))
    names = ["a1", "a2", "b1", "b2"]
    hi = maps.homogenisation_table(X, names, {"all": names, "twins": ["a1", "a2", "absent"], "one": ["b1"]})
    assert hi["set"].to_list() == ["all", "twins"]  # a set with fewer than two present members is left out
    assert hi.row(0, named=True)["index"] == maps.homogenisation_index(X, names).index
    assert hi.row(1, named=True)["n_models"] == 2 and hi.row(1, named=True)["index"] > 0.7
    table = maps.cluster_table({"x": 1, "y": 0, "z": 1})
    assert table.columns == ["model", "cluster"] and table["cluster"].to_list() == [0, 1, 1]


def test_cosine_knn_is_exact_with_each_point_first() -> None:
    from sklearn.neighbors import NearestNeighbors

    V = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
    V[7] = V[5]  # an identical answer: each copy still lists itself first
    idx, dist = maps.cosine_knn(V, 15, block=64)
    assert idx.shape == dist.shape == (300, 15) and (idx[:, 0] == np.arange(300)).all() and (dist[:, 0] == 0).all()
    ref_d, ref_i = NearestNeighbors(n_neighbors=15, metric="cosine", algorithm="brute").fit(V).kneighbors(V)
    assert np.allclose(dist, ref_d, atol=1e-5) and (idx[:, 1:] == ref_i[:, 1:]).mean() > 0.99
    assert (np.diff(dist, axis=1) >= 0).all()


def test_the_map_uses_the_exact_neighbours_not_umaps_compiled_search(monkeypatch) -> None:
    """UMAP's own neighbour search is a numba kernel compiled in every process (most of a first map's CPU)."""
    import umap.umap_

    def refuse(*_a, **_k):
        raise AssertionError("UMAP searched for neighbours itself")

    monkeypatch.setattr(umap.umap_, "nearest_neighbors", refuse)
    xy = maps.umap_2d(np.random.default_rng(0).normal(size=(40, 8)), seed=0)
    assert xy.shape == (40, 2) and np.isfinite(xy).all()


def test_umaps_own_kernels_are_compiled_once_per_machine_not_once_per_process() -> None:
    """The kernels UMAP compiles without numba's disk cache get it before the first map (7-10 CPU s a process)."""
    import umap.layouts
    import umap.umap_
    from numba.core.caching import NullCache

    maps.umap_2d(np.random.default_rng(0).normal(size=(40, 8)), seed=0)
    kernels = [umap.layouts._nb_optimize_layout_euclidean_single_epoch, umap.umap_.smooth_knn_dist,
               umap.umap_.compute_membership_strengths]
    assert all(k.overloads for k in kernels)  # the map used them
    assert not any(isinstance(k._cache, NullCache) for k in kernels)
    assert maps.cache_umap_kernels() == maps.cache_umap_kernels()  # once per process
