"""Altair charts and HTML for RSE. No data fetching here: frames in, charts out."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from distill_kit.charts import alt, heatmap


def similarity_heatmap(
    matrix: pl.DataFrame,
    order: Sequence[str] | None = None,
    title: str = "",
    domain: tuple[float, float] = (1.0, 5.0),
    labels: bool | None = None,
    size: int = 16,
) -> alt.Chart:
    """Model x model heatmap of a ``similarity.matrices`` frame (rows = test model, columns =
    reference), both axes in ``order`` (e.g. ``similarity.cluster_order``). Cell text is shown
    when ``labels`` (default: up to 14 models)."""
    models = list(order) if order else matrix["model"].to_list()
    long = matrix.unpivot(index="model", variable_name="reference", value_name="score").rename({"model": "test_model"})
    show = labels if labels is not None else len(models) <= 14
    cell = max(size, 24) if show else size  # "4.5" at 9 px needs ~20 px; smaller cells overprint their labels
    return heatmap(long.filter(pl.col("score").is_not_nan()), "test_model", "reference", "score", order=models,
                   title=title, domain=domain, cell=cell, legend_title="similarity", row_title="test model",
                   col_title="reference", col_label_limit=160, cell_text=".1f" if show else None)


def rse_table_chart(table: pl.DataFrame, prompt_sets: Sequence[str], title: str = "RSE vs reference (95% CI)") -> alt.LayerChart:
    """The RSE table as dots with 95% CI whiskers: one row per test model, one colour per prompt
    set plus the mean. ``table``: ``rse.scores.rse_table`` output."""
    cols = [*prompt_sets, "mean"] if len(prompt_sets) > 1 else list(prompt_sets)  # one set: mean == set
    parts = []
    for c in cols:
        if c not in table.columns:
            continue
        parts.append(
            table.select(
                "test_model",
                pl.lit(c).alias("column"),
                pl.col(c).cast(pl.Float64).alias("score"),
                pl.col(f"{c}_lo").cast(pl.Float64).alias("lo"),
                pl.col(f"{c}_hi").cast(pl.Float64).alias("hi"),
            )
        )
    if not parts:
        raise ValueError(f"RSE table has none of the columns {', '.join(cols)}")
    data = pl.concat(parts).filter(pl.col("score").is_not_null()).to_pandas()
    order = table["test_model"].to_list()
    base = alt.Chart(data).encode(
        y=alt.Y("test_model:N", sort=order, title=None),
        yOffset=alt.YOffset("column:N", sort=cols),
        color=alt.Color("column:N", sort=cols, title="prompt set"),
    )
    dots = base.mark_point(filled=True, size=50).encode(
        x=alt.X("score:Q", scale=alt.Scale(domain=[1, 5]), title="similarity (1-5)"),
        tooltip=["test_model:N", "column:N", alt.Tooltip("score:Q", format=".3f"), alt.Tooltip("lo:Q", format=".3f"),
                 alt.Tooltip("hi:Q", format=".3f")],
    )
    whiskers = base.mark_errorbar(ticks=True).encode(
        x=alt.X("lo:Q", scale=alt.Scale(domain=[1, 5]), title="similarity (1-5)"), x2="hi:Q"
    )
    height = max(120, 12 * len(order) * len(cols))
    return (whiskers + dots).properties(title=title, width=420, height=height)


def granularity_chart(scores: pl.DataFrame, granularities: Sequence[str] = ("style", "structure", "content")) -> alt.Chart:
    """Mean 1-5 score per test model (rows, best overall first) and granularity (coloured dots),
    from a per-prompt ``scores`` frame (``rse.scores.long_scores`` or the LLM judge's)."""
    present = [g for g in granularities if g in scores.columns]
    data = (
        scores.unpivot(index="test_model", on=present, variable_name="granularity", value_name="score")
        .filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan())
        .group_by("test_model", "granularity")
        .agg(pl.col("score").mean())
    )
    order = data.group_by("test_model").agg(pl.col("score").mean()).sort("score", descending=True)["test_model"].to_list()
    return (
        alt.Chart(data.to_pandas())
        .mark_point(filled=True, size=60)
        .encode(
            y=alt.Y("test_model:N", title=None, sort=order, axis=alt.Axis(labelLimit=220)),
            x=alt.X("score:Q", scale=alt.Scale(domain=[1, 5]), title="mean similarity (1-5)"),
            # one legend: colour and shape share the field and an explicit domain (a sort alone makes two)
            color=alt.Color("granularity:N", scale=alt.Scale(domain=list(present))),
            shape=alt.Shape("granularity:N", scale=alt.Scale(domain=list(present))),
            tooltip=["test_model:N", "granularity:N", alt.Tooltip("score:Q", format=".2f")],
        )
        .properties(width=380, height=alt.Step(14), title="similarity to the reference by granularity")
    )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def drilldown_html(
    prompt: str,
    reference: str,
    reference_answer: str,
    test_model: str,
    test_answer: str,
    scores: dict[str, object] | None = None,
    max_chars: int = 4000,
) -> str:
    """One prompt's reference and test answers side by side, with the scores above. Every piece
    of model or user text is HTML-escaped."""
    def clip(t: str) -> str:
        t = t or ""
        return t if len(t) <= max_chars else t[:max_chars] + " [...]"

    score_line = " &middot; ".join(f"{html.escape(k)}: <b>{html.escape(_fmt(v))}</b>" for k, v in (scores or {}).items())
    # explicit alignment and wrapping: notebook CSS right-aligns table cells and breaks words anywhere
    cell = "vertical-align:top;text-align:left;width:50%;padding:6px;border:1px solid #ccc"
    pre = "white-space:pre-wrap;word-break:normal;overflow-wrap:break-word;text-align:left;font-family:inherit;margin:0"
    return (
        "<div style='margin:8px 0'>"
        f"<div><b>Prompt:</b> <span style='{pre}'>{html.escape(clip(prompt))}</span></div>"
        f"<div style='margin:4px 0'>{score_line}</div>"
        "<table style='width:100%;border-collapse:collapse;table-layout:fixed'><tr>"
        f"<th style='{cell}'>reference: {html.escape(reference)}</th><th style='{cell}'>test: {html.escape(test_model)}</th></tr><tr>"
        f"<td style='{cell}'><pre style='{pre}'>{html.escape(clip(reference_answer))}</pre></td>"
        f"<td style='{cell}'><pre style='{pre}'>{html.escape(clip(test_answer))}</pre></td>"
        "</tr></table></div>"
    )


REPORT_ASPECTS = ("style", "logic", "content")  # the report's names for style, structure, content


def report_aspects_chart(rows: Sequence[Mapping[str, Any]]) -> alt.Chart:
    """RSE aspect scores per model (1-5, higher = closer to the reference answers): the report's RSE figure.

    ``rows``: model and any of style, logic, content."""
    long = [{"model": r["model"], "aspect": k, "score": r[k]} for r in rows for k in REPORT_ASPECTS if r.get(k) is not None]
    return alt.Chart(alt.Data(values=long)).mark_bar(clip=True).encode(
        y=alt.Y("model:N", title=None, sort="-x"), yOffset="aspect:N",
        x=alt.X("score:Q", scale=alt.Scale(domain=[1, 5]), title="similarity to reference (1-5)"),
        color=alt.Color("aspect:N"), tooltip=["model:N", "aspect:N", alt.Tooltip("score:Q", format=".2f")],
    ).properties(width=520, title="Response Similarity Evaluation (RSE)")
