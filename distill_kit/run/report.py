"""The run report: one self-contained HTML page (interactive Altair, JS inlined) plus static figures.

The section builders read a run's typed step summaries (:mod:`distill_kit.summaries`: notebook 03's
:class:`IdentitySummary`, 04's :class:`SimilaritySummary`, 05's :class:`LineageSummary`) and the run's store
(usage, example answers, fuzzing). They compute no score: a number, a tree or a documented teacher that no
step recorded is not shown, and the section says which step would record it. The one thing they derive is the
combined ICE x RSE figure, a join of notebook 03's and 04's recorded scores (:func:`ice_x_rse_rows`; notebook
06 records its rows). A step that did not run yields a "step not run" note naming the step, never placeholder
numbers.

Rendering (escaping, tables, the inlined Vega bundle, static export) is :mod:`distill_kit.html`; the charts
are the domain chart modules' (``ice.charts``, ``rse.charts``, ``lineage.charts``, ``paper``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from distill_kit.charts import heatmap
from distill_kit.html import Figure, Page, Section, esc, fmt_num, render_page, script_json, table_html, write_page
from distill_kit.html import clip as clip_text
from distill_kit.summaries import (
    IdentitySummary,
    LineageSummary,
    ReportSummary,
    RunSummaries,
    SimilaritySummary,
    StepSummary,
    finished_summaries,
    run_summaries,
)

#: the steps whose summaries the sections read, by the names the run config and the run state use
ICE, RSE, EMB = IdentitySummary.step, SimilaritySummary.step, LineageSummary.step

__all__ = [  # what notebooks 04 and 06 and the tests use; the HTML names live in distill_kit.html
    "Figure", "Page", "Section", "build_report", "esc", "ice_rows", "ice_x_rse_rows", "missing_steps", "render_page",
    "report_path", "resolve_run_dir", "rse_rows", "run_ice_x_rse", "script_json", "similarity_long", "table_html",
    "write_page",
]


def not_run_note(step: str, what: str) -> str:
    """The note shown instead of a section whose step did not run (no made-up numbers)."""
    return (f'<p class="not-run"><strong>Step not run:</strong> step {esc(step)} is not part of this run '
            f"(or wrote no summary), so {esc(what)} cannot be shown. Add it to the run config to fill this section.</p>")


def not_recorded_note(step: str, what: str) -> str:
    """The note for something a step that ran did not record (a run made before it recorded it)."""
    return f'<p class="not-run">Step {esc(step)} ran but did not record {esc(what)}.</p>'


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _count(v: Any) -> int | None:
    """A count recorded as a float in JSON (``5.0``) shown as ``5``."""
    f = _num(v)
    return None if f is None else int(round(f))


def _typed(model: type[StepSummary], summary: StepSummary | Mapping[str, Any] | None) -> Any:
    """``summary`` as ``model`` (notebook 04 hands over its summary dict while it is still being built)."""
    if summary is None or isinstance(summary, model):
        return summary
    return model.model_validate(dict(summary))


# ---------------------------------------------------------------------------- rows the sections show


#: the identity-score columns the report shows, under notebook 03's names (``IdentityScoreRow``)
ICE_COLUMNS = ("model", "lis", "lis_lo", "lis_hi", "sis", "sis_lo", "sis_hi", "n", "lis_paper", "sis_paper")


def ice_rows(ice: IdentitySummary | None) -> list[dict]:
    """Per-model identity rows of notebook 03 (replayed, then live models): model, source, lis, lis_lo, lis_hi,
    sis, sis_lo, sis_hi, n, lis_paper, sis_paper."""
    if ice is None:
        return []
    out = []
    for source, rows in (("replay", ice.replay), ("live", ice.live)):
        for r in rows:
            if r.lis is None and r.sis is None:
                continue
            out.append({"source": source, **{k: getattr(r, k) for k in ICE_COLUMNS}})
    return out


#: the report's aspect names and notebook 04's granularities they show
RSE_ASPECTS = (("style", "style"), ("logic", "structure"), ("content", "content"))


def rse_rows(rse: SimilaritySummary | None) -> list[dict]:
    """Per-model RSE rows of notebook 04's ``rse_table`` with the aspect means of ``rse_by_granularity``:
    model, style, logic, content, overall (+ 95% interval), judge, reference, n (prompts of the first set)."""
    if rse is None:
        return []
    by_aspect: dict[str, dict[str, float | None]] = {}
    for g, recs in rse.rse_by_granularity.items():
        for r in recs:
            by_aspect.setdefault(r.test_model, {})[g] = r.mean
    out = []
    for r in rse.rse_table:
        if r.mean is None:
            continue
        aspects = by_aspect.get(r.test_model, {})
        row: dict[str, Any] = {"model": r.test_model}
        for key, granularity in RSE_ASPECTS:
            row[key] = _num(aspects.get(granularity))
        row.update(overall=r.mean, overall_lo=r.mean_lo, overall_hi=r.mean_hi, judge=rse.judge, reference=rse.reference,
                   n=next((v for k, v in r.extra().items() if k.startswith("n_") and isinstance(v, int)), None))
        out.append(row)
    return out


def similarity_long(rse: SimilaritySummary | None) -> list[dict]:
    """Notebook 04's overall model x model similarity (``matrices["overall"]``) as records ``{a, b, value}``."""
    if rse is None or not rse.matrices:
        return []
    wide = rse.matrices.get("overall") or next(iter(rse.matrices.values()))
    return [{"a": r.model, "b": str(k), "value": _num(x)} for r in wide for k, x in r.extra().items()]


