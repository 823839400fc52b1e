"""The lineage test: is a target's answer style tied to a reference line more than unrelated models' are?

Why: a teacher line stated for every model (the vote's top line with a confidence) is wrong for most human-data
controls and many students, and nothing says how often. Following provenance testing (Nikolic et al. 2025,
"Model Provenance Testing for Large Language Models", arXiv 2502.00706), each (target, line) pair gets a
p-value against a *null built from pairs documented as unrelated*, and the lines of one target are
Holm-corrected, so the product names a line only where the family-wise error over that target's lines is held
at ``alpha``.

The statistic of (model, line) is, by default (:data:`DEFAULT_STATISTIC`, ``paired:word/raw/mean``), the
model's mean paired similarity to the line's members -- the mean over all shared prompts of the word TF-IDF
cosine of two models' answers to the same prompt (:func:`~distill_kit.lineage.attribution.prompt_similarity`) --
minus its mean over the lines; other :class:`PairedStatistic` choices use character n-grams, the closest member
or a per-prompt standardisation, ``paired`` the closest member on the score half of a prompt split (the earlier
default); or (``vote``) the centred log-ratio of the line's score in the model's "who wrote this?"
vote (:mod:`distill_kit.lineage.votes`: a candidates-only classifier votes on every answer; the line's score is
its members' share under the chosen :class:`~distill_kit.lineage.votes.Method`): the log score minus the mean
log score over the lines the model's classifier knew. Why centred (Aitchison's CLR for compositions): line
scores sum to one, so a model whose votes pile onto one line has low scores on all the others and a
human-data control has flat ones; raw log scores would mix those two kinds of unrelated model into one wide
null, while the centred ones compare each line with the model's own typical line. Lines differ in baseline (a line
with three references collects more votes than a line with one; some models are hubs that every weak answer
drifts to), so every line has its own null: the statistics of that line on models documented as unrelated to
it (:func:`unrelated_lines`):

- human-data controls, against every line;
- students and variants, against every line but their documented teacher's;
- references, against every line but their own (never compared with themselves: for the vote each is held out
  of the classifier in turn, the leave-one-reference-out votes);

in each case not against the lines of the model's own documented family (the lineage file's ``family``: a
variant of gpt-4 is no unrelated model for the gpt-3.5 line).

Never the target being tested: its null leaves every pair of the target out (leave-target-out), so a
documented target can be scored by the same rule it helps to build for others.

The p-value is a prediction-interval t-test per line: with the line's ``n`` null values (mean ``m``, standard
deviation ``s``), ``T = (x - m) / (s * sqrt(1 + 1/n))`` and ``p = P(t_{n-1} >= T)``. Why parametric: an
empirical p-value from ``n`` null values cannot go below ``1 / (n + 1)``; with ~10-30 unrelated models per
line that is 0.03-0.1, which can never survive Holm over 5-20 lines. The t-test is exact when a line's null
values and an unrelated target's statistic are independent draws of one normal distribution;
:mod:`tests.lineage.test_significance` checks the level by simulation and
``benchmarks/bench_lineage.py`` measures the false-positive rate on the documented unrelated pairs, each
scored against a null that leaves its own target out.

Entry points: :func:`lineage_test` (answers frame in, tests out), :func:`lineage_test_from_similarity`,
:func:`lineage_test_from_votes` and :func:`lineage_test_from_statistics` (a paired-similarity matrix, vote
matrices or any statistics table in, for callers that cache them), :func:`line_tests` (the pure step the unit
tests drive), :func:`error_rates` (false-positive rate, power, selective accuracy, coverage against the
documented lineage) and :func:`reference_task` / :func:`choose_statistic` (the references-only task that
compares statistics without any target, and the rule that picks one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from distill_kit.lineage.attribution import LineageFeatures, PromptSimilarity, build_features, prompt_similarity
from distill_kit.lineage.attribution import signal_matrix
from distill_kit.lineage.documented import LineageLabels
from distill_kit.lineage.prompts import common_prompts, split_prompts
from distill_kit.lineage.votes import DEFAULT_METHOD, Method, Ranking, VoteMatrix, basic_features, count_features
from distill_kit.lineage.votes import hub_background, rank, vote_matrix
from distill_kit.stats import holm

ALPHA = 0.05
"""Family-wise error over one target's lines at which a line is named."""
MIN_NULL = 5
"""Unrelated models a line's null needs before the line can be tested (a t-test from fewer is too unstable)."""


class TooFewUnrelated(ValueError):
    """The folder documents too few unrelated (model, line) pairs to build a null: one line, for the notebook
    and the CLI to print as is."""


@dataclass(frozen=True)
class LineTest:
    """One (target, line) test. ``p``/``p_adj`` are NaN where the line has fewer than ``min_null`` unrelated
    models besides the target (then it is never named and does not count in Holm's family)."""

    target: str
    line: str
    statistic: float  # centred log-ratio of the line's vote score
    null_mean: float
    null_sd: float
    n_null: int
    p: float
    p_adj: float  # Holm over the target's tested lines
    named: bool  # p_adj < alpha


