"""Altair charts for ICE (Loose / Strict Identity Scores). No data fetching here: frames in, charts out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from distill_kit.charts import alt


def _long(scores: pl.DataFrame, metric: str, source: str) -> pl.DataFrame:
    lo, hi = f"{metric}_lo", f"{metric}_hi"
    return scores.select(
        pl.col("model"), pl.lit(source).alias("source"), pl.col(metric).cast(pl.Float64).alias("score"),
        (pl.col(lo) if lo in scores.columns else pl.lit(None)).cast(pl.Float64).alias("lo"),
        (pl.col(hi) if hi in scores.columns else pl.lit(None)).cast(pl.Float64).alias("hi"))


def identity_score_chart(ours: pl.DataFrame, metric: str = "lis", reference: dict[str, pl.DataFrame] | None = None,
                         title: str | None = None) -> alt.LayerChart:
    """Grouped bars per model: our score with its 95% CI whisker, next to reference scores (labels, paper).

    ``ours``: output of ``scores.identity_scores`` (model, lis, lis_lo, lis_hi, sis, ...).
    ``reference``: name -> frame with ``model`` and the same metric column (CI columns optional).
    """
    if metric not in ("lis", "sis"):
        raise ValueError("metric must be 'lis' or 'sis'")
    parts = [_long(ours, metric, "ours")]
    for name, frame in (reference or {}).items():
        if frame is not None and frame.height and metric in frame.columns:
            parts.append(_long(frame.filter(pl.col("model").is_in(ours["model"].to_list())), metric, name))
    data = pl.concat(parts, how="vertical_relaxed").to_pandas()
    label = {"lis": "Loose Identity Score", "sis": "Strict Identity Score"}[metric]
    base = alt.Chart(data).encode(
        y=alt.Y("model:N", title=None, sort="-x"),
        yOffset=alt.YOffset("source:N"),
        color=alt.Color("source:N", title="source"),
    )
    bars = base.mark_bar().encode(
        x=alt.X("score:Q", title=label, scale=alt.Scale(domain=[0, 1])),
        tooltip=["model:N", "source:N", alt.Tooltip("score:Q", format=".3f"), alt.Tooltip("lo:Q", format=".3f"),
                 alt.Tooltip("hi:Q", format=".3f")])
    whiskers = base.transform_filter("isValid(datum.lo)").mark_errorbar(ticks=True, color="black").encode(
        x=alt.X("lo:Q", title=label), x2="hi:Q")
    return (bars + whiskers).properties(title=title or f"{label} (95% Wilson CI)", width=420)


def breakdown_chart(table: pl.DataFrame, dim: str, metric: str = "lis") -> alt.Chart:
    """Heatmap of a score by model x ``dim`` (template, language or category)."""
    data = table.select("model", pl.col(dim).cast(pl.String).str.slice(0, 40).alias(dim), metric, "n").to_pandas()
    return alt.Chart(data).mark_rect().encode(
        x=alt.X(f"{dim}:N", title=dim), y=alt.Y("model:N", title=None),
        color=alt.Color(f"{metric}:Q", scale=alt.Scale(domain=[0, 1], scheme="orangered"), title=metric.upper()),
        tooltip=["model:N", f"{dim}:N", alt.Tooltip(f"{metric}:Q", format=".3f"), "n:Q"],
    ).properties(title=f"{metric.upper()} by {dim}")


def flagged_html(frame: pl.DataFrame, columns: tuple[str, ...] = ("model", "language", "category", "query", "response"),
                 limit: int = 50, width: int = 400) -> str:
    """A scrollable HTML table of flagged answers; every cell is escaped (model text is untrusted)."""
    import html

    cols = [c for c in columns if c in frame.columns]
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in frame.head(limit).iter_rows(named=True):
        cells = []
        for c in cols:
            text = "" if row[c] is None else str(row[c])
            text = text if len(text) <= width else text[: width - 1] + "…"
            cells.append(f"<td style='vertical-align:top;text-align:left;white-space:pre-wrap;word-break:normal;overflow-wrap:break-word'>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ("<div style='max-height:420px;overflow:auto'><table><thead><tr>" + head + "</tr></thead><tbody>"
            + "".join(body) + f"</tbody></table></div><p>{min(limit, frame.height)} of {frame.height} flagged answers</p>")


#: the identity scores' column prefixes and the names the chart's legend gives them
SCORE_LABELS = {"lis": "loose", "sis": "strict"}


def report_scores_chart(rows: Sequence[Mapping[str, Any]]) -> alt.LayerChart:
    """Loose and strict identity scores per model with 95% interval bars (the report's ICE figure).

    ``rows``: model, lis, lis_lo, lis_hi, sis, sis_lo, sis_hi and optionally lis_paper / sis_paper, the paper's
    published scores (drawn as red ticks); the legend calls them loose and strict."""
    long = []
    for r in rows:
        for key, kind in SCORE_LABELS.items():
            if r.get(key) is not None:
                long.append({"model": r["model"], "score": kind, "value": r[key],
                             "lo": r.get(f"{key}_lo"), "hi": r.get(f"{key}_hi")})
    base = alt.Chart(alt.Data(values=long)).encode(
        y=alt.Y("model:N", sort="-x", title=None), yOffset="score:N",
        color=alt.Color("score:N", title="identity score", scale=alt.Scale(domain=["loose", "strict"])))
    bars = base.mark_bar().encode(
        x=alt.X("value:Q", title="share of answers (higher = less consistent identity)", scale=alt.Scale(domain=[0, 1])),
        tooltip=["model:N", "score:N", alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("lo:Q", format=".3f"),
                 alt.Tooltip("hi:Q", format=".3f")])
    rules = base.mark_rule(strokeWidth=2).encode(x="lo:Q", x2="hi:Q", color=alt.value("#222"))
    layers = bars + rules
    paper = [{"model": r["model"], "score": kind, "paper": r[f"{key}_paper"]} for r in rows
             for key, kind in SCORE_LABELS.items() if r.get(f"{key}_paper") is not None]
    if paper:
        ticks = alt.Chart(alt.Data(values=paper)).mark_tick(color="#c1121f", thickness=2, size=12).encode(
            y=alt.Y("model:N", sort="-x", title=None), yOffset="score:N", x="paper:Q",
            tooltip=["model:N", "score:N", alt.Tooltip("paper:Q", format=".3f", title="paper")])
        layers = layers + ticks
    return layers.properties(width=520, title="Identity Consistency Evaluation (ICE)")


def maker_profile_chart(rows: Sequence[Mapping[str, Any]]) -> alt.FacetChart:
    """Whose maker each model claims in its own voice: one panel per model, a bar per maker it names with its
    simultaneous 95% interval, coloured own / top foreign / other foreign (the answers naming no maker are left
    out of the bars and given in the panel title).

    ``rows``: :class:`distill_kit.summaries.MakerRow` dicts (``ice.makers.maker_rows``).
    """
    from distill_kit.ice.judges import NO_MAKER
    from distill_kit.ice.makers import MAKER_NAMES

    data = []
    for r in rows:
        test = ("no foreign maker named unprompted" if r.get("top_foreign") is None else
                f"top foreign {MAKER_NAMES.get(r['top_foreign'], r['top_foreign'])}: Holm p = {r['p_adj']:.2g}"
                + (" (passed)" if r.get("passed") else ""))
        none = (r.get("profile") or {}).get(NO_MAKER, 0.0)
        panel = f"{r['model']} · n = {r.get('n', 0)} · no maker {none:.0%} · {test}"
        for maker, share in (r.get("profile") or {}).items():
            if maker == NO_MAKER:
                continue
            lo, hi = (r.get("profile_ci") or {}).get(maker, [None, None])
            role = ("own maker" if maker in (r.get("own_makers") or []) else
                    "top foreign maker" if maker == r.get("top_foreign") else "other foreign maker")
            data.append({"panel": panel, "maker": MAKER_NAMES.get(maker, maker), "share": share, "lo": lo, "hi": hi,
                         "role": role})
    roles = ["own maker", "top foreign maker", "other foreign maker"]
    base = alt.Chart().encode(
        y=alt.Y("maker:N", sort="-x", title=None),
        color=alt.Color("role:N", title=None, scale=alt.Scale(domain=roles, range=["#2a9d8f", "#e76f51", "#adb5bd"])))
    title = "share of the model's answers whose own voice claims this maker"
    bars = base.mark_bar().encode(
        x=alt.X("share:Q", title=title),
        tooltip=["maker:N", "role:N", alt.Tooltip("share:Q", format=".3f"), alt.Tooltip("lo:Q", format=".3f"),
                 alt.Tooltip("hi:Q", format=".3f")])
    whiskers = base.mark_errorbar(ticks=True).encode(x=alt.X("lo:Q", title=title), x2="hi:Q",
                                                     color=alt.value("black"))
    return alt.layer(bars, whiskers, data=alt.Data(values=data)).properties(width=420).facet(
        row=alt.Row("panel:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left", labelAnchor="start",
                                                           labelOrient="top", labelFontWeight="bold"))
    ).resolve_scale(y="independent").properties(
        title="Makers claimed in the model's own voice (bars: share of answers; whiskers: simultaneous 95% intervals)")
