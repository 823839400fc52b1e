"""Altair charts for maps, lineage trees, attribution and confusion. Frames in, charts out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from distill_kit.charts import alt
from distill_kit.charts import heatmap as shared_heatmap
from distill_kit.lineage.tree import Tree


def model_colours(n_models: int) -> alt.Scale:
    """Ten distinct hues run out at eleven models (two models would share a colour); use twenty then."""
    return alt.Scale(scheme="tableau10" if n_models <= 10 else "tableau20")


def response_map(points: pl.DataFrame, centroids: pl.DataFrame | None = None, title: str = "") -> alt.LayerChart:
    """UMAP scatter of responses coloured by model; hover shows model, prompt and the answer's first
    lines (raw text; vega-tooltip escapes it when shown). Centroids get a label."""
    colours = model_colours(points["model"].n_unique())
    base = alt.Chart(points.to_pandas()).mark_circle(size=28, opacity=0.55).encode(
        x=alt.X("x:Q", axis=None, scale=alt.Scale(zero=False)),
        y=alt.Y("y:Q", axis=None, scale=alt.Scale(zero=False)),
        color=alt.Color("model:N", scale=colours, legend=alt.Legend(columns=1, labelLimit=220, symbolLimit=60)),
        tooltip=["model:N", "prompt:N", alt.Tooltip("preview:N", title="answer")],
    )
    layers: list[alt.Chart] = [base]
    if centroids is not None and len(centroids):
        c = alt.Chart(centroids.to_pandas())
        layers.append(c.mark_point(shape="diamond", size=140, filled=True, stroke="black", strokeWidth=1).encode(
            x="x:Q", y="y:Q", color=alt.Color("model:N", scale=colours, legend=None), tooltip=["model:N", "n:Q"]))
        layers.append(c.mark_text(dy=-11, fontSize=10, fontWeight="bold").encode(x="x:Q", y="y:Q", text="model:N"))
    return alt.layer(*layers).properties(title=title, width=560, height=440).interactive()


def dendrogram(tree: Tree, title: str = "lineage tree", highlight: dict[str, str] | None = None) -> alt.LayerChart:
    """Horizontal dendrogram: leaves on the y axis, merge distance (1 - similarity) on x.
    ``highlight`` maps model -> group (e.g. role) to colour the leaf labels."""
    segs = tree.segments.to_pandas()
    n = len(tree.leaves)
    leaves = pl.DataFrame({
        "model": tree.leaves,
        "pos": [float(i) for i in range(n)],
        "group": [(highlight or {}).get(m, "") for m in tree.leaves],
    }).to_pandas()
    ymax = float(tree.segments["y"].max() or 1.0) if len(tree.segments) else 1.0
    scale_y = alt.Scale(domain=[-0.5, n - 0.5], reverse=True)
    lines = alt.Chart(segs).mark_rule(color="#555").encode(
        y=alt.Y("x:Q", scale=scale_y, axis=None),
        y2="x2:Q",
        x=alt.X("y:Q", scale=alt.Scale(domain=[ymax * 1.02, 0]), title="distance (1 - similarity)"),
        x2="y2:Q",
    )
    labels = alt.Chart(leaves).mark_text(align="left", dx=4, fontSize=10).encode(
        y=alt.Y("pos:Q", scale=scale_y, axis=None),
        x=alt.value(0),
        text="model:N",
        color=alt.Color("group:N", title="role") if highlight else alt.value("black"),
    )
    tree_chart = lines.properties(width=320, height=max(14 * n, 120))
    label_chart = labels.properties(width=220, height=max(14 * n, 120))
    return alt.hconcat(tree_chart, label_chart, spacing=0).properties(title=title)  # type: ignore[return-value]


def heatmap(
    frame: pl.DataFrame, row: str, col: str, value: str, order: Sequence[str] | None = None, title: str = "",
    scheme: str = "viridis", fmt: str = ".2f", size: int = 14,
) -> alt.Chart:
    """Square heatmap (similarity, indistinguishability, confusion shares): :func:`distill_kit.charts.heatmap`."""
    return shared_heatmap(frame, row, col, value, order=order, title=title, scheme=scheme, fmt=fmt, cell=size)


def confusion(frame: pl.DataFrame, order: Sequence[str] | None = None, title: str = "who wrote this? (held-out)") -> alt.Chart:
    """Confusion matrix of :meth:`distill_kit.lineage.authorship.WhoWrote.confusion_frame` (share per true model)."""
    return heatmap(frame, "true", "predicted", "share", order=order, title=title, scheme="blues")


def attribution(long: pl.DataFrame, truth: dict[str, str] | None = None, title: str = "teacher attribution") -> alt.LayerChart:
    """Student x candidate heatmap of calibrated probabilities; documented teachers are outlined."""
    data = long.with_columns(
        pl.struct("student", "candidate").map_elements(
            lambda r: bool(truth) and (truth or {}).get(r["student"]) == r["candidate"], return_dtype=pl.Boolean
        ).alias("documented")
    ).to_pandas()
    cands = long.group_by("candidate").agg(pl.col("probability").mean()).sort("probability", descending=True)["candidate"].to_list()
    base = alt.Chart(data).encode(
        x=alt.X("candidate:N", sort=cands, axis=alt.Axis(labelAngle=-60, labelLimit=180)),
        y=alt.Y("student:N", axis=alt.Axis(labelLimit=220)),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("probability:Q", scale=alt.Scale(scheme="orangered", domain=[0, 1])),
        tooltip=["student:N", "candidate:N", "rank:Q", alt.Tooltip("probability:Q", format=".3f"),
                 alt.Tooltip("score:Q", format=".2f")],
    )
    box = base.transform_filter("datum.documented").mark_rect(fill=None, stroke="black", strokeWidth=2)
    return alt.layer(rect, box).properties(title=title, width=14 * len(cands), height=18 * long["student"].n_unique())


def homogenisation_bars(frame: pl.DataFrame, title: str = "homogenisation index") -> alt.Chart:
    """Bars of a (set, index) frame, 0 = every answer recognisable, 1 = indistinguishable."""
    return alt.Chart(frame.to_pandas()).mark_bar().encode(
        x=alt.X("index:Q", scale=alt.Scale(domain=[0, 1]), title="homogenisation index"),
        y=alt.Y("set:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
        tooltip=["set:N", alt.Tooltip("index:Q", format=".3f"), alt.Tooltip("accuracy:Q", format=".3f"), "n_models:Q"],
    ).properties(title=title, width=360)


def answer_map(points: Sequence[Mapping[str, Any]], max_points: int = 4000) -> alt.Chart:
    """2-D UMAP map of answer embeddings from recorded points (model, x, y), coloured by model and thinned
    to ``max_points`` to keep a report page light. Only model, x and y are carried into the chart."""
    pts = list(points)
    if len(pts) > max_points:
        step = len(pts) / max_points
        pts = [pts[int(i * step)] for i in range(max_points)]
    pts = [{"model": str(p["model"]), "x": p.get("x"), "y": p.get("y")} for p in pts]
    return alt.Chart(alt.Data(values=pts)).mark_circle(size=14, opacity=0.6).encode(
        x=alt.X("x:Q", title="UMAP 1", axis=alt.Axis(labels=False)),
        y=alt.Y("y:Q", title="UMAP 2", axis=alt.Axis(labels=False)),
        color=alt.Color("model:N", scale=model_colours(len({p["model"] for p in pts}))), tooltip=["model:N"],
    ).properties(width=520, height=400, title="Answer embeddings (UMAP)").interactive()
