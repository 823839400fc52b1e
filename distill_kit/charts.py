"""Shared Altair building blocks: every chart module imports Altair from here, and the one heatmap.

Charts carry their data inline. Altair refuses more than 5,000 rows by default (a guard against
accidentally embedding a huge frame); notebook 05's answer map at the paper's scale holds ~7,000 points
(every answer of every model), so that guard is lifted here, where every chart's size is ours to choose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import polars as pl

alt.data_transformers.disable_max_rows()

__all__ = ["alt", "heatmap"]


def heatmap(
    data: pl.DataFrame | Sequence[Mapping[str, Any]], row: str, col: str, value: str, *,
    order: Sequence[str] | None = None, title: str = "", scheme: str = "viridis",
    domain: tuple[float, float] | None = None, fmt: str = ".2f", cell: int = 14, side: int | None = None,
    legend_title: Any = alt.Undefined, row_title: Any = alt.Undefined, col_title: Any = alt.Undefined,
    col_label_limit: int = 180, cell_text: str | None = None,
) -> alt.Chart | alt.LayerChart:
    """A square model x model heatmap: ``row`` and ``col`` name the models, ``value`` colours the cell.

    The one heatmap of the package (RSE similarity, indistinguishability, confusion shares, the report's
    similarity matrix). Both axes follow ``order`` (default: every model sorted); ``domain`` fixes the colour
    scale (e.g. 1-5 for RSE); ``cell_text`` (a d3 format such as ".1f") writes each value in its cell, dark
    on light cells; the chart is ``cell`` pixels per model, or ``side`` pixels square.
    """
    if isinstance(data, pl.DataFrame):
        source: Any = data.to_pandas()
        rows = data.select(row, col).to_dicts()
    else:
        rows = [dict(r) for r in data]
        source = alt.Data(values=rows)
    models = list(order) if order else sorted({str(r[row]) for r in rows} | {str(r[col]) for r in rows})
    scale = alt.Scale(domain=list(domain), scheme=scheme) if domain else alt.Scale(scheme=scheme)
    base = alt.Chart(source).encode(
        x=alt.X(f"{col}:N", sort=models, title=col_title, axis=alt.Axis(labelAngle=-60, labelLimit=col_label_limit)),
        y=alt.Y(f"{row}:N", sort=models, title=row_title, axis=alt.Axis(labelLimit=200)),
    )
    chart: Any = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", scale=scale, title=legend_title, legend=alt.Legend(titleLimit=260)),
        tooltip=[f"{row}:N", f"{col}:N", alt.Tooltip(f"{value}:Q", format=fmt)],
    )
    if cell_text:
        lo, hi = domain if domain else (0.0, 1.0)
        chart = chart + base.mark_text(fontSize=9).encode(
            text=alt.Text(f"{value}:Q", format=cell_text),
            color=alt.condition(f"datum['{value}'] > {(lo + hi) / 2}", alt.value("black"), alt.value("white")),
        )
    px = side if side is not None else cell * max(len(models), 1)
    return chart.properties(title=title, width=px, height=px)
