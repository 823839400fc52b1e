"""Browsing RSE pairs (notebook 04): a test model's and a reference's answers to one prompt with their aspect
scores, as tables and HTML. Pure functions over polars frames (the widget in :mod:`distill_kit.rse.widgets` only
wires them); model text is escaped (:mod:`distill_kit.html`)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import polars as pl

from distill_kit.html import cell_text, html_table, pre_block

ASPECTS = ("style", "structure", "content")
def pair_scores(long: pl.DataFrame, judged: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per-prompt scores of every (test, reference) pair: offline scores (:func:`distill_kit.rse.scores.long_scores` with
    ``reference=None``), replaced by an LLM judge's scores and rationale for the pairs it judged."""
    cols = [c for c in (*ASPECTS, "overall") if c in long.columns]
    base = long.select("prompt_id", "test_model", "reference", *[pl.col(c).cast(pl.Float64) for c in cols])
    base = base.with_columns(pl.lit(None, pl.String).alias("rationale"), pl.lit("offline").alias("judge"))
    if judged is None or judged.is_empty():
        return base
    if "overall" in judged.columns:  # unparseable or failed judgements keep the offline scores
        judged = judged.filter(pl.col("overall").is_not_null())
    jcols = [c for c in cols if c in judged.columns]
    j = judged.select("prompt_id", "test_model", "reference", *[pl.col(c).cast(pl.Float64) for c in jcols],
                      (pl.col("rationale").cast(pl.String) if "rationale" in judged.columns
                       else pl.lit(None, pl.String)).alias("rationale"), pl.lit("LLM").alias("judge"))
    for c in cols:
        if c not in j.columns:
            j = j.with_columns(pl.lit(None, pl.Float64).alias(c))
    j = j.select(base.columns)
    keys = ["prompt_id", "test_model", "reference"]
    return pl.concat([base.join(j.select(keys), on=keys, how="anti"), j])
def pair_models(aligned: pl.DataFrame) -> list[str]:
    """Models with aligned answers, in their order of appearance."""
    return aligned["model"].unique(maintain_order=True).to_list()
def pair_prompts(aligned: pl.DataFrame, test: str, reference: str, width: int = 80) -> list[tuple[str, str]]:
    """(label, prompt_id) of every prompt both models answered, for a dropdown."""
    a = aligned.filter(pl.col("model") == test).select("prompt_id", "prompt")
    b = aligned.filter(pl.col("model") == reference).select("prompt_id")
    both = a.join(b, on="prompt_id", how="inner").unique("prompt_id", keep="first", maintain_order=True)
    out = []
    for pid, prompt in both.iter_rows():
        text = " ".join((prompt or "").split())
        out.append((text if len(text) <= width else text[: width - 1] + "…", pid))
    return out
def pair_view(aligned: pl.DataFrame, scores: pl.DataFrame, test: str, reference: str, prompt_id: str) -> dict[str, Any]:
    """One prompt's two answers and their aspect scores (None where the pair was not scored)."""
    def answer(model: str) -> str | None:
        rows = aligned.filter((pl.col("model") == model) & (pl.col("prompt_id") == prompt_id))
        return rows["text"][0] if rows.height else None

    prompt_rows = aligned.filter(pl.col("prompt_id") == prompt_id)
    if prompt_rows.is_empty():
        raise ValueError(f"no aligned answers for prompt {prompt_id!r}")
    s = scores.filter((pl.col("test_model") == test) & (pl.col("reference") == reference)
                      & (pl.col("prompt_id") == prompt_id))
    row = s.row(0, named=True) if s.height else {}
    out = {"prompt_id": prompt_id, "prompt": prompt_rows["prompt"][0], "test_model": test, "reference": reference,
           "test_answer": answer(test), "reference_answer": answer(reference), "judge": row.get("judge"),
           "rationale": row.get("rationale")}
    out.update({c: row.get(c) for c in (*ASPECTS, "overall")})
    return out
def drilldown_rows(aligned: pl.DataFrame, scores: pl.DataFrame, reference: str, test: str,
                   limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` prompts both ``test`` and ``reference`` answered and ``scores`` scored, for the
    notebook's drill-down: ``prompt, reference_answer, test_answer`` and ``scores`` (aspect -> 1-5 score, plus
    the judge's ``rationale`` when it gave one). ``scores``: per-prompt scores against ``reference`` (the
    offline judge's ``long_scores`` or the LLM judge's combined verdicts)."""
    from distill_kit.rse.llm_judge import judge_pairs_frame

    cols = [c for c in (*ASPECTS, "overall", "rationale") if c in scores.columns]
    shown = (judge_pairs_frame(aligned, reference, [test])
             .join(scores.filter(pl.col("test_model") == test).select("prompt_id", *cols), on="prompt_id")
             .head(limit))
    return [{"prompt": r["prompt"], "reference_answer": r["reference_answer"], "test_answer": r["test_answer"],
             "scores": {c: r[c] for c in cols if c != "rationale" or r[c]}} for r in shown.to_dicts()]


def pair_html(view: Mapping[str, Any], max_chars: int = 4000) -> str:
    """The two answers side by side, the three aspect scores (and overall) above them."""
    e = html.escape
    scores = " &middot; ".join(f"{a}: <b>{e(cell_text(view.get(a)) or 'n/a')}</b>" for a in (*ASPECTS, "overall"))
    judge = f" ({e(str(view['judge']))} judge)" if view.get("judge") else ""
    rationale = f"<div><b>judge's rationale:</b>{pre_block(view['rationale'], 1500)}</div>" if view.get("rationale") else ""
    cell = "vertical-align:top;text-align:left;width:50%;padding:6px;border:1px solid #ccc"
    return ("<div class='dk-pair' style='margin:6px 0;text-align:left'>"
            f"<div><b>prompt:</b>{pre_block(view.get('prompt'), max_chars)}</div>"
            f"<div class='dk-scores' style='margin:4px 0'>{scores}{judge}</div>{rationale}"
            "<table style='width:100%;border-collapse:collapse;table-layout:fixed'><tr>"
            f"<th style='{cell}'>test: {e(str(view.get('test_model')))}</th>"
            f"<th style='{cell}'>reference: {e(str(view.get('reference')))}</th></tr><tr>"
            f"<td style='{cell}'>{pre_block(view.get('test_answer') or '(no answer)', max_chars)}</td>"
            f"<td style='{cell}'>{pre_block(view.get('reference_answer') or '(no answer)', max_chars)}</td>"
            "</tr></table></div>")
def pairs_table_html(aligned: pl.DataFrame, scores: pl.DataFrame, test: str, reference: str, limit: int = 5) -> str:
    """Static side-by-side table for one pair's first ``limit`` prompts (papermill/HTML runs)."""
    prompts = pair_prompts(aligned, test, reference)[:limit]
    rows = [pair_view(aligned, scores, test, reference, pid) for _, pid in prompts]
    frame = pl.DataFrame(rows, schema_overrides={c: pl.Float64 for c in (*ASPECTS, "overall")}) if rows else \
        pl.DataFrame(schema={"prompt": pl.String})
    cols = [c for c in ("prompt", "test_answer", "reference_answer", *ASPECTS, "overall") if c in frame.columns]
    return (f"<p><b>{html.escape(test)}</b> vs reference <b>{html.escape(reference)}</b></p>"
            + html_table(frame, cols, limit, 400, "prompts shown"))
