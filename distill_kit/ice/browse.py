"""The data behind notebook 03's answer browser: judged answers, filters, verdicts and labels, as tables and HTML.

Pure functions over polars frames, so every choice an analyst makes in a widget is also a call that can be
tested and scripted; ``distill_kit.ice.widgets`` only wires dropdowns and buttons to them. The HTML helpers escape
every piece of model or user text (answers are untrusted) and are also the static tables shown in batch runs.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from distill_kit.html import html_table, pre_block
from distill_kit.ice.judges import MAKER_COLUMN, NO_MAKER
from distill_kit.ice.labels import answer_key
from distill_kit.ice.makers import MAKER_NAMES

# ------------------------------------------------------------------------------ 03: judged answers

VERDICTS = {
    "all": "all answers",
    "contradicts": "judge: contradicts identity (loose 1)",
    "consistent": "judge: consistent (loose 0)",
    "claims": "judge: claims OpenAI/Anthropic (strict 1)",
    "unjudged": "judge gave no verdict",
    "disagrees": "judge disagrees with GPT-4o-mini label",
}
ANSWER_COLUMNS = ("key", "model", "template", "language", "category", "query", "prompt", "answer",
                  "loose", "strict", "loose_ref", "strict_ref", "reason")
_ANSWER_SCHEMA = {"key": pl.String, "model": pl.String, "template": pl.String, "language": pl.String,
                  "category": pl.String, "query": pl.String, "prompt": pl.String, "answer": pl.String,
                  "loose": pl.Boolean, "strict": pl.Boolean, "loose_ref": pl.Boolean, "strict_ref": pl.Boolean,
                  "reason": pl.String}


def _col(frame: pl.DataFrame, *names: str, dtype: Any = pl.String) -> pl.Expr:
    for n in names:
        if n in frame.columns:
            return pl.col(n).cast(dtype)
    return pl.lit(None, dtype)


_CLAIMED = {"true": "its true maker", "lab": "OpenAI or Anthropic", "other": "another maker",
            "none": "no maker"}


def _reason(f: pl.DataFrame) -> pl.Expr:
    """The LLM judge's reply; otherwise the maker the answer's first own-voice identity claim names (read by
    the rule layer for every judge), or, in a frame judged before that column existed, its maker class."""
    llm = _col(f, "judge_reason")
    if MAKER_COLUMN in f.columns:
        names = {m: f"names {n}" for m, n in MAKER_NAMES.items() if m != NO_MAKER} | {NO_MAKER: "names no maker"}
        named = pl.col(MAKER_COLUMN).cast(pl.String).replace_strict(names, default=None)
        return pl.coalesce(llm, pl.lit("the answer's first own-voice identity claim ") + named)
    if "claimed" not in f.columns:
        return llm
    offline = (pl.lit("offline judge: the answer's first own-voice identity claim names ")
               + pl.col("claimed").cast(pl.String).replace_strict(_CLAIMED, default=None))
    return pl.coalesce(llm, offline)


def judged_answers(frames: Sequence[pl.DataFrame | None]) -> pl.DataFrame:
    """Notebook 03's judged frames (replay and live, any of them None) as one browsable frame.

    Columns: ``key`` (:func:`distill_kit.ice.labels.answer_key`), model, template, language, category, query,
    prompt (the full jailbreak prompt; query in its template when the frame has none), answer, loose and
    strict (the judge's verdicts), loose_ref and strict_ref (GPT-4o-mini labels where published), reason
    (the LLM judge's reply when one judged; for the offline judge, the maker its first identity claim names;
    none for the rules judge).
    """
    parts = []
    for f in frames:
        if f is None or f.is_empty():
            continue
        tmpl = _col(f, "template_id", "template")
        prompt = (pl.col("prompt") if "prompt" in f.columns else
                  pl.concat_str([tmpl.fill_null(""), pl.lit("\n"), pl.col("query").fill_null("")]))
        reason = _reason(f)
        part = f.select(
            pl.col("model").cast(pl.String), tmpl.alias("template"), _col(f, "language").alias("language"),
            _col(f, "category").alias("category"), _col(f, "query").alias("query"),
            prompt.cast(pl.String).alias("prompt"), pl.col("response").cast(pl.String).alias("answer"),
            _col(f, "pred_loose", dtype=pl.Boolean).alias("loose"), _col(f, "pred_strict", dtype=pl.Boolean).alias("strict"),
            _col(f, "loose_label", dtype=pl.Boolean).alias("loose_ref"),
            _col(f, "strict_label", dtype=pl.Boolean).alias("strict_ref"), reason.alias("reason"))
        keys = [answer_key(m, p, a) for m, p, a in zip(part["model"], part["prompt"], part["answer"])]
        parts.append(part.with_columns(pl.Series("key", keys, dtype=pl.String)).select(ANSWER_COLUMNS))
    if not parts:
        return pl.DataFrame(schema=_ANSWER_SCHEMA)
    return pl.concat(parts, how="vertical_relaxed")


def flagged_answers(frames: Sequence[pl.DataFrame | None]) -> pl.DataFrame | None:
    """The loose positives of notebook 03's judged frames (any of them None) -> model, language, category,
    query, response; None when no frame was judged at all."""
    flagged = [f.filter(pl.col("pred_loose").fill_null(False)) for f in frames if f is not None]
    if not flagged:
        return None
    return pl.concat([f.select("model", "language", "category", "query", "response") for f in flagged])


def answer_options(answers: pl.DataFrame) -> dict[str, list[str]]:
    """Sorted distinct values of each filter column (nulls left out)."""
    return {c: sorted(v for v in answers[c].unique().to_list() if v is not None)
            for c in ("model", "template", "language") if c in answers.columns}


def filter_answers(answers: pl.DataFrame, model: str | None = None, template: str | None = None,
                   language: str | None = None, verdict: str = "all") -> pl.DataFrame:
    """The answers matching every filter given (None or "" = any); ``verdict`` is a key of ``VERDICTS``."""
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict filter {verdict!r}; choose from {', '.join(VERDICTS)}")
    out = answers
    for col, value in (("model", model), ("template", template), ("language", language)):
        if value:
            out = out.filter(pl.col(col) == value)
    cond = {
        "all": None,
        "contradicts": pl.col("loose").fill_null(False),
        "consistent": pl.col("loose").is_not_null() & ~pl.col("loose").fill_null(True),
        "claims": pl.col("strict").fill_null(False),
        "unjudged": pl.col("loose").is_null(),
        "disagrees": pl.col("loose_ref").is_not_null() & pl.col("loose").is_not_null()
                     & (pl.col("loose") != pl.col("loose_ref")),
    }[verdict]
    return out if cond is None else out.filter(cond)


def _verdict(v: bool | None, yes: str, no: str, none: str = "no verdict") -> str:
    return none if v is None else (yes if v else no)


def label_text(label: Mapping[str, Any] | None) -> str:
    """One line saying how an analyst labelled an answer (or that nobody did yet)."""
    if not label:
        return "not labelled yet"
    loose = _verdict(label.get("loose_label"), "contradicts identity", "consistent", "loose not labelled")
    strict = _verdict(label.get("strict_label"), "claims OpenAI/Anthropic: yes", "claims OpenAI/Anthropic: no",
                      "strict not labelled")
    return f"labelled by {label.get('labeller')}: {loose}; {strict}"


def answer_html(row: Mapping[str, Any], label: Mapping[str, Any] | None = None, max_chars: int = 3000) -> str:
    """One judged answer: its prompt, the answer, both judge verdicts (and GPT-4o-mini's), the judge's reason."""
    e = html.escape
    verdicts = (f"loose: <b>{e(_verdict(row.get('loose'), 'contradicts identity', 'consistent'))}</b> &middot; "
                f"strict: <b>{e(_verdict(row.get('strict'), 'claims OpenAI/Anthropic', 'no such claim'))}</b>")
    if row.get("loose_ref") is not None:
        verdicts += (f" &middot; GPT-4o-mini labels: loose {int(bool(row['loose_ref']))}, "
                     f"strict {int(bool(row.get('strict_ref')))}")
    meta = " &middot; ".join(f"{k}: {e(str(row.get(k) or ''))}" for k in ("model", "template", "language", "category"))
    reason = f"<div><b>judge's reason:</b>{pre_block(row.get('reason'), 1500)}</div>" if row.get("reason") else ""
    return ("<div class='dk-answer' style='border:1px solid #ccc;padding:6px;margin:4px 0;text-align:left'>"
            f"<div style='color:#555'>{meta} &middot; key {e(str(row.get('key') or ''))}</div>"
            f"<div class='dk-verdicts'>{verdicts}</div>"
            f"<div><b>question:</b> {e(str(row.get('query') or ''))}</div>"
            f"<div><b>prompt:</b>{pre_block(row.get('prompt'), max_chars)}</div>"
            f"<div><b>answer:</b>{pre_block(row.get('answer'), max_chars)}</div>{reason}"
            f"<div class='dk-label' style='color:#555'>{e(label_text(label))}</div></div>")


def answers_table_html(answers: pl.DataFrame, limit: int = 20, width: int = 300) -> str:
    """Static table of judged answers (what the browser shows in papermill/HTML runs)."""
    cols = ("model", "template", "language", "query", "answer", "loose", "strict", "loose_ref", "reason")
    return html_table(answers, [c for c in cols if c in answers.columns], limit, width, "answers")


# ------------------------------------------------------------------------------ 04: pair explorer


# ------------------------------------------------------------------------------ 05: teacher picker


