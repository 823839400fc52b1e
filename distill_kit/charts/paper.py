"""Altair charts putting the paper's published numbers next to ours; every mark says its source."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import altair as alt

SOURCE_SCALE = alt.Scale(domain=["paper", "measured"], range=["#e07a5f", "#3d5a80"])


def ice_x_rse_chart(rows: Sequence[Mapping[str, Any]], title: str = "ICE x RSE: our LIS against RSE (paper and measured)") -> alt.LayerChart:
    """One point per (model, RSE source): x = RSE 1-5, y = our LIS with its 95% CI; colour/shape = RSE source."""
    data = [{**r, "lis_lo": (r.get("lis_ci") or [None, None])[0], "lis_hi": (r.get("lis_ci") or [None, None])[1],
             "rse_lo": (r.get("rse_ci") or [None, None])[0], "rse_hi": (r.get("rse_ci") or [None, None])[1]}
            for r in rows if r.get("lis") is not None and r.get("rse") is not None]
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("rse:Q", title="RSE (1-5, higher = answers more like the reference)", scale=alt.Scale(domain=[1, 5])),
        color=alt.Color("rse_source:N", title="RSE source", scale=SOURCE_SCALE))
    tips = ["model:N", "rse_source:N", "rse_from:N", alt.Tooltip("rse:Q", format=".3f"), alt.Tooltip("lis:Q", format=".3f"),
            alt.Tooltip("lis_lo:Q", format=".3f"), alt.Tooltip("lis_hi:Q", format=".3f")]
    top = min(1.0, max([0.5] + [1.1 * float(r["lis_hi"] if r.get("lis_hi") is not None else r["lis"]) for r in data]))
    y = alt.Y("lis:Q", title="our Loose Identity Score (95% CI)", scale=alt.Scale(domain=[0, top]))
    bars = base.mark_rule().encode(y=alt.Y("lis_lo:Q", scale=alt.Scale(domain=[0, top])), y2="lis_hi:Q")
    xbars = base.mark_rule(strokeDash=[2, 2]).encode(x="rse_lo:Q", x2="rse_hi:Q", y=y)
    pts = base.mark_point(size=90, filled=True).encode(y=y, shape=alt.Shape("rse_source:N", title="RSE source", scale=alt.Scale(domain=["paper", "measured"])), tooltip=tips)
    text = base.mark_text(align="left", dx=7, dy=-6, fontSize=10).encode(y=y, text="model:N")
    return (bars + xbars + pts + text).properties(width=560, height=380, title=title)


def rse_side_by_side_chart(rows: Sequence[Mapping[str, Any]], reference: str) -> alt.LayerChart:
    """The paper's RSE average (x) against our measured offline RSE of the AlpacaEval counterpart (y)."""
    data = [dict(r) for r in rows if r.get("our_rse") is not None and r.get("paper_rse") is not None]
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("paper_rse:Q", title="paper: RSE vs GPT-4o-0806 (average)", scale=alt.Scale(zero=False)),
        y=alt.Y("our_rse:Q", title=f"measured: offline RSE vs {reference}", scale=alt.Scale(zero=False)))
    pts = base.mark_point(size=80, filled=True).encode(
        color=alt.Color("match:N", title="AlpacaEval counterpart"),
        tooltip=["paper_name:N", "alpaca_model:N", "match:N", alt.Tooltip("paper_rse:Q", format=".3f"),
                 alt.Tooltip("our_rse:Q", format=".3f")])
    err = base.mark_rule().encode(y="our_rse_lo:Q", y2="our_rse_hi:Q")
    text = base.mark_text(align="left", dx=7, fontSize=10).encode(text="paper_name:N")
    return (err + pts + text).properties(width=460, height=320, title="The paper's RSE table beside ours")


def base_instruct_chart(rows: Sequence[Mapping[str, Any]]) -> alt.LayerChart:
    """Base vs instruct LIS per pair: our measured LIS (bar, 95% CI) and the paper's LIS (tick)."""
    data = [dict(r) for r in rows]
    base = alt.Chart().encode(
        x=alt.X("kind:N", title=None, sort=["base", "instruct"]),
        tooltip=["model:N", alt.Tooltip("lis:Q", format=".3f"), alt.Tooltip("lis_lo:Q", format=".3f"),
                 alt.Tooltip("lis_hi:Q", format=".3f"), alt.Tooltip("lis_paper:Q", format=".3f"),
                 alt.Tooltip("sis_paper:Q", format=".3f")])
    bars = base.mark_bar(opacity=0.8, color="#3d5a80").encode(
        y=alt.Y("lis:Q", title="Loose Identity Score (bar: measured, 95% CI; tick: paper)", scale=alt.Scale(domain=[0, 1])))
    err = base.mark_rule(color="black").encode(y="lis_lo:Q", y2="lis_hi:Q")
    tick = base.mark_tick(color="#e07a5f", thickness=3, size=30).encode(y="lis_paper:Q")
    return alt.layer(bars, err, tick, data=alt.Data(values=data)).properties(width=120, height=260).facet(
        column=alt.Column("pair:N", title="base vs instruct pairs in the data folder")).properties(
        title="The paper's second finding: base models lose their identity more easily")