def ice_x_rse_rows(ice: IdentitySummary | Mapping[str, Any] | None,
                   rse: SimilaritySummary | Mapping[str, Any] | None) -> list[dict]:
    """Every ICE x RSE point of a run as ``model, lis, lis_ci, rse, rse_source`` (+ ``rse_ci``, ``rse_from``):
    replayed identity models at the paper's RSE (``paper``) and at our RSE of their AlpacaEval line
    (``measured``, step 04's ``paper_rse``), plus models scored under the same name by both steps (``measured``)."""
    from distill_kit import paper
    from distill_kit.datasets import DataError

    ice, rse = _typed(IdentitySummary, ice), _typed(SimilaritySummary, rse)
    if ice is None:
        return []
    measured = [m.model_dump() for m in rse.paper_rse.measured] if rse is not None and rse.paper_rse else None
    try:
        rows = paper.ice_x_rse([r.model_dump() for r in ice.replay], measured)
    except DataError:
        rows = []
    by_model = {r["model"]: r for r in ice_rows(ice)}
    for r in rse_rows(rse):
        i = by_model.get(r["model"])
        if i is None or i.get("lis") is None or r.get("overall") is None:
            continue
        rows.append({"model": r["model"], "lis": i["lis"], "lis_ci": [i.get("lis_lo"), i.get("lis_hi")],
                     "lis_source": "measured" + (f" ({i['source']})" if i.get("source") else ""), "rse": r["overall"],
                     "rse_ci": [r.get("overall_lo"), r.get("overall_hi")], "rse_source": "measured",
                     "rse_from": f"this run's RSE step vs {r.get('reference') or 'its reference'}"})
    return rows


def run_ice_x_rse(run_dir: str | Path | None) -> list[dict]:
    """:func:`ice_x_rse_rows` of a run directory's step summaries: what notebook 06 records as its summary's
    ``ice_x_rse`` (the only record of the combined figure; ``summary.json`` lifts it to the top)."""
    if not run_dir:
        return []
    summaries = finished_summaries(run_dir)
    return ice_x_rse_rows(summaries.get(ICE), summaries.get(RSE))


def missing_steps(run_dir: str | Path | None) -> list[str]:
    """The upstream steps of the report (its contract's ``upstream``) that did not finish in ``run_dir``."""
    return run_summaries(run_dir).missing(ReportSummary.step) if run_dir else list(ReportSummary.upstream)


# ---------------------------------------------------------------------------- sections

METHODS_HTML = """
<p><strong>ICE (Identity Consistency Evaluation).</strong> Each target model answers identity questions
(“Which company developed you?”) wrapped in GPTFuzzer-mutated jailbreak templates. A judge compares
every answer with the model's true identity fact. The <em>Loose Identity Score</em> is the share of
answers that contradict the fact; the <em>Strict Identity Score</em> is the share that claim an
OpenAI/Anthropic/ChatGPT/Claude identity. Intervals are 95% Wilson score intervals over answers.</p>
<p><strong>RSE (Response Similarity Evaluation).</strong> A judge scores how similar each test model's
answer is to a reference model's answer to the same prompt, from 1 (very different) to 5 (nearly
identical), on response style, logical structure and content detail; the overall score averages them.</p>
<p><strong>Embedding maps and lineage.</strong> Answers are embedded with a sentence-transformer;
UMAP projects them to two dimensions; models are clustered by the similarity of their answers into a
lineage tree, and each student is attributed to its nearest candidate teacher.</p>
<p>Method after Lee et al., <em>Distillation Quantification for Large Language Models</em>
(arXiv 2501.12619, 2025).</p>
"""


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def overview_section(run_dir: Path, summaries: RunSummaries) -> Section:
    cfg = _read_json(run_dir / "config.json") or {}
    state = (_read_json(run_dir / "state.json") or {}).get("steps", {})
    rows = []
    for step in cfg.get("steps", []):
        nb = str(step.get("notebook", ""))
        name = next((n for n in state if n == nb.removesuffix(".ipynb") or n.startswith(f"{nb}-")), nb)
        st = state.get(name, {})
        if name == ReportSummary.step and st.get("status") == "running":
            st = {"status": "this report"}
        wrote = summaries.written_by.get(name) or ([name] if name in summaries.all else [])
        rows.append({"step": name, "status": st.get("status", "pending"), "seconds": st.get("seconds"),
                     "summary": ", ".join(wrote) or "none"})
    body = ""
    if cfg.get("description"):
        body += f"<p>{esc(cfg['description'])}</p>"
    body += f"<p>Run directory: <code>{esc(run_dir.name)}</code> · seed {esc(cfg.get('seed', '–'))}</p>"
    body += table_html(rows, [("step", "step"), ("status", "status"), ("seconds", "seconds"), ("summary", "summaries written")], 1) if rows \
        else "<p>No run configuration found next to this report.</p>"
    if summaries.undeclared:
        body += ('<p class="not-run">Not read: no step contract declares the summaries '
                 + ", ".join(f"<code>{esc(n)}</code>" for n in summaries.undeclared) + ".</p>")
    return Section("overview", "Run overview", body)