@dataclass
class LineageTestResult:
    """Every (target, line) test of a run and what the product may say per target."""

    alpha: float
    method: str
    tests: list[LineTest]
    null_models: list[str] = field(default_factory=list)  # models whose documented unrelated pairs built the null
    untested_lines: list[str] = field(default_factory=list)  # lines with too few unrelated models for any target

    def table(self) -> pl.DataFrame:
        """One row per (target, line), best line first within a target."""
        rows = sorted((asdict(t) for t in self.tests),
                      key=lambda r: (r["target"], np.inf if np.isnan(r["p"]) else r["p"], -r["statistic"]))
        return pl.DataFrame(rows)

    def best(self) -> dict[str, LineTest]:
        """Per target: its tested line with the smallest p (ties: the larger statistic). The product names that
        line when its ``named`` is true, else says there is no lineage signal and quotes this line's p."""
        out: dict[str, LineTest] = {}
        for t in self.tests:
            if np.isnan(t.p):
                continue
            cur = out.get(t.target)
            if cur is None or (t.p, -t.statistic) < (cur.p, -cur.statistic):
                out[t.target] = t
        return out

    def per_target(self, documented_line: Mapping[str, str] | None = None) -> dict[str, dict[str, object]]:
        """``{target: {line, p, p_adj, named, documented_line}}``: the benchmark's and the summary's rows."""
        doc = documented_line or {}
        return {t: {"line": b.line, "p": b.p, "p_adj": b.p_adj, "named": b.named, "documented_line": doc.get(t)}
                for t, b in self.best().items()}

    def per_target_table(self, documented_line: Mapping[str, str] | None = None) -> pl.DataFrame:
        """:meth:`per_target` as a frame, one row per target (what notebook 05 shows)."""
        return pl.DataFrame([{"target": t, **r} for t, r in self.per_target(documented_line).items()],
                            schema_overrides={"documented_line": pl.Utf8})


# ------------------------------------------------------------------------------------ the null
def unrelated_lines(labels: LineageLabels, line_names: Sequence[str]) -> dict[str, set[str]]:
    """model -> the candidate lines it is documented to be unrelated to: every line for a human-data control,
    every line but its teacher's for a student or variant (none when its teacher is undocumented), every line
    but its own for a reference -- in each case leaving out the lines of the model's own documented family
    (``labels.families``: a Mistral fine-tune is not unrelated to the mistral line, a gpt-4 variant not to the
    gpt-3.5 line, a held-out Llama-3 reference not to the llama-3.1 line)."""
    all_lines = set(line_names)
    fam = labels.families
    line_families: dict[str, set[str]] = {}
    for r in labels.references:
        if fam.get(r):
            line_families.setdefault(labels.lines.get(r, r), set()).add(fam[r])

    def other_families(m: str, lines: set[str]) -> set[str]:
        return {ln for ln in lines if not fam.get(m) or fam[m] not in line_families.get(ln, set())}

    out: dict[str, set[str]] = {c: other_families(c, all_lines) for c in labels.controls}
    teacher_lines = labels.teacher_lines
    for s in [*labels.students, *labels.variants]:
        if s in teacher_lines:
            out[s] = other_families(s, all_lines - {teacher_lines[s]})
    for r in labels.references:
        out[r] = other_families(r, all_lines - {labels.lines.get(r, r)})
    return out


def too_few(n_pairs: int, n_models: int, min_null: int = MIN_NULL) -> TooFewUnrelated:
    """The one-line error for a folder whose documented unrelated pairs cannot build a null."""
    return TooFewUnrelated(
        f"lineage test: too few documented unrelated pairs ({n_pairs} (model, line) pairs from {n_models} "
        f"models; each line needs {min_null} unrelated models besides the target) -- add human-data controls or "
        "students of documented teachers to the models")


def _t_sf_adjusted(x: float, c: float, null: np.ndarray, null_c: np.ndarray) -> tuple[float, float, float]:
    """(p, predicted mean, residual sd) of ``x`` against the regression of ``null`` on the covariate ``null_c``:
    the prediction-interval t-test of :func:`_t_sf` with the null's mean replaced by its least-squares line at
    the target's covariate ``c`` (``n - 2`` degrees of freedom, the prediction's leverage in the interval)."""
    from scipy.stats import t as student_t

    n = len(null)
    X = np.column_stack([np.ones(n), null_c])
    xtx_inv = np.linalg.pinv(X.T @ X)
    beta = xtx_inv @ X.T @ null
    resid = null - X @ beta
    s = max(float(np.sqrt(resid @ resid / (n - 2))), 1e-9)
    x0 = np.array([1.0, c])
    pred = float(x0 @ beta)
    T = (x - pred) / (s * np.sqrt(1.0 + float(x0 @ xtx_inv @ x0)))
    return float(student_t.sf(T, n - 2)), pred, s


