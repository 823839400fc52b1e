"""One verdict per model: what all of a run's numbers say together, and how sure they are.

Why: a reader of a distill-kit report wants, per model, the handful of numbers that matter -- the corrected
identity scores (ICE), the similarity to each reference (RSE), the lineage test and the foreign-maker test --
with their intervals and p-values, and one plain sentence. The sentence is built by fixed rules from those
numbers (no LLM), so it says nothing the numbers do not. ``report.py`` and notebook 06 only render this.

Claims come from tests only: the sentence names a teacher line only where notebook 05's lineage test
(:mod:`distill_kit.lineage.significance`) named it (Holm-adjusted p below its alpha) and a foreign maker only
where notebook 03's maker test passed, quoting the adjusted p; otherwise it says there is no signal and quotes
the best candidate's adjusted p. The vote's closest line and its confidence stay in the table as numbers.

Inputs are the typed step summaries a run writes (:mod:`distill_kit.summaries`): notebook 03's ``corrected``
rows (falling back to its raw ``replay``/``live`` rows) and ``makers``, notebook 04's ``rse_by_reference`` (or
``rse_table`` with its ``reference``) and notebook 05's ``lineage_test`` and ``attribution`` rows with its
``reference_lines``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from distill_kit.summaries import IdentitySummary, LineageSummary, SimilaritySummary

#: An upper interval bound below this share reads "keeps its identity".
KEEPS_IDENTITY = 0.05


@dataclass
class ModelVerdict:
    """Everything the verdict table shows for one model (None where the step did not score it)."""

    model: str
    lis: float | None = None
    lis_lo: float | None = None
    lis_hi: float | None = None
    lis_method: str | None = None
    lis_labels: int | None = None
    sis: float | None = None
    sis_lo: float | None = None
    sis_hi: float | None = None
    rse: dict[str, tuple[float, float | None, float | None]] = field(default_factory=dict)
    teacher: str | None = None
    teacher_line: str | None = None
    teacher_confidence: float | None = None
    distillation_score: float | None = None
    lineage_line: str | None = None  # the lineage test's best line (smallest p)
    lineage_p: float | None = None
    lineage_p_adj: float | None = None  # Holm over the model's lines
    lineage_named: bool | None = None  # p_adj < lineage_alpha; None: not tested
    lineage_alpha: float | None = None
    lineage_note: str | None = None  # why step 05-embed-and-cluster recorded no test (one line)
    foreign_maker: str | None = None  # the maker test's top foreign maker
    foreign_maker_share: float | None = None
    foreign_maker_baseline: float | None = None
    foreign_maker_p: float | None = None
    foreign_maker_p_adj: float | None = None
    foreign_maker_passed: bool | None = None  # None: not tested
    maker_alpha: float | None = None
    sentence: str = ""

    def as_row(self) -> dict[str, Any]:
        """A flat row for a table: one ``rse_<reference>`` (+ ``_lo``/``_hi``) column per reference."""
        row = {k: v for k, v in asdict(self).items() if k != "rse"}
        for ref, (m, lo, hi) in self.rse.items():
            row[f"rse {ref}"], row[f"rse {ref} lo"], row[f"rse {ref} hi"] = m, lo, hi
        return row


def _ci(ci: list[float | None] | None) -> tuple[float | None, float | None]:
    return (ci[0], ci[1]) if ci and len(ci) == 2 else (None, None)


def ice_part(ice: IdentitySummary | None) -> dict[str, dict[str, Any]]:
    """model -> LIS/SIS (corrected when notebook 03 recorded it, else raw) with intervals and method."""
    out: dict[str, dict[str, Any]] = {}
    if ice is None:
        return out
    for r in [*ice.live, *ice.replay]:  # raw scores first, corrected ones overwrite them
        out[r.model] = {"lis": r.lis, "lis_lo": r.lis_lo, "lis_hi": r.lis_hi,
                        "lis_method": f"classify-and-count ({ice.judge})", "lis_labels": 0,
                        "sis": r.sis, "sis_lo": r.sis_lo, "sis_hi": r.sis_hi}
    for c in ice.corrected:
        if c.lis_corrected is None:
            continue
        lo, hi = _ci(c.lis_ci)
        slo, shi = _ci(c.sis_ci)
        out[c.model] = {"lis": c.lis_corrected, "lis_lo": lo, "lis_hi": hi, "lis_method": c.lis_method,
                        "lis_labels": c.lis_n_labels, "sis": c.sis_corrected, "sis_lo": slo, "sis_hi": shi}
    return out


def rse_part(rse: SimilaritySummary | None) -> dict[str, dict[str, tuple[float, float | None, float | None]]]:
    """model -> {reference: (mean, lo, hi)} from notebook 04's ``rse_by_reference`` (its ``rse_table`` against
    ``reference`` when it recorded no other references)."""
    out: dict[str, dict[str, tuple[float, float | None, float | None]]] = {}
    if rse is None:
        return out
    tables = rse.rse_by_reference or ({rse.reference: rse.rse_table} if rse.rse_table else {})
    for ref, rows in tables.items():
        for r in rows:
            if r.mean is None or r.test_model == ref:
                continue
            out.setdefault(r.test_model, {})[ref] = (r.mean, r.mean_lo, r.mean_hi)
    return out


def lineage_part(emb: LineageSummary | None, lines: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """model -> its lineage test (best line, p, Holm-adjusted p, named, alpha) and the vote's closest teacher,
    product line (``lines``, default notebook 05's ``reference_lines``), confidence and distillation score."""
    out: dict[str, dict[str, Any]] = {}
    if emb is None:
        return out
    lines = dict(lines if lines is not None else emb.reference_lines or {})
    for r in emb.attribution:
        top = r.top1
        out[r.student] = {"teacher": top, "teacher_line": lines.get(top, top) if top else None,
                          "teacher_confidence": r.p1, "distillation_score": r.distillation_score,
                          "lineage_note": emb.lineage_test_note}
    for t in emb.lineage_test:
        out.setdefault(t.target, {}).update({
            "lineage_line": t.line, "lineage_p": t.p, "lineage_p_adj": t.p_adj, "lineage_named": t.named,
            "lineage_alpha": emb.lineage_test_alpha, "lineage_note": None})
    return out


def maker_part(ice: IdentitySummary | None) -> dict[str, dict[str, Any]]:
    """model -> notebook 03's foreign-maker test: the top foreign maker, its share, the model's own
    hallucination baseline, p, Holm-adjusted p and whether it passed."""
    out: dict[str, dict[str, Any]] = {}
    for r in ice.makers if ice is not None else []:
        out[r.model] = {"foreign_maker": r.top_foreign, "foreign_maker_share": r.share,
                        "foreign_maker_baseline": r.baseline, "foreign_maker_p": r.p, "foreign_maker_p_adj": r.p_adj,
                        "foreign_maker_passed": r.passed, "maker_alpha": r.alpha}
    return out


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.0f}"