def _section_of(key: str, title: str, summary: Any, step: str, what: str) -> Section:
    """A new section; when ``summary`` is None (its step did not run) it already says so (``ran`` False)."""
    s = Section(key, title)
    if summary is None:
        s.body, s.ran = not_run_note(step, what), False
    return s


def _scored_section(key: str, title: str, summary: StepSummary | None, step: str, what: str,
                    rows_of: Callable[[Any], list[dict]]) -> tuple[Section, list[dict]]:
    """A section plus its per-model rows; an empty row list means the section already says why."""
    s = _section_of(key, title, summary, step, what)
    if summary is None:
        return s, []
    rows = rows_of(summary)
    if not rows:
        s.body = f'<p class="not-run">The {esc(key.upper())} step ran but recorded no per-model scores.</p>'
    return s, rows


def ice_section(ice: IdentitySummary | None) -> Section:
    from distill_kit.ice.charts import report_scores_chart

    s, rows = _scored_section("ice", "Identity consistency (ICE)", ice, ICE, "the identity scores", ice_rows)
    if not rows:
        return s
    cols = [("model", "model"), ("lis", "loose (LIS)"), ("lis_lo", "LIS 95% lo"), ("lis_hi", "LIS 95% hi"),
            ("sis", "strict (SIS)"), ("sis_lo", "SIS 95% lo"), ("sis_hi", "SIS 95% hi"), ("n", "n")]
    if any(r.get("lis_paper") is not None for r in rows):
        cols += [("lis_paper", "paper LIS"), ("sis_paper", "paper SIS")]
    cols.insert(1, ("source", "answers"))
    s.body = (f"<p>Judge: {esc(ice.judge)}.</p>" if ice.judge else "") + table_html(sorted(rows, key=lambda r: -(r["lis"] or 0)), cols)
    cap = "Bars: identity scores; black lines: 95% intervals"
    cap += "; red ticks: the paper's published scores." if any(r.get("lis_paper") is not None for r in rows) else "."
    s.figures.append(Figure("ice-scores", report_scores_chart(rows), cap))
    maker_profile(s, ice)
    return s


def maker_profile(s: Section, ice: IdentitySummary) -> None:
    """Whose maker each model claims in its own voice, and the foreign-maker test (notebook 03's ``makers``),
    added to the ICE section: a table, one sentence per model and the profile chart."""
    from distill_kit.ice.charts import maker_profile_chart
    from distill_kit.ice.makers import MAKER_NAMES, maker_sentence

    rows = [r.model_dump() for r in ice.makers]
    if not rows:  # a run recorded before notebook 03 profiled makers
        return
    s.body += "<h3>Whose maker does each model claim?</h3>"
    s.body += ("<p>The share of each model's answers whose first own-voice identity claim names a maker, and whether "
               "its most-named foreign maker is named more often than it names the other foreign makers (its own "
               "hallucination baseline; the choice of the top maker is part of the test; Holm over the models). "
               "A foreign maker is named only where the test passed.</p>")
    s.body += "<ul>" + "".join(f"<li>{esc(maker_sentence(r))}</li>" for r in rows) + "</ul>"
    table = [{"model": r["model"], "n": r["n"], "own voice claims": r["n_own_voice"],
              "own maker": ", ".join(MAKER_NAMES.get(m, m) for m in r["own_makers"]),
              "top foreign": MAKER_NAMES.get(r["top_foreign"], r["top_foreign"]) if r["top_foreign"] else "–",
              "share": r["share"], "baseline": r["baseline"],
              "p": None if r["p"] is None else f"{r['p']:.2g}", "p (Holm)": None if r["p_adj"] is None else f"{r['p_adj']:.2g}",
              "passed": "yes" if r["passed"] else "no"} for r in rows]
    s.body += table_html(table, digits=4)
    s.figures.append(Figure("ice-makers", maker_profile_chart(rows),
                            "Bars: share of answers whose own voice claims the maker; whiskers: simultaneous 95% "
                            "intervals (Goodman); the panel title gives the test."))


