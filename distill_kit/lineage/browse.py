"""Browsing a teacher attribution: a student's top candidates and example answer pairs, as tables and HTML.

Model text is escaped here (``distill_kit.html``), so the widget and the static page show it as text."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from distill_kit.html import html_table, pre_block


def teacher_candidates(attribution: Any, student: str, top_k: int = 3) -> pl.DataFrame:
    """A student's top ``top_k`` candidate teachers: rank, candidate, confidence (calibrated probability)."""
    long = attribution.long()
    rows = long.filter(pl.col("student") == student)
    if rows.is_empty():
        raise ValueError(f"{student!r} was not attributed; students: {', '.join(attribution.students)}")
    return (rows.sort("rank").head(top_k)
            .select("rank", "candidate", pl.col("probability").alias("confidence"), "score"))
def example_pairs(frame: pl.DataFrame, student: str, candidate: str, prompts: Sequence[str] | None = None,
                  n: int = 2, seed: int = 0) -> pl.DataFrame:
    """``n`` prompts both answered (drawn from ``prompts``, e.g. the held-out score split, with ``seed``):
    ``prompt, student_answer, candidate_answer``. ``frame`` is in the one response schema (``datasets.load_responses``)."""
    a = frame.filter(pl.col("model") == student).select("prompt", pl.col("text").alias("student_answer"))
    b = frame.filter(pl.col("model") == candidate).select("prompt", pl.col("text").alias("candidate_answer"))
    both = a.join(b, on="prompt", how="inner").unique("prompt", keep="first").sort("prompt")
    if prompts is not None:
        both = both.filter(pl.col("prompt").is_in(list(prompts)))
    if both.height > n:
        idx = np.sort(np.random.default_rng(seed).choice(both.height, size=n, replace=False))
        both = both[idx.tolist()]
    return both
def teacher_html(student: str, candidates: pl.DataFrame, examples: Mapping[str, pl.DataFrame],
                 documented: str | None = None, max_chars: int = 1500) -> str:
    """A student's candidates with confidence, and each candidate's example answer pairs."""
    e = html.escape
    doc = f" &middot; documented teacher: <b>{e(documented)}</b>" if documented else ""
    rows = "".join(f"<tr><td>{r['rank']}</td><td style='text-align:left'>{e(r['candidate'])}</td>"
                   f"<td>{r['confidence']:.2f}</td></tr>" for r in candidates.iter_rows(named=True))
    parts = [f"<div class='dk-teachers' style='text-align:left'><p>student: <b>{e(student)}</b>{doc}</p>"
             f"<table><thead><tr><th>rank</th><th style='text-align:left'>candidate teacher</th><th>confidence</th>"
             f"</tr></thead><tbody>{rows}</tbody></table>"]
    cell = "vertical-align:top;text-align:left;width:50%;padding:6px;border:1px solid #ccc"
    for cand, ex in examples.items():
        parts.append(f"<h4>{e(student)} vs {e(cand)}: {ex.height} example answer pair(s)</h4>")
        for r in ex.iter_rows(named=True):
            parts.append(f"<div><b>prompt:</b>{pre_block(r['prompt'], max_chars)}</div>"
                         "<table style='width:100%;border-collapse:collapse;table-layout:fixed'><tr>"
                         f"<th style='{cell}'>student: {e(student)}</th><th style='{cell}'>candidate: {e(cand)}</th>"
                         f"</tr><tr><td style='{cell}'>{pre_block(r['student_answer'], max_chars)}</td>"
                         f"<td style='{cell}'>{pre_block(r['candidate_answer'], max_chars)}</td></tr></table>")
    parts.append("</div>")
    return "".join(parts)
def teachers_table_html(attribution: Any, top_k: int = 3, truth: Mapping[str, str] | None = None) -> str:
    """Static table: every student's top candidates with confidence (papermill/HTML runs)."""
    rows = []
    for s in attribution.students:
        cands = teacher_candidates(attribution, s, top_k)
        rows.append({"student": s, "documented_teacher": (truth or {}).get(s, ""),
                     **{f"top{i + 1}": f"{c} ({p:.2f})" for i, (c, p) in
                        enumerate(zip(cands["candidate"], cands["confidence"]))}})
    frame = pl.DataFrame(rows) if rows else pl.DataFrame(schema={"student": pl.String})
    return html_table(frame, frame.columns, len(rows) or 1, 200, "students")