def _t_sf(x: float, null: np.ndarray) -> tuple[float, float, float]:
    """(p, mean, sd) of the prediction-interval t-test of ``x`` against ``null`` (one-sided: larger is lineage)."""
    from scipy.stats import t as student_t

    n = len(null)
    m, s = float(null.mean()), float(null.std(ddof=1))
    s = max(s, 1e-9)  # a constant null: anything above it is infinitely far out
    T = (x - m) / (s * np.sqrt(1.0 + 1.0 / n))
    return float(student_t.sf(T, n - 1)), m, s


def line_tests(
    stats: Mapping[str, Mapping[str, float]], targets: Sequence[str], unrelated: Mapping[str, set[str]], *,
    alpha: float = ALPHA, min_null: int = MIN_NULL, method: str = "",
    covariate: Mapping[str, Mapping[str, float]] | None = None,
) -> LineageTestResult:
    """Test every (target, line) of ``stats`` (``stats[model][line]``, larger = more like the line) against
    the line's statistics on the models ``unrelated`` documents as unrelated to it, leaving the target out.
    With ``covariate`` (``covariate[model][line]``, e.g. :func:`length_gap`) the null is a regression on it
    (:func:`_t_sf_adjusted`): the target is compared with unrelated models *like it* in that nuisance, and a
    model or null value without a covariate is left out.

    Raises :class:`TooFewUnrelated` (one line) when no line of any target has ``min_null`` unrelated models."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    missing = [t for t in targets if t not in stats]
    if missing:
        raise ValueError(f"no statistics for targets {missing}")
    lines = sorted({ln for m in stats.values() for ln in m})
    null_models = sorted(m for m in unrelated if m in stats and unrelated[m] & set(stats[m]))
    tests: list[LineTest] = []
    tested_lines: set[str] = set()
    for tgt in dict.fromkeys(targets):
        raw = []
        for ln in lines:
            if ln not in stats[tgt]:
                continue
            members = [m for m in null_models if m != tgt and ln in unrelated[m] and ln in stats[m]]
            if covariate is not None:
                members = [m for m in members if ln in covariate.get(m, {})]
            null = np.array([stats[m][ln] for m in members], dtype=float)
            x = float(stats[tgt][ln])
            c0 = covariate.get(tgt, {}).get(ln) if covariate is not None else None
            if covariate is not None and c0 is not None and len(null) >= max(min_null, 4):
                p, mean, sd = _t_sf_adjusted(x, float(c0), null,
                                             np.array([covariate[m][ln] for m in members], dtype=float))
                tested_lines.add(ln)
            elif covariate is None and len(null) >= min_null:
                p, mean, sd = _t_sf(x, null)
                tested_lines.add(ln)
            else:
                p, mean, sd = float("nan"), float(null.mean()) if len(null) else float("nan"), float("nan")
            raw.append((ln, x, mean, sd, len(null), p))
        ps = [r[5] for r in raw if not np.isnan(r[5])]
        adj = iter(holm(ps)) if ps else iter(())
        for ln, x, mean, sd, n, p in raw:
            q = float("nan") if np.isnan(p) else float(next(adj))
            tests.append(LineTest(tgt, ln, x, mean, sd, n, p, q, bool(q < alpha)))
    if not tested_lines:
        raise too_few(sum(len(unrelated[m] & set(stats[m])) for m in null_models), len(null_models), min_null)
    return LineageTestResult(alpha, method, tests, null_models, sorted(set(lines) - tested_lines))


# --------------------------------------------------------------------------------- from answers
def centred(scores: Mapping[str, float], log: bool = False) -> dict[str, float]:
    """One model's line scores minus their mean over its lines (of their logs with ``log``; lines scoring 0 --
    a held-out reference's own single-member line -- are left out: they would drag the mean)."""
    vals = {ln: (float(np.log(v)) if log else float(v)) for ln, v in scores.items() if not log or v > 0}
    centre = float(np.mean(list(vals.values()))) if vals else 0.0
    return {ln: v - centre for ln, v in vals.items()}


def line_statistics(rankings: Mapping[str, Ranking]) -> dict[str, dict[str, float]]:
    """model -> line -> centred log-ratio of the line's vote score (the ``vote`` statistic)."""
    return {m: centred(dict(zip(r.lines, r.line_scores)), log=True) for m, r in rankings.items()}


MEMBERS = ("max", "mean")
"""How a line's members' similarities become the line's: the closest member, or their mean."""