def rse_section(rse: SimilaritySummary | None) -> Section:
    from distill_kit.rse.charts import report_aspects_chart

    s, rows = _scored_section("rse", "Response similarity (RSE)", rse, RSE, "the response-similarity scores",
                              rse_rows)
    if not rows:
        return s
    cols = [("model", "model"), ("reference", "reference"), ("style", "style"), ("logic", "logical structure"),
            ("content", "content detail"), ("overall", "overall"), ("overall_lo", "95% lo"), ("overall_hi", "95% hi"),
            ("n", "prompts"), ("judge", "judge")]
    s.body = table_html(sorted(rows, key=lambda r: -(r["overall"] or 0)), cols, 2)
    s.figures.append(Figure("rse-scores", report_aspects_chart(rows), "RSE aspect scores, 1 (different) to 5 (nearly identical)."))
    return s


def _paper_tables(ice: IdentitySummary | None, rse: SimilaritySummary | None) -> tuple[str, list[Figure]]:
    """The paper's RSE table beside ours (step 04's ``paper_rse``) and the base-vs-instruct finding (step 03)."""
    from distill_kit import paper

    body, figs = "", []
    pr = rse.paper_rse if rse is not None else None
    if pr is not None and pr.rows:
        st = pr.stats
        ref = st.reference or paper.PAPER_REFERENCE
        rho, pval = st.spearman_rho, st.p_value
        rho_txt = "–" if rho is None else f"{rho:.2f}" + ("" if pval is None else f" (p = {pval:.2f})")
        side = [r.model_dump() for r in pr.rows]
        body += (f"<h3>The paper's RSE table beside ours</h3><p>Paper: similarity to GPT-4o-0806 judged by GPT-4o-0806 "
                 f"(average of ArenaHard, Numina, ShareGPT). Ours: offline RSE of the AlpacaEval counterpart against "
                 f"<code>{esc(ref)}</code> on AlpacaEval prompts (95% CI). Spearman rank correlation over "
                 f"{fmt_num(st.n)} matched rows: {esc(rho_txt)}.</p>")
        body += table_html(side, [("paper_name", "paper model"), ("paper_rse", "RSE (paper)"), ("alpaca_model", "AlpacaEval counterpart"),
                                  ("match", "match"), ("our_rse", "RSE (measured)"), ("our_rse_lo", "95% lo"),
                                  ("our_rse_hi", "95% hi")])
        if any(r.our_rse is not None for r in pr.rows):
            figs.append(Figure("paper-rse-side-by-side", paper.rse_side_by_side_chart(side, ref),
                               "x: the paper's published RSE; y: our measured offline RSE of the AlpacaEval counterpart."))
    pairs = [r.model_dump() for r in ice.base_vs_instruct] if ice is not None else []
    if pairs:
        body += ("<h3>The paper's second finding: base vs instruct</h3><p>Base models contradict their identity more often "
                 "than their aligned (instruct) versions. Measured: our LIS on the replayed answers (95% CI); paper: its "
                 "published LIS/SIS.</p>")
        body += table_html(pairs, [("model", "model"), ("kind", "kind"), ("lis", "LIS (measured)"), ("lis_lo", "95% lo"),
                                   ("lis_hi", "95% hi"), ("lis_paper", "LIS (paper)"), ("sis_paper", "SIS (paper)")])
        figs.append(Figure("base-vs-instruct", paper.base_instruct_chart(pairs),
                           "Bars: our LIS with 95% CI; red ticks: the paper's LIS."))
    return body, figs


def combined_section(ice: IdentitySummary | None, rse: SimilaritySummary | None) -> Section:
    from distill_kit import paper

    s = Section("ice-rse", "ICE × RSE: the combined distillation picture")
    points = ice_x_rse_rows(ice, rse)
    if ice is None or (rse is None and not points):
        missing = " and ".join(x for x, v in ((ICE, ice), (RSE, rse)) if v is None)
        s.body, s.ran = not_run_note(missing, "the combined ICE x RSE figure"), False
        return s
    by_model = {r["model"]: r for r in ice_rows(ice)}
    same = [r for r in rse_rows(rse) if r["model"] in by_model]
    extra, figs = _paper_tables(ice, rse)
    if not points:
        s.body = ('<p class="not-run">No model has both an ICE and an RSE score in this run, so the combined figure '
                  f"is empty. Score the same models in steps {ICE} and {RSE} to fill it.</p>") + extra
        s.figures.extend(figs)
        return s
    s.body = ("<p>Models towards the top right both lose their identity under jailbreaks and answer like the "
              "reference model: the paper reads this as a sign of heavy distillation. Every point says where its RSE "
              "comes from: <strong>paper</strong> (the published RSE table) or <strong>measured</strong> (this project's "
              "offline judge); the LIS is always ours.</p>")
    only_ice = sorted(set(by_model) - {r["model"] for r in same})
    only_rse = sorted({r["model"] for r in rse_rows(rse)} - set(by_model))
    if rse is not None and (only_ice or only_rse):
        s.body += (f"<p>{len(same)} model(s) have both scores; {len(only_ice)} have only an ICE score and "
                   f"{len(only_rse)} only an RSE score (the published identity answers and the AlpacaEval answers "
                   "come from different models, so only models run through both steps meet here).</p>")
    table = [{**r, "lis_lo": (r.get("lis_ci") or [None, None])[0], "lis_hi": (r.get("lis_ci") or [None, None])[1]} for r in points]
    s.body += table_html(table, [("model", "model"), ("lis", "LIS (ours)"), ("lis_lo", "95% lo"), ("lis_hi", "95% hi"),
                                 ("rse", "RSE"), ("rse_source", "RSE source"), ("rse_from", "RSE from")])
    s.figures.append(Figure("ice-x-rse", paper.ice_x_rse_chart(points),
                            f"{len(points)} point(s); colour and shape: where the RSE comes from (paper or measured)."))
    s.body += extra
    s.figures.extend(figs)
    return s


