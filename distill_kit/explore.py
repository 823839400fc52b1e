"""The data behind the notebook explorers (03 answer browser, 04 pair explorer, 05 teacher picker).

Pure functions over polars frames, so every choice an analyst makes in a widget is also a call that can be
tested and scripted; ``distill_kit.widgets`` only wires dropdowns and buttons to them. The HTML helpers escape
every piece of model or user text (answers are untrusted) and are also the static tables shown in batch runs.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from distill_kit.labels import answer_key

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
    """The LLM judge's reply; for the offline judge, what its first own-voice identity claim names."""
    llm = _col(f, "judge_reason")
    if "claimed" not in f.columns:
        return llm
    offline = (pl.lit("offline judge: the answer's first own-voice identity claim names ")
               + pl.col("claimed").cast(pl.String).replace_strict(_CLAIMED, default=None))
    return pl.coalesce(llm, offline)


def judged_answers(frames: Sequence[pl.DataFrame | None]) -> pl.DataFrame:
    """Notebook 03's judged frames (replay and live, any of them None) as one browsable frame.

    Columns: ``key`` (:func:`distill_kit.labels.answer_key`), model, template, language, category, query,
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


def _pre(text: str | None, limit: int, max_height: int = 320) -> str:
    """Escaped, wrapped text, clipped to ``limit`` characters and scrolling past ``max_height`` pixels."""
    t = text or ""
    t = t if len(t) <= limit else t[:limit] + " [...]"
    style = ("white-space:pre-wrap;word-break:normal;overflow-wrap:break-word;text-align:left;font-family:inherit;"
             f"margin:0;max-height:{max_height}px;overflow:auto")
    return f"<pre style='{style}'>{html.escape(t)}</pre>"


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
    reason = f"<div><b>judge's reason:</b>{_pre(row.get('reason'), 1500)}</div>" if row.get("reason") else ""
    return ("<div class='dk-answer' style='border:1px solid #ccc;padding:6px;margin:4px 0;text-align:left'>"
            f"<div style='color:#555'>{meta} &middot; key {e(str(row.get('key') or ''))}</div>"
            f"<div class='dk-verdicts'>{verdicts}</div>"
            f"<div><b>question:</b> {e(str(row.get('query') or ''))}</div>"
            f"<div><b>prompt:</b>{_pre(row.get('prompt'), max_chars)}</div>"
            f"<div><b>answer:</b>{_pre(row.get('answer'), max_chars)}</div>{reason}"
            f"<div class='dk-label' style='color:#555'>{e(label_text(label))}</div></div>")


def answers_table_html(answers: pl.DataFrame, limit: int = 20, width: int = 300) -> str:
    """Static table of judged answers (what the browser shows in papermill/HTML runs)."""
    cols = ("model", "template", "language", "query", "answer", "loose", "strict", "loose_ref", "reason")
    return html_table(answers, [c for c in cols if c in answers.columns], limit, width, "answers")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if np.isnan(v) else f"{v:.2f}"
    if isinstance(v, bool):
        return str(int(v))
    return str(v)


def html_table(frame: pl.DataFrame, cols: Sequence[str], limit: int, width: int, what: str) -> str:
    """A scrollable table of the first ``limit`` rows, every cell escaped and clipped to ``width`` characters."""
    td = "vertical-align:top;text-align:left;white-space:pre-wrap;word-break:normal;overflow-wrap:break-word"
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in frame.head(limit).iter_rows(named=True):
        cells = []
        for c in cols:
            t = _fmt(row[c])
            t = t if len(t) <= width else t[: width - 1] + "…"
            cells.append(f"<td style='{td}'>{html.escape(t)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='dk-static' style='max-height:480px;overflow:auto'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div><p>{min(limit, frame.height)} of {frame.height} {what}</p>")


# ------------------------------------------------------------------------------ 04: pair explorer

ASPECTS = ("style", "structure", "content")


def pair_scores(long: pl.DataFrame, judged: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per-prompt scores of every (test, reference) pair: offline scores (``similarity.long_scores`` with
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
        return rows["response"][0] if rows.height else None

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


def pair_html(view: Mapping[str, Any], max_chars: int = 4000) -> str:
    """The two answers side by side, the three aspect scores (and overall) above them."""
    e = html.escape
    scores = " &middot; ".join(f"{a}: <b>{e(_fmt(view.get(a)) or 'n/a')}</b>" for a in (*ASPECTS, "overall"))
    judge = f" ({e(str(view['judge']))} judge)" if view.get("judge") else ""
    rationale = f"<div><b>judge's rationale:</b>{_pre(view['rationale'], 1500)}</div>" if view.get("rationale") else ""
    cell = "vertical-align:top;text-align:left;width:50%;padding:6px;border:1px solid #ccc"
    return ("<div class='dk-pair' style='margin:6px 0;text-align:left'>"
            f"<div><b>prompt:</b>{_pre(view.get('prompt'), max_chars)}</div>"
            f"<div class='dk-scores' style='margin:4px 0'>{scores}{judge}</div>{rationale}"
            "<table style='width:100%;border-collapse:collapse;table-layout:fixed'><tr>"
            f"<th style='{cell}'>test: {e(str(view.get('test_model')))}</th>"
            f"<th style='{cell}'>reference: {e(str(view.get('reference')))}</th></tr><tr>"
            f"<td style='{cell}'>{_pre(view.get('test_answer') or '(no answer)', max_chars)}</td>"
            f"<td style='{cell}'>{_pre(view.get('reference_answer') or '(no answer)', max_chars)}</td>"
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


# ------------------------------------------------------------------------------ 05: teacher picker

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
    ``prompt, student_answer, candidate_answer``. ``frame`` is ``lineage.load_responses`` output."""
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
            parts.append(f"<div><b>prompt:</b>{_pre(r['prompt'], max_chars)}</div>"
                         "<table style='width:100%;border-collapse:collapse;table-layout:fixed'><tr>"
                         f"<th style='{cell}'>student: {e(student)}</th><th style='{cell}'>candidate: {e(cand)}</th>"
                         f"</tr><tr><td style='{cell}'>{_pre(r['student_answer'], max_chars)}</td>"
                         f"<td style='{cell}'>{_pre(r['candidate_answer'], max_chars)}</td></tr></table>")
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