def paired_line_statistics(sim: np.ndarray, queries: Sequence[str], candidates: Sequence[str],
                           lines: Mapping[str, str], member: str = "max") -> dict[str, dict[str, float]]:
    """model -> line -> the ``paired`` statistic: the model's highest (``member="mean"``: mean) paired
    similarity to a member of the line (``sim``: queries x candidates, e.g.
    :func:`distill_kit.lineage.attribution.signal_matrix` ``"paired"``; a reference is never compared with
    itself), minus its mean over the lines."""
    if member not in MEMBERS:
        raise ValueError(f"unknown member rule {member!r}; choose from {MEMBERS}")
    out: dict[str, dict[str, float]] = {}
    for i, m in enumerate(queries):
        by_line: dict[str, list[float]] = {}
        for j, c in enumerate(candidates):
            if c != m and not np.isnan(sim[i, j]):
                by_line.setdefault(lines.get(c) or c, []).append(float(sim[i, j]))
        out[m] = centred({ln: max(v) if member == "max" else float(np.mean(v)) for ln, v in by_line.items()})
    return out


@dataclass(frozen=True)
class PairedStatistic:
    """A paired-similarity statistic over *all* shared prompts (:func:`~distill_kit.lineage.attribution.
    prompt_similarity`, vocabulary learnt from the answers themselves): per prompt, the cosine of the model's
    and a reference's answers on each text feature set in ``features``; with ``standardise`` each such cosine is
    first z-scored against the similarities of the *other* references to that reference on that prompt
    (:func:`standardised_similarity`: removes prompt difficulty -- short factual answers are alike whoever
    wrote them -- and a reference's generic answers to a prompt; the spread is shrunk towards its median over
    prompts, so prompts the references all answer alike do not dominate), then averaged over the feature sets and the
    prompts; a line's value is its members' ``max`` or ``mean``, centred over the lines as ``paired`` is."""

    features: tuple[str, ...] = ("word",)
    standardise: bool = False
    member: str = "max"
    adjust: str = ""  # "len": the null is a regression on the length gap (:func:`length_gap`)

    @property
    def name(self) -> str:
        base = f"paired:{'+'.join(self.features)}/{'z' if self.standardise else 'raw'}/{self.member}"
        return f"{base}/{self.adjust}" if self.adjust else base

    @classmethod
    def parse(cls, name: str) -> PairedStatistic:
        """The statistic a :attr:`name` names (``ValueError`` for anything else)."""
        from distill_kit.lineage.attribution import PAIRED_FEATURES

        head, _, rest = name.partition(":")
        parts = rest.split("/")
        feats = tuple(parts[0].split("+")) if parts[0] else ()
        if (head != "paired" or len(parts) not in (3, 4) or not feats or set(feats) - set(PAIRED_FEATURES)
                or parts[1] not in ("z", "raw") or parts[2] not in MEMBERS or parts[3:] not in ([], ["len"])):
            raise ValueError(f"unknown statistic {name!r}; choose from {STATISTICS} or "
                             "paired:<word|char|word+char>/<raw|z>/<max|mean>[/len]")
        return cls(feats, parts[1] == "z", parts[2], "/".join(parts[3:]))


PAIRED_CANDIDATES = tuple(PairedStatistic(f, z, m, a) for a in ("", "len")
                          for f in (("word",), ("char",), ("word", "char")) for z in (False, True) for m in MEMBERS)
"""The paired statistics the references-only task compares (``benchmarks/bench_lineage.py``), the unadjusted
ones first (the rule's last tie-break prefers the earlier, simpler statistic)."""


def length_gap(frame: pl.DataFrame, queries: Sequence[str], references: Mapping[str, str],
               prompts: Sequence[str]) -> dict[str, dict[str, float]]:
    """model -> line -> the mean over the line's members (never the model itself) of the mean over the prompts
    both answered of ``|log(1 + chars of the model's answer) - log(1 + chars of the member's)|``.

    Why: two models that write answers of the same length share more n-grams whoever trained them, so a TF-IDF
    similarity to a line rises as the length gap to it falls; among the documented unrelated models of the
    AlpacaEval folder this gap explains 0-52% of a line's null variance (``/len`` statistics regress the null on
    it, :func:`line_tests`). Paired by prompt like the similarity itself."""
    from distill_kit.datasets import as_responses

    refs = list(references)
    models = list(dict.fromkeys([*queries, *refs]))
    sub = (as_responses(frame).filter(pl.col("model").is_in(models) & pl.col("prompt").is_in(list(prompts)))
           .select("model", "prompt", (pl.col("text").str.len_chars().cast(pl.Float64) + 1.0).log().alias("L")))
    wide = sub.pivot(on="model", index="prompt", values="L", aggregate_function="first")
    have = [m for m in models if m in wide.columns]
    A = wide.select(have).to_numpy().astype(np.float64)
    col = {m: k for k, m in enumerate(have)}
    ref_cols = [col[r] for r in refs if r in col]
    ref_have = [r for r in refs if r in col]
    out: dict[str, dict[str, float]] = {}
    for q in queries:
        if q not in col:
            continue
        gaps = _nan_mean(np.abs(A[:, [col[q]]] - A[:, ref_cols]), axis=0)
        by_line: dict[str, list[float]] = {}
        for r, g in zip(ref_have, gaps):
            if r != q and not np.isnan(g):
                by_line.setdefault(references[r] or r, []).append(float(g))
        out[q] = {ln: float(np.mean(v)) for ln, v in by_line.items()}
    return out