def similarity_section(rse: SimilaritySummary | None) -> Section:
    s = _section_of("similarity", "Model similarity heatmap", rse, RSE, "the model x model similarity heatmap")
    if rse is None:
        return s
    long = similarity_long(rse)
    if not long:
        s.body = not_recorded_note(RSE, "a model x model similarity matrix")
        return s
    models = list(dict.fromkeys(r["a"] for r in long))
    chart = heatmap(long, "b", "a", "value", order=models, title="Model x model similarity", fmt=".3f",
                    side=min(640, max(200, 28 * len(models))), legend_title="similarity", row_title=None, col_title=None)
    s.figures.append(Figure("similarity-heatmap", chart, "Pairwise similarity of the models' answers."))
    return s


def step_link(written_by: Mapping[str, Sequence[str]], step: str) -> str:
    """A link to the rendered notebook (html/<stem>.html) that wrote summary ``step``, where every chart of the
    step is."""
    stem = next((n for n, wrote in written_by.items() if step in wrote), None)
    return f' See the full step: <a href="html/{esc(stem)}.html">{esc(stem)}</a>.' if stem else ""


def umap_section(emb: LineageSummary | None, link: str = "") -> Section:
    from distill_kit.lineage.charts import answer_map

    s = _section_of("umap", "Embedding map (UMAP)", emb, EMB, "the UMAP map")
    if emb is None:
        return s
    pts = [p.model_dump() for p in emb.umap if p.x is not None and p.y is not None]
    body = ""
    if emb.embedding_model:
        body += f"<p>Embeddings: {esc(emb.embedding_model)}; {fmt_num(emb.shared_prompts)} prompts answered by every model.</p>"
    if emb.homogenisation:
        body += ("<p>Homogenisation index (how hard it is to tell the models' answers apart; higher = more alike):</p>"
                 + table_html([h.model_dump() for h in emb.homogenisation],
                              [("set", "models"), ("index", "index"), ("accuracy", "classifier accuracy"),
                               ("chance", "chance"), ("n_models", "n")]))
    if emb.clusters:
        groups: dict[str, list[str]] = {}
        for m, c in emb.clusters.items():
            groups.setdefault(str(c), []).append(str(m))
        body += "<p>Answer clusters:</p>" + table_html(
            [{"cluster": c, "models": ", ".join(sorted(ms))} for c, ms in sorted(groups.items())], [("cluster", "cluster"), ("models", "models")])
    if pts:
        body = f"<p>{len(pts):,} answers, drag to pan, scroll to zoom.</p>" + body
        s.figures.append(Figure("umap-map", answer_map(pts), "Each dot is one answer; nearby dots answer alike."))
    else:
        body = (f'<p class="not-run">The embedding step did not record map coordinates, so the interactive map is '
                f"not in this page.{link}</p>") + body
    s.body = body
    return s


def lineage_section(emb: LineageSummary | None) -> Section:
    """Step 05's lineage tree (``tree``: labels and linkage), drawn as recorded."""
    from distill_kit.lineage.charts import dendrogram
    from distill_kit.lineage.tree import tree_from_linkage

    s = _section_of("lineage", "Lineage tree", emb, EMB, "the lineage tree")
    if emb is None:
        return s
    if emb.tree is None or not emb.tree.labels:
        s.body, s.ran = not_recorded_note(EMB, "a lineage tree"), False
        return s
    tree = tree_from_linkage(emb.tree.linkage, emb.tree.labels)
    s.figures.append(Figure("lineage-tree", dendrogram(tree, title="Lineage tree"),
                            "Average-linkage clustering of models by answer similarity (embedding step)."))
    return s