def p_text(p: float) -> str:
    """A p-value as the sentence quotes it: three decimals, scientific below 0.001."""
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def lineage_clause(v: ModelVerdict) -> str | None:
    """The teacher-line clause: a line only where the lineage test named it."""
    if v.lineage_named is None or v.lineage_p_adj is None:
        if v.lineage_note is not None or v.teacher_line is not None:
            return "teacher line not tested (" + (v.lineage_note or f"step {LineageSummary.step} recorded no lineage test") + ")"
        return None
    a = v.lineage_alpha if v.lineage_alpha is not None else 0.05
    if v.lineage_named:
        return f"answers like the {v.lineage_line} line (lineage test p_adj={p_text(v.lineage_p_adj)}, alpha={a:g})"
    return f"no lineage signal at alpha={a:g} (best line {v.lineage_line}, p_adj={p_text(v.lineage_p_adj)})"


def maker_clause(v: ModelVerdict) -> str | None:
    """The foreign-maker clause: a maker only where notebook 03's test passed."""
    if v.foreign_maker_passed is None:
        return None
    a = v.maker_alpha if v.maker_alpha is not None else 0.05
    if v.foreign_maker_passed and v.foreign_maker is not None and v.foreign_maker_p_adj is not None:
        return (f"claims {v.foreign_maker} as its maker in {_pct(v.foreign_maker_share)}% of its answers, above its "
                f"own rate of naming other foreign makers ({_pct(v.foreign_maker_baseline)}%; "
                f"p_adj={p_text(v.foreign_maker_p_adj)})")
    if v.foreign_maker is None or v.foreign_maker_p_adj is None:
        return "names no foreign maker in its own voice"
    return (f"no foreign maker stands out at alpha={a:g} (most named {v.foreign_maker}, "
            f"p_adj={p_text(v.foreign_maker_p_adj)})")


def sentence(v: ModelVerdict) -> str:
    """The plain-language verdict, by rules only; every clause quotes the number it rests on."""
    parts: list[str] = []
    lineage = lineage_clause(v)
    if lineage:
        parts.append(lineage)
    if v.rse:
        ref, (m, lo, hi) = max(v.rse.items(), key=lambda kv: kv[1][0])
        ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
        clause = f"is most similar to {ref} (RSE {m:.2f}{ci} of 5)"
        others = [(r, t) for r, t in v.rse.items() if r != ref]
        if others and lo is not None:
            r2, (m2, lo2, hi2) = max(others, key=lambda kv: kv[1][0])
            clause += (f", clearly above {r2} ({m2:.2f})" if hi2 is not None and hi2 < lo
                       else f", not distinguishable from {r2} ({m2:.2f})")
        parts.append(clause)
    if v.lis is not None:
        ci = f" [{_pct(v.lis_lo)}, {_pct(v.lis_hi)}]" if v.lis_lo is not None else ""
        if v.lis_hi is not None and v.lis_hi < KEEPS_IDENTITY:
            clause = f"keeps its identity under jailbreaks (contradicts it in {_pct(v.lis)}%{ci})"
        else:
            clause = f"contradicts its identity in {_pct(v.lis)}%{ci} of jailbreak attempts"
        if v.sis is not None and v.sis_lo is not None and v.sis_lo > 0:
            clause += f" and claims an OpenAI/Anthropic identity in {_pct(v.sis)}%"
        parts.append(clause)
    maker = maker_clause(v)
    if maker:
        parts.append(maker)
    if not parts:
        return f"{v.model}: no step of this run scored it."
    return f"{v.model} " + "; ".join(parts) + "."


def verdict_table(ice: IdentitySummary | None = None, rse: SimilaritySummary | None = None,
                  emb: LineageSummary | None = None, lines: Mapping[str, str] | None = None,
                  models: Sequence[str] | None = None) -> list[ModelVerdict]:
    """One verdict per model that any step scored (or per ``models``), in a stable order: by name."""
    ice_p, rse_p, lin_p, mk_p = ice_part(ice), rse_part(rse), lineage_part(emb, lines), maker_part(ice)
    names = list(models) if models is not None else sorted(set(ice_p) | set(rse_p) | set(lin_p) | set(mk_p))
    out = []
    for m in names:
        v = ModelVerdict(m, **ice_p.get(m, {}), rse=rse_p.get(m, {}), **lin_p.get(m, {}), **mk_p.get(m, {}))
        v.sentence = sentence(v)
        out.append(v)
    return out
