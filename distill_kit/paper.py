"""The paper's published results next to ours, every point and row marked with its source.

Why a module of its own: notebooks 03/04 and the report all show the same three comparisons, and each
number must say whether it was **measured** here or copied from the **paper** (Lee et al. 2025):

* ICE x RSE (the paper's combined figure): our LIS of every identity model in the data folder (replayed
  answers, 95% Wilson CI) against the paper's published RSE average; plus our own *measured* RSE where
  answers exist: AlpacaEval answers of the same model or product line (``distill_kit/data/paper_rse_alpaca.csv``);
* the paper's RSE table beside our offline RSE of the corresponding AlpacaEval models against
  ``gpt-4o-2024-05-13`` (the nearest reference in the folder to the paper's GPT-4o-0806), with the Spearman
  rank correlation of the two orders;
* the paper's second finding (base models lose their identity more easily than aligned ones): base/instruct
  pairs the folder holds, our LIS with CIs and the paper's LIS/SIS.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import polars as pl

from distill_kit import datasets
from distill_kit.charts import alt

PAPER_REFERENCE = "gpt-4o-2024-05-13"  # the nearest AlpacaEval reference to the paper's GPT-4o-0806
MEASURED_LINE_MATCHES = ("same model", "same line")  # close enough to put our RSE at the identity model's LIS


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _rows(frame: pl.DataFrame | Sequence[Mapping[str, Any]] | None) -> list[dict]:
    if frame is None:
        return []
    return frame.to_dicts() if isinstance(frame, pl.DataFrame) else [dict(r) for r in frame]


def paper_comparison_models() -> pl.DataFrame:
    """The paper's RSE rows joined with their AlpacaEval counterpart: paper_name, identity_model, paper_rse
    (average), alpaca_model, match, note."""
    paper = datasets.paper_rse_scores().select("paper_name", "identity_model", pl.col("average").alias("paper_rse"))
    return paper.join(datasets.paper_rse_alpaca(), on="paper_name", how="left")


def measured_lines(reference: str = PAPER_REFERENCE, available: Iterable[str] | None = None) -> dict[str, str]:
    """identity model -> AlpacaEval model of the same model or product line (whose RSE we can measure)."""
    have = set(available if available is not None else datasets.alpaca_models())
    rows = paper_comparison_models().filter(pl.col("identity_model").is_not_null() & pl.col("match").is_in(MEASURED_LINE_MATCHES))
    return {r["identity_model"]: r["alpaca_model"] for r in rows.to_dicts()
            if r["alpaca_model"] in have and r["alpaca_model"] != reference}


def measure_rse(models: Sequence[str], reference: str = PAPER_REFERENCE, sample_size: int = 40, seed: int = 0,
                content: bool = True) -> pl.DataFrame:
    """Our offline RSE (1-5, AlpacaEval prompts) of ``models`` against ``reference``:
    test_model, rse, rse_lo, rse_hi, n, reference."""
    from distill_kit.rse import offline_judge, responses, scores

    models = [m for m in dict.fromkeys(models) if m != reference]
    if not models:
        return pl.DataFrame(schema={"test_model": pl.String, "rse": pl.Float64, "rse_lo": pl.Float64,
                                    "rse_hi": pl.Float64, "n": pl.Int64, "reference": pl.String})
    rs = responses.gather_responses(["alpaca-eval"], models, reference, sample_size=sample_size, seed=seed)
    prof = offline_judge.build_profiles(rs.aligned, rs.models, content=content, progress=False)
    pair = offline_judge.pairwise_scores(prof, granularities=offline_judge.GRANULARITIES if content else ("style", "structure"))
    long = scores.long_scores(pair, reference=reference, prompts=rs.prompts).filter(pl.col("test_model") != reference)
    table = scores.rse_table(long, score="overall", prompt_sets=["alpaca-eval"], seed=seed)
    return table.select("test_model", pl.col("mean").alias("rse"), pl.col("mean_lo").alias("rse_lo"),
                        pl.col("mean_hi").alias("rse_hi"), pl.col("n_alpaca-eval").alias("n"), pl.lit(reference).alias("reference"))


def rse_side_by_side(measured: pl.DataFrame | Sequence[Mapping[str, Any]], reference: str = PAPER_REFERENCE) -> tuple[list[dict], dict]:
    """The paper's RSE table beside ours: one row per paper model with an AlpacaEval counterpart measured here,
    and the Spearman rank correlation of the two orders (scipy) over those rows."""
    from scipy.stats import spearmanr

    ours = {r["test_model"]: r for r in _rows(measured)}
    rows = []
    for r in paper_comparison_models().to_dicts():
        m = ours.get(r["alpaca_model"]) if r["alpaca_model"] else None
        rows.append({"paper_name": r["paper_name"], "paper_rse": r["paper_rse"], "paper_source": "paper",
                     "alpaca_model": r["alpaca_model"], "match": r["match"],
                     "our_rse": _f(m["rse"]) if m else None, "our_rse_lo": _f(m.get("rse_lo")) if m else None,
                     "our_rse_hi": _f(m.get("rse_hi")) if m else None, "our_source": "measured" if m else None,
                     "reference": reference if m else None})
    both = [r for r in rows if r["our_rse"] is not None and r["paper_rse"] is not None and r["alpaca_model"] != reference]
    stats: dict[str, Any] = {"n": len(both), "reference": reference, "paper_reference": "GPT-4o-0806 (judge and reference)"}
    if len(both) >= 3:
        rho, p = spearmanr([r["paper_rse"] for r in both], [r["our_rse"] for r in both])
        stats.update(spearman_rho=_f(rho), p_value=_f(p))
    else:
        stats.update(spearman_rho=None, p_value=None)
    return rows, stats


def counterparts(reference: str = PAPER_REFERENCE) -> list[str]:
    """The AlpacaEval counterparts of the paper's RSE models present in the data folder (the reference excluded)."""
    present = set(datasets.alpaca_models())
    return [m for m in paper_comparison_models()["alpaca_model"].drop_nulls().to_list() if m in present and m != reference]


