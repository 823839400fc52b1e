"""One verdict per model: what all of a run's numbers say together, and how sure they are.

Why: a reader of a distill-kit report wants, per model, the handful of numbers that matter -- the corrected
identity scores (ICE), the similarity to each reference (RSE), the closest teacher line and the distillation
score -- with their intervals, and one plain sentence. The sentence is built by fixed rules from those
numbers (no LLM), so it says nothing the numbers do not. ``report.py`` and notebook 06 only render this.

Inputs are the typed step summaries a run writes (:mod:`distill_kit.summaries`): notebook 03's ``corrected``
rows (falling back to its raw ``replay``/``live`` rows), notebook 04's ``rse_by_reference`` (or ``rse_table``
with its ``reference``) and notebook 05's ``attribution`` rows with its ``reference_lines``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from distill_kit.summaries import IdentitySummary, LineageSummary, SimilaritySummary

#: Teacher-attribution confidence from which the sentence names a line without hedging, and below which it
#: says there is no clear teacher.
CONFIDENT, UNSURE = 0.5, 0.25
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
    """student -> closest teacher, its product line (``lines``, default notebook 05's ``reference_lines``),
    confidence and distillation score (notebook 05)."""
    out: dict[str, dict[str, Any]] = {}
    if emb is None:
        return out
    lines = dict(lines if lines is not None else emb.reference_lines or {})
    for r in emb.attribution:
        top = r.top1
        out[r.student] = {"teacher": top, "teacher_line": lines.get(top, top) if top else None,
                          "teacher_confidence": r.p1, "distillation_score": r.distillation_score}
    return out


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.0f}"


def sentence(v: ModelVerdict) -> str:
    """The plain-language verdict, by rules only; every clause quotes the number it rests on."""
    parts: list[str] = []
    if v.teacher_line is not None and v.teacher_confidence is not None:
        c = v.teacher_confidence
        if c >= CONFIDENT:
            parts.append(f"answers like the {v.teacher_line} line (confidence {c:.2f})")
        elif c >= UNSURE:
            parts.append(f"leans towards the {v.teacher_line} line, without certainty (confidence {c:.2f})")
        else:
            parts.append(f"shows no clear teacher (best guess the {v.teacher_line} line, confidence {c:.2f})")
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
    if not parts:
        return f"{v.model}: no step of this run scored it."
    return f"{v.model} " + "; ".join(parts) + "."


def verdict_table(ice: IdentitySummary | None = None, rse: SimilaritySummary | None = None,
                  emb: LineageSummary | None = None, lines: Mapping[str, str] | None = None,
                  models: Sequence[str] | None = None) -> list[ModelVerdict]:
    """One verdict per model that any step scored (or per ``models``), in a stable order: by name."""
    ice_p, rse_p, lin_p = ice_part(ice), rse_part(rse), lineage_part(emb, lines)
    names = list(models) if models is not None else sorted(set(ice_p) | set(rse_p) | set(lin_p))
    out = []
    for m in names:
        v = ModelVerdict(m, **ice_p.get(m, {}), rse=rse_p.get(m, {}), **lin_p.get(m, {}))
        v.sentence = sentence(v)
        out.append(v)
    return out