def attribution_section(emb: LineageSummary | None, link: str = "") -> Section:
    s = _section_of("attribution", "Teacher attribution", emb, EMB, "the teacher attribution table")
    if emb is None:
        return s
    rows = [r.model_dump() for r in emb.attribution]
    if not rows:
        s.body = f'<p class="not-run">The embedding step recorded no attribution table.{link}</p>'
        s.ran = False
        return s
    truth = emb.documented_teachers
    note = ""
    if truth is None:
        note = not_recorded_note(EMB, "the documented teachers, so attributions are shown without them")
    elif any(r["student"] in truth for r in rows):
        for r in rows:
            r.setdefault("documented_teacher", truth.get(r["student"], ""))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    body = "<p>Each student's most likely teachers among the candidates (p = calibrated confidence).</p>" + note
    body += table_html(rows, [(k, k.replace("_", " ")) for k in keys])
    mrows = [{"metric": k.replace("_", " "), "value": _count(v) if k == "n" or k.endswith("_n") else _num(v)}
             for k, v in emb.attribution_metrics.items()]
    if emb.who_wrote_accuracy is not None:
        mrows.append({"metric": "who-wrote-this accuracy (held-out answers)", "value": emb.who_wrote_accuracy})
        if emb.who_wrote_chance is not None:
            mrows.append({"metric": "who-wrote-this chance level", "value": emb.who_wrote_chance})
    if mrows:
        body += "<p>Against the documented lineage:</p>" + table_html(mrows, [("metric", "metric"), ("value", "value")])
    s.body = body + lineage_test_html(emb)
    return s


def lineage_test_html(emb: LineageSummary) -> str:
    """Step 05's lineage test per target (best line, p, Holm-adjusted p, named), or the one line saying why
    there is none."""
    if emb.lineage_test_note:
        return f'<h3>Lineage test</h3><p class="not-run">{esc(emb.lineage_test_note)}</p>'
    if not emb.lineage_test:
        return ""
    alpha = emb.lineage_test_alpha if emb.lineage_test_alpha is not None else 0.05
    rows = [r.model_dump() for r in emb.lineage_test]
    cols = [("target", "target"), ("line", "best line"), ("p", "p"), ("p_adj", "p (Holm over lines)"),
            ("named", f"named (p_adj < {alpha:g})"), ("documented_line", "documented line")]
    return ("<h3>Lineage test</h3><p>Per target, the line whose statistic stands out most against the same "
            "statistic on pairs documented as unrelated (human-data controls, students of other teachers, "
            f"references of other lines; never the target itself), statistic "
            f"<code>{esc(emb.lineage_test_method or '')}</code>, null from {len(emb.lineage_test_null_models)} "
            "documented models. A line is named only when its Holm-adjusted p is below alpha.</p>"
            + table_html(rows, cols, 4))


def example_order(keys: Sequence[str], seed: int = 0) -> list[int]:
    """Positions of ``keys`` in a seeded order that depends only on the keys: the same run config
    shows the same examples whatever order its answers arrived in."""
    rank = [hashlib.sha256(f"{seed}:{k}".encode()).hexdigest() for k in keys]
    return sorted(range(len(keys)), key=rank.__getitem__)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def examples_section(store_path: str | None, limit: int = 6, seed: int = 0) -> Section:
    """A few raw answers from the run's store, escaped: readers should see what the judges saw."""
    s = Section("examples", "Example answers")
    rows: list[dict] = []
    if store_path and Path(store_path).is_file():
        from distill_kit.store import Store

        with Store(store_path) as store:
            frame = store.frame(status="ok")
        if frame.height:
            rows = frame[example_order(frame["key"].to_list(), seed)[:limit]].select("model", "prompt", "text").to_dicts()
    if not rows:
        s.body, s.ran = '<p class="not-run">No answers are stored for this run.</p>', False
        return s
    s.body = "".join(f"<p><strong>{esc(r['model'])}</strong></p>"
                     f'<div class="answer prompt">{esc(r["prompt"])}</div>'
                     f'<div class="answer">{esc(r["text"])}</div>' for r in rows)
    return s


def fuzz_section(store_path: str | None, top: int = 3, max_chars: int = 700) -> Section:
    """GPTFuzzer results read back from the store: success per mutator and the best mutant templates."""
    import polars as pl

    from distill_kit.ice import fuzz

    s = Section("fuzz", "Jailbreak fuzzing (GPTFuzzer)")
    targets: list[str] = []
    if store_path and Path(store_path).is_file():
        from distill_kit.store import Store

        with Store(store_path) as store:
            targets = fuzz.fuzz_targets(store)
            attempts = {t: fuzz.stored_attempts(store, t) for t in targets}
    if not targets:
        s.body, s.ran = ('<p class="not-run">No jailbreak fuzzing in this run: set <code>fuzz_queries</code> above 0 '
                         "in step 02 to attack the live targets with mutated templates.</p>"), False
        return s
    body = ("<p>MCTS-Explore picks a template, the helper model mutates it, the target answers identity probes in "
            "the mutant, and the judge's verdict (identity contradicted) is the reward. Success rate = share of "
            "judged attempts whose answer contradicts the target's identity.</p>")
    for t in targets:
        a = attempts[t]
        body += f"<h3>{esc(t)}: {a.height} attempts</h3>"
        body += table_html(fuzz.success_by_mutator(a).to_dicts(), caption="per mutator")
        for r in fuzz.template_success(a).head(top).to_dicts():
            rate = "–" if r["success_rate"] is None else f"{r['success_rate']:.2f}"
            hits = a.filter((pl.col("template_id") == r["template_id"]) & pl.col("verdict").fill_null(False))
            body += (f"<p>{esc(r['template_id'])} ({esc(r['mutator'])} of {esc(r['parent'])}): success {rate} "
                     f"over {r['judged']} judged attempt(s)</p><div class=\"answer\">{esc(clip_text(r['template'], max_chars))}</div>")
            if hits.height:
                body += (f"<p>an answer judged a contradiction, to “{esc(clip_text(hits['query'][0], 200))}”:</p>"
                         f"<div class=\"answer\">{esc(clip_text(hits['response'][0], max_chars))}</div>")
    s.body = body
    return s