def paper_rse_record(reference: str = PAPER_REFERENCE, n_prompts: int = 20, seed: int = 0,
                     content: bool = True) -> tuple[dict | None, str]:
    """The paper's RSE table beside ours on the AlpacaEval counterparts: notebook 04's ``paper_rse`` record
    (``rows``, ``stats``, ``measured``) and one line saying what was compared, or ``None`` and why it was skipped
    (no prompts asked for, the reference or the counterparts absent from the data folder)."""
    found = counterparts(reference)
    present = reference in datasets.alpaca_models()
    if not (n_prompts and found and present):
        return None, (f"paper side-by-side skipped: paper_prompts={n_prompts}, reference {reference!r} "
                      f"{'present' if present else 'absent'}, {len(found)} counterpart(s) in the folder")
    measured = measure_rse(found, reference, n_prompts, seed, content)
    side, stats = rse_side_by_side(measured, reference)
    rho = stats["spearman_rho"]
    line = (f"Spearman rank correlation, paper vs ours, over {stats['n']} models: "
            + ("n/a (fewer than 3)" if rho is None else f"{rho:.2f} (p = {stats['p_value']:.2f})"))
    return {"rows": side, "stats": stats, "measured": measured.to_dicts()}, line


def ice_x_rse(replay: pl.DataFrame | Sequence[Mapping[str, Any]] | None,
              measured: pl.DataFrame | Sequence[Mapping[str, Any]] | None = None,
              reference: str = PAPER_REFERENCE) -> list[dict]:
    """Rows of ``model, lis, lis_ci, rse, rse_source`` (+ ``rse_ci``, ``rse_from``, ``lis_source``).

    ``replay``: our replayed ICE scores (model, lis, lis_lo, lis_hi); each identity model gets a ``paper`` point
    (the paper's RSE average) and, where its AlpacaEval line was measured (``measured``: test_model, rse, ...),
    a ``measured`` point.
    """
    paper_rse = {r["identity_model"]: r for r in datasets.paper_rse_scores().to_dicts() if r["identity_model"]}
    ours = {r["test_model"]: r for r in _rows(measured)}
    lines = measured_lines(reference, available=list(ours))
    out: list[dict] = []
    for r in _rows(replay):
        model, lis = r.get("model"), _f(r.get("lis"))
        if model is None or lis is None:
            continue
        ci = [_f(r.get("lis_lo")), _f(r.get("lis_hi"))]
        if model in paper_rse:
            out.append({"model": model, "lis": lis, "lis_ci": ci, "lis_source": "measured", "rse": paper_rse[model]["average"],
                        "rse_ci": None, "rse_source": "paper", "rse_from": f"paper: {paper_rse[model]['paper_name']} vs GPT-4o-0806"})
        m = ours.get(lines.get(model, ""))
        if m and _f(m.get("rse")) is not None:
            out.append({"model": model, "lis": lis, "lis_ci": ci, "lis_source": "measured", "rse": _f(m["rse"]),
                        "rse_ci": [_f(m.get("rse_lo")), _f(m.get("rse_hi"))], "rse_source": "measured",
                        "rse_from": f"offline: {m['test_model']} vs {m.get('reference') or reference} (AlpacaEval)"})
    return out


def base_vs_instruct(replay: pl.DataFrame | Sequence[Mapping[str, Any]]) -> list[dict]:
    """The paper's second finding on the pairs the folder holds: ``<m>`` and ``<m>-instruct`` both replayed.

    Rows: pair, model, kind (base/instruct), lis, lis_lo, lis_hi (measured), lis_paper, sis_paper (paper)."""
    ours = {r["model"]: r for r in _rows(replay) if r.get("model")}
    paper = {r["model"]: r for r in datasets.paper_scores().to_dicts()}
    out = []
    for base in sorted(ours):
        inst = f"{base}-instruct"
        if inst not in ours:
            continue
        for model, kind in ((base, "base"), (inst, "instruct")):
            r, p = ours[model], paper.get(model, {})
            out.append({"pair": base, "model": model, "kind": kind, "lis": _f(r.get("lis")), "lis_lo": _f(r.get("lis_lo")),
                        "lis_hi": _f(r.get("lis_hi")), "n": r.get("n"), "lis_source": "measured",
                        "lis_paper": _f(p.get("loose_identity_score")), "sis_paper": _f(p.get("strict_identity_score"))})
    return out


# ---------------------------------------------------------------------------- charts: every mark says its source


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