def standardised_similarity(sims: Sequence[PromptSimilarity], queries: Sequence[str],
                            references: Sequence[str], standardise: bool) -> np.ndarray:
    """``queries x references``: the mean over prompts of the per-prompt similarity, averaged over the feature
    sets in ``sims``. With ``standardise``, each cosine of (query q, reference c, prompt p) becomes
    ``(s - m) / sqrt(v + v0)`` with ``m``, ``v`` the mean and variance of the similarities to c on p of the
    references other than c (and other than q, when q is itself a reference: a model never sets its own
    scale) and ``v0`` the median over prompts and references of ``v`` (all references but c). Only references
    set the scale, so no target's answers shape another target's statistic."""
    refs = list(references)
    pos = {r: k for k, r in enumerate(refs)}
    per_feature = []
    for ps in sims:
        B = ps.block(queries, refs).astype(np.float64)
        if standardise:
            R = ps.block(refs, refs).astype(np.float64)
            R[:, np.arange(len(refs)), np.arange(len(refs))] = np.nan  # a reference is no background to itself
            seen = ~np.isnan(R)
            # where the references all answer a prompt alike ("D. Prescreening") their spread is ~0 and a raw
            # z-score explodes; the median spread over prompts (references only, so the same for any queries) is
            # added to each prompt's, so such a prompt counts like any other rather than dominating the mean
            n0 = seen.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                var0 = (np.nansum(R ** 2, axis=1) - np.nansum(R, axis=1) ** 2 / n0) / (n0 - 1)
            floor = float(np.nanmedian(np.where(n0 >= 2, np.maximum(var0, 0.0), np.nan)))
            s1 = np.repeat(np.nansum(R, axis=1)[:, None, :], len(queries), axis=1)  # sum over background r
            s2 = np.repeat(np.nansum(R ** 2, axis=1)[:, None, :], len(queries), axis=1)
            n = np.repeat(seen.sum(axis=1)[:, None, :].astype(np.float64), len(queries), axis=1)
            for i, q in enumerate(queries):
                if q in pos:  # leave the query out of the background it is scaled by
                    row = R[:, pos[q], :]
                    s1[:, i] -= np.nan_to_num(row)
                    s2[:, i] -= np.nan_to_num(row) ** 2
                    n[:, i] -= ~np.isnan(row)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = s1 / n
                var = np.maximum((s2 - n * mean ** 2) / (n - 1), 0.0)
                B = np.where(n >= 2, (B - mean) / np.sqrt(var + floor), np.nan)
        per_feature.append(B)
    return _nan_mean(_nan_mean(np.stack(per_feature), axis=0), axis=0)