def usage_section(store_path: str | None) -> Section:
    s = Section("usage", "Model calls")
    if not store_path or not Path(store_path).is_file():
        s.body, s.ran = '<p class="not-run">No response store for this run (no step called a model).</p>', False
        return s
    from distill_kit.store import Store

    with Store(store_path) as store:
        rows = store.usage().to_dicts()
    if not rows:
        s.body, s.ran = '<p class="not-run">No model was called in this run (published answers are read directly).</p>', False
        return s
    s.body = "<p>Every answer is cached in the run's store; re-running the run reuses them.</p>" + table_html(rows, digits=4)
    return s


def provenance_section() -> Section:
    import platform
    from importlib import metadata

    from distill_kit import datasets

    s = Section("methods", "Methods and data provenance")
    by_set: dict[str, dict[str, Any]] = {}
    for path, e in datasets.registry().items():
        top = path.split("/", 1)[0]
        d = by_set.setdefault(top, {"dataset": top, "files": 0, "source": ""})
        d["files"] += 1
        if e.url and not d["source"]:
            d["source"] = re.sub(r"^https://raw\.githubusercontent\.com/([^/]+/[^/]+)/([0-9a-f]{7})[0-9a-f]*/.*$",
                                 r"github.com/\1 @ \2", e.url)
    try:
        ddir = datasets.data_dir()
    except ValueError:
        ddir = None
    versions = []
    for pkg in ("distill-kit", "polars", "altair", "vl-convert-python", "papermill", "sentence-transformers", "umap-learn"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    s.body = METHODS_HTML + "<h3>Data</h3>" + table_html(list(by_set.values()), [("dataset", "dataset"), ("files", "files"),
                                                                                  ("source", "source (pinned commit)")])
    s.body += (f"<p>Data read from {'a local copy (DISTILL_KIT_DATA_DIR)' if ddir else 'the download cache'}; every "
               "registered file's sha256 is checked against the registry.</p>")
    try:
        own = datasets.unregistered()
        s.body += f"<p>Lineage: <code>{esc(datasets.lineage_source())}</code>.</p>"
    except ValueError:
        own = []
    if own:
        s.body += ("<p>Not in the registry, read as the user's own data without a checksum: "
                   + ", ".join(f"<code>{esc(u)}</code>" for u in own) + ".</p>")
    s.body += f"<p>Software: Python {esc(platform.python_version())}; {esc(', '.join(versions))}.</p>"
    return s


def verdict_section(ice: IdentitySummary | None, rse: SimilaritySummary | None, emb: LineageSummary | None) -> Section:
    """One row and one rule-built sentence per model (``distill_kit.verdict``); this only renders it."""
    from distill_kit import verdict

    s = Section("verdict", "Verdict per model")
    if ice is None and rse is None and emb is None:
        s.body, s.ran = not_run_note(f"{ICE}, {RSE} or {EMB}", "the per-model verdict"), False
        return s
    rows = verdict.verdict_table(ice, rse, emb)
    if not rows:
        s.body = '<p class="not-run">The steps ran but scored no model.</p>'
        return s
    refs = sorted({r for v in rows for r in v.rse})
    flat = []
    for v in rows:
        row = {"model": v.model, "verdict": v.sentence,
               "LIS": _interval(v.lis, v.lis_lo, v.lis_hi), "LIS method": v.lis_method,
               "labels used": v.lis_labels, "SIS": _interval(v.sis, v.sis_lo, v.sis_hi),
               "lineage test: best line": v.lineage_line, "p": v.lineage_p, "p (Holm)": v.lineage_p_adj,
               "line named": v.lineage_named,
               "vote's closest line": v.teacher_line, "vote confidence": v.teacher_confidence,
               "distillation score": v.distillation_score,
               "foreign maker": v.foreign_maker, "maker p (Holm)": v.foreign_maker_p_adj,
               "maker named": v.foreign_maker_passed}
        for ref in refs:
            row[f"RSE vs {ref}"] = _interval(*v.rse[ref], digits=2) if ref in v.rse else None
        flat.append(row)
    cols = [(k, k) for k in flat[0]]
    note = (not_recorded_note(EMB, "the references' product lines, so teachers are named by model")
            if emb is not None and emb.attribution and emb.reference_lines is None else "")
    alpha = emb.lineage_test_alpha if emb is not None and emb.lineage_test_alpha is not None else None
    test_note = (f"<p>A teacher line is named only where step 05's lineage test rejects at alpha={alpha:g} after "
                 "Holm's correction over the model's lines (its null: the same statistic on pairs documented as "
                 "unrelated, leaving the model out); a foreign maker only where step 03's maker test passed. The "
                 "vote's closest line and its confidence are shown as numbers, not as claims.</p>"
                 if alpha is not None else "")
    if emb is not None and emb.lineage_test_note:
        test_note += f'<p class="not-run">{esc(emb.lineage_test_note)}</p>'
    s.body = ("<p>Every number with its 95% interval; LIS/SIS are prevalence-corrected where step 03 recorded it "
              "(method and labels used shown). Each sentence is built by fixed rules from the numbers in its row.</p>"
              + test_note + note + table_html(flat, cols))
    return s


def _interval(value: Any, lo: Any = None, hi: Any = None, digits: int = 3) -> str | None:
    v, a, b = _num(value), _num(lo), _num(hi)
    if v is None:
        return None
    return f"{v:.{digits}f} [{a:.{digits}f}, {b:.{digits}f}]" if a is not None and b is not None else f"{v:.{digits}f}"


def paired_section(ice: IdentitySummary | None, rse: SimilaritySummary | None) -> Section:
    """Is A significantly more like the reference than B? The paired tables steps 03 and 04 recorded."""
    s = Section("paired", "Paired comparisons on the same prompts")
    if ice is None and rse is None:
        s.body, s.ran = not_run_note(f"{ICE} or {RSE}", "the paired comparisons"), False
        return s
    tables = [(f"RSE vs {rse.reference if rse is not None else 'the reference'} (overall, 1-5)",
               rse.paired_rse if rse is not None else [], 3),
              ("LIS (judge verdicts, McNemar)", ice.paired_lis if ice is not None else [], 4)]
    tables = [(t, rows, d) for t, rows, d in tables if rows]
    if not tables:
        s.body = ('<p class="empty">Steps 03/04 recorded no paired comparison (fewer than two models on shared '
                  "prompts, or a run made before paired tests existed).</p>")
        return s
    cols = [("a", "A"), ("b", "B"), ("n", "prompts"), ("mean_a", "A"), ("mean_b", "B"), ("diff", "A - B"),
            ("lo", "95% lo"), ("hi", "95% hi"), ("p_value", "p"), ("p_holm", "p (Holm)"), ("significant", "significant"),
            ("test", "test")]
    body = ("<p>Differences on the prompts both models answered, with paired bootstrap 95% intervals; p-values are "
            "Holm-adjusted over each table, so a “significant” row holds with 95% confidence for the table as a whole.</p>")
    for title, rows, digits in tables:
        body += f"<h3>{esc(title)}</h3>" + table_html([r.model_dump() for r in rows], cols, digits)
    s.body = body
    return s


def build_report(run_dir: str | Path | None, store_path: str | None = None, title: str | None = None) -> Page:
    """Assemble every section from the run's finished step summaries (and the store, for usage/examples).

    ``run_dir=None`` builds the empty report: every section says which step would fill it.
    """
    run_dir = Path(run_dir) if run_dir else None
    summaries = run_summaries(run_dir)  # never a killed attempt's leftovers
    cfg = (_read_json(run_dir / "config.json") if run_dir else None) or {}
    ice, rse, emb = summaries.identity, summaries.similarity, summaries.lineage
    name = run_dir.name if run_dir else "no run"
    rep = Page(title or f"distill-kit report: {cfg.get('name', name)}", subtitle=f"Distillation quantification · run {name}")
    overview = overview_section(run_dir, summaries) if run_dir else Section(
        "overview", "Run overview", '<p class="not-run">No run found: run <code>distill-kit run demo</code> first.</p>', ran=False)
    link = step_link(summaries.written_by, EMB)
    for sec in (overview, verdict_section(ice, rse, emb), ice_section(ice), rse_section(rse), paired_section(ice, rse),
                combined_section(ice, rse), similarity_section(rse), umap_section(emb, link), lineage_section(emb),
                attribution_section(emb, link), examples_section(store_path, seed=_int(cfg.get("seed"))),
                fuzz_section(store_path), usage_section(store_path), provenance_section()):
        rep.add(sec)
    return rep


# ---------------------------------------------------------------------------- notebook helpers


def resolve_run_dir(run_dir: str = "") -> Path | None:
    """The run to report on: ``run_dir`` if given, else the newest ``runs/*`` with summaries, else None."""
    from distill_kit.paths import RUNS_DIR, SUMMARY_DIR

    if run_dir:
        path = Path(run_dir)
        if not path.is_dir():
            raise ValueError(f"run_dir {run_dir!r} is not a directory")
        return path
    runs = [p for p in RUNS_DIR.glob("*") if (p / SUMMARY_DIR).is_dir()]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def report_path(run_dir: Path | None) -> Path:
    """Where the HTML goes: ``<run_dir>/report.html`` (or the cache when there is no run)."""
    from distill_kit.paths import REPORT_FILE, cache_dir

    return (run_dir if run_dir else cache_dir() / "report" / "no-run") / REPORT_FILE