def _nan_mean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` of the values that are not NaN (NaN where there are none), without a warning."""
    seen = (~np.isnan(a)).sum(axis=axis)
    return np.where(seen > 0, np.nansum(a, axis=axis) / np.maximum(seen, 1), np.nan)


def paired_statistics(stat: PairedStatistic, sims: Mapping[str, PromptSimilarity], queries: Sequence[str],
                      references: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """model -> line -> ``stat`` for each of ``queries`` (``sims``: the per-prompt similarities by feature set,
    covering the queries and the references)."""
    missing = [f for f in stat.features if f not in sims]
    if missing:
        raise ValueError(f"statistic {stat.name} needs paired similarity on {missing}")
    refs = list(references)
    mat = standardised_similarity([sims[f] for f in stat.features], queries, refs, stat.standardise)
    return paired_line_statistics(mat, queries, refs, references, stat.member)


def combined_statistics(parts: Sequence[Mapping[str, Mapping[str, float]]],
                        scale_on: Sequence[str]) -> dict[str, dict[str, float]]:
    """model -> line -> the sum of several statistics, each divided by its standard deviation over the
    (model, line) values of the ``scale_on`` models (the references: no target sets a scale), so each statistic
    weighs the same. Models and lines missing from a part are left out."""
    scaled = []
    for part in parts:
        vals = [v for m in scale_on if m in part for v in part[m].values()]
        sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 1.0
        scaled.append({m: {ln: v / max(sd, 1e-12) for ln, v in row.items()} for m, row in part.items()})
    models = set.intersection(*(set(p) for p in scaled)) if scaled else set()
    out: dict[str, dict[str, float]] = {}
    for m in models:
        lines = set.intersection(*(set(p[m]) for p in scaled))
        out[m] = {ln: float(sum(p[m][ln] for p in scaled)) for ln in sorted(lines)}
    return out


STATISTICS = ("paired", "vote")
"""Named statistics; any :attr:`PairedStatistic.name` is accepted too."""
DEFAULT_STATISTIC = "paired:word/raw/mean"
"""The test's statistic for new folders, fixed by the references-only rule (:func:`choose_statistic` over
:func:`reference_task`, ``benchmarks/bench_lineage.py``): on AlpacaEval's 25 references, each of the 15 with a
same-line sibling tested against a null of the other references (no target read), ``paired:word/raw/mean``
(the mean over all shared prompts of the word TF-IDF cosine of the two models' answers to the same prompt,
averaged over the line's members, centred over the lines) names the own line of 0.67 and another line of 0.07
(net 0.60), against net 0.33 for the earlier default ``paired`` (score half of the prompts, closest member),
0.47 for the vote under :data:`~distill_kit.lineage.votes.DEFAULT_METHOD` and 0.00-0.27 for the statistics
standardised per prompt. It needs no classifier fit, so holding references out for the null costs nothing."""


def lineage_test(
    frame: pl.DataFrame, targets: Sequence[str], references: Mapping[str, str], labels: LineageLabels, *,
    statistic: str = DEFAULT_STATISTIC, method: Method = DEFAULT_METHOD, alpha: float = ALPHA,
    min_null: int = MIN_NULL, prompts: Sequence[str] | None = None, k: int = 2, seed: int = 0,
    reference_null: bool = True, features: LineageFeatures | None = None, fit_fraction: float = 0.5,
) -> LineageTestResult:
    """Test each of ``targets`` against each reference line.

    ``frame``: answers (``model, prompt_id, prompt, text``). ``targets``: any models in it (a user's own ones
    included; they need no label). ``references``: candidate model -> its product line. ``labels``: the
    documented lineage (:func:`distill_kit.lineage.documented.lineage_labels`), which defines the unrelated pairs
    of every labelled model in ``frame`` (:func:`unrelated_lines`); labelled models that are neither targets nor
    references join only to build the null. ``statistic``: a :attr:`PairedStatistic.name` (default
    :data:`DEFAULT_STATISTIC`; per-prompt cosines of two models' answers on all of ``prompts``, the shared ones by
    default), ``"paired"`` (mean TF-IDF cosine on the score half of a prompt split, closest member;
    ``features`` reuses vectors already built, ``fit_fraction`` and ``seed`` split ``prompts`` otherwise) or
    ``"vote"`` (the who-wrote-this vote under ``method``, ``k`` prompt folds). ``reference_null``: the references join the null against the
    other lines (for the vote each is held out of the classifier in turn: ``len(references) * k`` fits).

    Raises :class:`TooFewUnrelated` (one line) when the folder documents too few unrelated pairs."""
    from distill_kit.datasets import as_responses

    paired_stat = PairedStatistic.parse(statistic) if statistic not in STATISTICS else None
    refs = list(dict.fromkeys(references))
    if len(refs) < 2:
        raise ValueError("the lineage test needs at least two references")
    overlap = [t for t in targets if t in set(refs)]
    if overlap:
        raise ValueError(f"a reference cannot be a target of its own classifier: {overlap}")
    lines = {r: references[r] or r for r in refs}
    frame = as_responses(frame)
    present = set(frame["model"].unique().to_list())
    null = [m for m, ls in unrelated_lines(labels, sorted(set(lines.values()))).items()
            if m in present and ls and m not in set(refs)]
    null_refs = [r for r in refs if r in set(labels.references)] if reference_null else []
    if len(set(null) | set(null_refs)) < min_null:  # before any classifier is fitted
        raise too_few(0, len(set(null) | set(null_refs)), min_null)
    voters = list(dict.fromkeys([*targets, *null]))
    if paired_stat is not None:
        models = [*refs, *voters]
        pool = list(prompts) if prompts is not None else common_prompts(frame, models)
        sims = {f: prompt_similarity(frame, models, pool, features=f) for f in paired_stat.features}
        queries = [*voters, *(refs if reference_null else [])]
        cov = length_gap(frame, queries, lines, pool) if paired_stat.adjust == "len" else None
        return lineage_test_from_statistics(paired_statistics(paired_stat, sims, queries, lines), targets, lines,
                                            labels, alpha=alpha, min_null=min_null, method=paired_stat.name,
                                            covariate=cov)
    if statistic == "paired":
        models = [*refs, *voters]
        if features is None or not set(models) <= set(features.models):
            pool = list(prompts) if prompts is not None else common_prompts(frame, models)
            fit, score = split_prompts(pool, fit_fraction, seed)
            features = build_features(frame, models, fit, score, with_style=False)
        queries = [*voters, *(refs if reference_null else [])]
        return lineage_test_from_similarity(signal_matrix(features, "paired", queries, refs), queries, lines, targets,
                                            labels, alpha=alpha, min_null=min_null)
    counts = count_features(frame.filter(pl.col("model").is_in([*refs, *voters])),
                            basic_features([method.features]))
    votes = vote_matrix(counts, refs, voters, features=method.features, prompts=prompts, k=k, seed=seed)
    loro = vote_matrix(counts, refs, [], features=method.features, prompts=prompts, k=k, seed=seed,
                       held_out=leave_one_reference_out(refs)) if reference_null or method.hub else None
    return lineage_test_from_votes(votes, loro if reference_null else None, targets, lines, labels, method=method,
                                   alpha=alpha, min_null=min_null, background=loro)


def lineage_test_from_similarity(
    sim: np.ndarray, queries: Sequence[str], references: Mapping[str, str], targets: Sequence[str],
    labels: LineageLabels, *, alpha: float = ALPHA, min_null: int = MIN_NULL,
) -> LineageTestResult:
    """:func:`lineage_test` with the ``paired`` statistic from a similarity matrix already computed (``sim``:
    ``queries`` x ``references``, the benchmark caches it); queries that are references join the null."""
    stats = paired_line_statistics(sim, queries, list(references), references)
    return lineage_test_from_statistics(stats, targets, references, labels, alpha=alpha, min_null=min_null,
                                        method="paired/max")


def lineage_test_from_statistics(
    stats: Mapping[str, Mapping[str, float]], targets: Sequence[str], references: Mapping[str, str],
    labels: LineageLabels, *, alpha: float = ALPHA, min_null: int = MIN_NULL, method: str = "",
    covariate: Mapping[str, Mapping[str, float]] | None = None,
) -> LineageTestResult:
    """:func:`line_tests` with the null of every model in ``stats`` that ``labels`` documents as unrelated to a
    line of ``references`` (reference -> line)."""
    unrelated = {m: ls for m, ls in unrelated_lines(labels, sorted(set(references.values()))).items() if m in stats}
    return line_tests(stats, targets, unrelated, alpha=alpha, min_null=min_null, method=method, covariate=covariate)


def reference_power(result: LineageTestResult, lines: Mapping[str, str]) -> dict[str, float | None]:
    """The references-only task: of the references tested as targets (those with a same-line sibling), the share
    whose own line is named and the share given another line. Chooses a statistic without any target."""
    best = result.best()
    tested = [r for r in lines if r in {t.target for t in result.tests}]
    if not tested:
        return {"n": 0, "own_line_named": None, "other_line_named": None}
    named = {r: best[r].line for r in tested if r in best and best[r].named}
    own = sum(ln == lines[r] for r, ln in named.items())
    return {"n": len(tested), "own_line_named": own / len(tested), "other_line_named": (len(named) - own) / len(tested)}


def reference_task(stats: Mapping[str, Mapping[str, float]], references: Mapping[str, str], labels: LineageLabels,
                   *, alpha: float = ALPHA, min_null: int = MIN_NULL,
                   covariate: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, float | None]:
    """The references-only task on the references alone: each reference with a same-line sibling is tested as a
    target against a null of the *other references* only (``stats`` may hold targets too; they are dropped, so
    no target's answers enter the choice). Returns :func:`reference_power` plus ``net`` (own line named minus
    another line named, as a share: a wrong line costs what a right one gains, since the product must be right
    when it names) and ``own_line_log10_p`` (mean -log10 p of the own line: the tie-break, how far the own line
    stands out even where it is not named)."""
    refs = {r: references[r] or r for r in references if r in stats}
    siblings = sibling_references(refs)
    if not siblings:
        return {"n": 0, "own_line_named": None, "other_line_named": None, "net": None, "own_line_log10_p": None}
    res = lineage_test_from_statistics({r: stats[r] for r in refs}, siblings, refs, labels, alpha=alpha,
                                       min_null=min_null, covariate=covariate)
    out: dict[str, float | None] = {**reference_power(res, {r: refs[r] for r in siblings})}
    own_p = [t.p for t in res.tests if t.line == refs[t.target] and not np.isnan(t.p)]
    out["net"] = float(out["own_line_named"] or 0.0) - float(out["other_line_named"] or 0.0)
    out["own_line_log10_p"] = float(np.mean(-np.log10(np.maximum(own_p, 1e-300)))) if own_p else None
    return out


def choose_statistic(tasks: Mapping[str, Mapping[str, float | None]]) -> str:
    """The statistic the references-only rule picks from :func:`reference_task` results: the largest ``net``,
    ties broken by the larger ``own_line_log10_p``, then by the order given (put the simpler statistics
    first). Fixed before any candidate was scored on a target."""
    usable = [k for k, v in tasks.items() if v.get("net") is not None]
    if not usable:
        raise ValueError("no statistic could be compared on the references-only task (no reference has a sibling)")
    order = {k: i for i, k in enumerate(tasks)}
    return max(usable, key=lambda k: (round(float(tasks[k]["net"] or 0.0), 9),
                                      float(tasks[k]["own_line_log10_p"] or 0.0), -order[k]))


def sibling_references(references: Mapping[str, str]) -> list[str]:
    """References whose line has another member: the ones the references-only task can test."""
    lines = list(references.values())
    return [r for r, ln in references.items() if ln and lines.count(ln) > 1]


def leave_one_reference_out(references: Sequence[str]) -> dict[str, list[str]]:
    """The ``held_out`` groups of :func:`~distill_kit.lineage.votes.vote_matrix` that hold each reference out
    alone (the references-as-targets half of the null; ``len(references) * k`` classifier fits)."""
    return {r: [r] for r in dict.fromkeys(references)}


def lineage_test_from_votes(
    votes: VoteMatrix, loro: VoteMatrix | None, targets: Sequence[str], lines: Mapping[str, str],
    labels: LineageLabels, *, method: Method = DEFAULT_METHOD, alpha: float = ALPHA, min_null: int = MIN_NULL,
    background: VoteMatrix | None = None,
) -> LineageTestResult:
    """:func:`lineage_test` from vote matrices already computed (the benchmark caches them): ``votes`` on the
    targets and the documented null models by the all-references classifier; ``loro`` the leave-one-reference-out
    votes (:func:`leave_one_reference_out`) or None to keep references out of the null; ``background`` the
    held-out votes a hub method's background comes from (default ``loro``)."""
    lines = {c: lines.get(c) or c for c in votes.candidates}
    return lineage_test_from_statistics(vote_statistics(votes, loro, lines, method, background), targets, lines,
                                        labels, alpha=alpha, min_null=min_null, method=method.name)


def vote_statistics(votes: VoteMatrix, loro: VoteMatrix | None, lines: Mapping[str, str], method: Method,
                    background: VoteMatrix | None = None) -> dict[str, dict[str, float]]:
    """model -> line -> the ``vote`` statistic of every voter of ``votes`` and (``loro``) of every reference,
    each by the classifiers that held it out (arguments as :func:`lineage_test_from_votes`)."""
    bg_votes = background if background is not None else loro
    if method.hub and bg_votes is None:
        raise ValueError(f"method {method.name} needs held-out reference votes for its hub background")
    lines = {c: lines.get(c) or c for c in votes.candidates}
    bg = hub_background(bg_votes, method.vote, lines) if method.hub and bg_votes is not None else None
    rankings = {v: rank(votes, v, method, lines, bg) for v in votes.probs}
    if loro is not None:
        for r in loro.probs:
            rb = hub_background(loro, method.vote, lines, exclude=r) if method.hub else None
            rankings[r] = rank(loro, r, method, lines, rb)
    return line_statistics(rankings)


# ---------------------------------------------------------------------------------- error rates
def error_rates(result: LineageTestResult, labels: LineageLabels, scored: Sequence[str]) -> dict[str, object]:
    """How often the test's claims are wrong, over the ``scored`` targets (pass only targets that chose
    nothing: the method, alpha and the null rule fixed without them).

    - ``fpr``: share of the scored targets' documented unrelated (target, line) pairs whose Holm-adjusted p is
      below alpha, with its 95% Wilson interval ``fpr_ci``;
    - ``power``: share of the scored students and variants whose named line is their documented teacher's line
      (``power_ci``: its Wilson interval);
    - ``selective_accuracy``: of the scored targets given a line, the share given their documented line
      (a named control is wrong; ``selective_accuracy_ci``);
    - ``coverage``: share of the scored targets given a line.
    """
    from distill_kit.stats import wilson_ci

    scored = list(dict.fromkeys(scored))
    tested = {(t.target, t.line): t for t in result.tests if not np.isnan(t.p)}
    line_names = sorted({t.line for t in result.tests})
    unrelated = unrelated_lines(labels, line_names)
    pairs = [(t, ln) for t in scored for ln in sorted(unrelated.get(t, ())) if (t, ln) in tested]
    false = sum(tested[p].named for p in pairs)
    best = result.best()
    doc = labels.teacher_lines
    named = {t: best[t].line for t in scored if t in best and best[t].named}
    graded = [t for t in scored if t in labels.controls or t in doc]
    right = [t for t in named if t in graded and doc.get(t) == named[t]]
    positives = [t for t in scored if t in doc]
    hits = sum(named.get(t) == doc[t] for t in positives)
    named_graded = [t for t in named if t in graded]
    return {
        "alpha": result.alpha, "fpr": false / len(pairs) if pairs else float("nan"),
        "fpr_ci": list(wilson_ci(false, len(pairs))), "n_unrelated_pairs": len(pairs), "n_false_positives": false,
        "power": hits / len(positives) if positives else float("nan"),
        "power_ci": list(wilson_ci(hits, len(positives))), "n_positives": len(positives),
        "selective_accuracy": len(right) / len(named_graded) if named_graded else float("nan"),
        "selective_accuracy_ci": list(wilson_ci(len(right), len(named_graded))),
        "n_named": len(named), "coverage": len(named) / len(scored) if scored else float("nan"),
        "n_scored": len(scored),
    }
