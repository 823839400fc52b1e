"""The lineage test: is a target's answer style tied to a reference line more than unrelated models' are?

Why: a teacher line stated for every model (the vote's top line with a confidence) is wrong for most human-data
controls and many students, and nothing says how often. Following provenance testing (Nikolic et al. 2025,
"Model Provenance Testing for Large Language Models", arXiv 2502.00706), each (target, line) pair gets a
p-value against a *null built from pairs documented as unrelated*, and the lines of one target are
Holm-corrected, so the product names a line only where the family-wise error over that target's lines is held
at ``alpha``.

The statistic of (model, line) is the centred log-ratio of the line's score in the model's "who wrote this?"
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
- references, each held out of the classifier in turn (the leave-one-reference-out votes), against every line
  but their own.

Never the target being tested: its null leaves every pair of the target out (leave-target-out), so a
documented target can be scored by the same rule it helps to build for others.

The p-value is a prediction-interval t-test per line: with the line's ``n`` null values (mean ``m``, standard
deviation ``s``), ``T = (x - m) / (s * sqrt(1 + 1/n))`` and ``p = P(t_{n-1} >= T)``. Why parametric: an
empirical p-value from ``n`` null values cannot go below ``1 / (n + 1)``; with ~10-30 unrelated models per
line that is 0.03-0.1, which can never survive Holm over 5-20 lines. The t-test is exact when a line's null
values and an unrelated target's statistic are independent draws of one normal distribution (the log of a
vote share is close to that); :mod:`tests.lineage.test_significance` checks the level by simulation and
``benchmarks/bench_lineage.py`` measures the false-positive rate on the documented unrelated pairs, each
scored against a null that leaves its own target out.

Entry points: :func:`lineage_test` (answers frame in, tests out) and :func:`line_tests` (any
statistics table in; the pure step the unit tests drive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from distill_kit.lineage.documented import LineageLabels
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


# ------------------------------------------------------------------------------------ the null
def unrelated_lines(labels: LineageLabels, line_names: Sequence[str]) -> dict[str, set[str]]:
    """model -> the candidate lines it is documented to be unrelated to: every line for a human-data control,
    every line but its teacher's for a student or variant (none when its teacher is undocumented), every line
    but its own for a reference."""
    all_lines = set(line_names)
    out: dict[str, set[str]] = {c: set(all_lines) for c in labels.controls}
    teacher_lines = labels.teacher_lines
    for s in [*labels.students, *labels.variants]:
        if s in teacher_lines:
            out[s] = all_lines - {teacher_lines[s]}
    for r in labels.references:
        out[r] = all_lines - {labels.lines.get(r, r)}
    return out


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
) -> LineageTestResult:
    """Test every (target, line) of ``stats`` (``stats[model][line]``, larger = more like the line) against
    the line's statistics on the models ``unrelated`` documents as unrelated to it, leaving the target out.

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
            null = np.array([stats[m][ln] for m in null_models if m != tgt and ln in unrelated[m] and ln in stats[m]],
                            dtype=float)
            x = float(stats[tgt][ln])
            if len(null) >= min_null:
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
        n_pairs = sum(len(unrelated[m] & set(stats[m])) for m in null_models)
        raise TooFewUnrelated(
            f"lineage test: too few documented unrelated pairs ({n_pairs} (model, line) pairs from "
            f"{len(null_models)} models; each line needs {min_null} unrelated models besides the target) -- add "
            "human-data controls or students of documented teachers to the models")
    return LineageTestResult(alpha, method, tests, null_models, sorted(set(lines) - tested_lines))


# --------------------------------------------------------------------------------- from answers
def line_statistics(rankings: Mapping[str, Ranking]) -> dict[str, dict[str, float]]:
    """model -> line -> centred log-ratio of the line's vote score (the test's statistic): log score minus the
    mean log score over the lines with a positive score (a line with no candidate in the model's classifier --
    a held-out reference's own single-member line -- scores 0 and would drag the mean; it gets no statistic)."""
    out: dict[str, dict[str, float]] = {}
    for m, r in rankings.items():
        logs = {ln: float(np.log(s)) for ln, s in zip(r.lines, r.line_scores) if s > 0}
        centre = float(np.mean(list(logs.values()))) if logs else 0.0
        out[m] = {ln: v - centre for ln, v in logs.items()}
    return out


def held_out_reference_rankings(loro: VoteMatrix, method: Method, lines: Mapping[str, str],
                                background: np.ndarray | None = None) -> dict[str, Ranking]:
    """Each reference's ranking from the classifiers it was held out of (``loro``: one group per reference),
    for the references-as-targets half of the null."""
    return {r: rank(loro, r, method, lines, background) for r in loro.probs}


def lineage_test(
    frame: pl.DataFrame, targets: Sequence[str], references: Mapping[str, str], labels: LineageLabels, *,
    method: Method = DEFAULT_METHOD, alpha: float = ALPHA, min_null: int = MIN_NULL, prompts: Sequence[str] | None = None,
    k: int = 2, seed: int = 0, reference_null: bool = True,
) -> LineageTestResult:
    """Test each of ``targets`` against each reference line.

    ``frame``: answers (``model, prompt_id, prompt, text``). ``targets``: any models in it (a user's own ones
    included; they need no label). ``references``: candidate model -> its product line. ``labels``: the
    documented lineage (:func:`distill_kit.lineage.documented.lineage_labels`), which defines the unrelated pairs
    of every labelled model in ``frame`` (:func:`unrelated_lines`); labelled models that are neither targets nor
    references join the vote only to build the null. ``reference_null``: also hold each reference out of the
    classifier in turn and use it against the other lines (``len(references) * k`` classifier fits).

    Raises :class:`TooFewUnrelated` (one line) when the folder documents too few unrelated pairs."""
    from distill_kit.datasets import as_responses

    refs = list(dict.fromkeys(references))
    if len(refs) < 2:
        raise ValueError("the lineage test needs at least two references")
    lines = {r: references[r] or r for r in refs}
    line_names = sorted(set(lines.values()))
    frame = as_responses(frame)
    present = set(frame["model"].unique().to_list())
    unrelated = {m: ls for m, ls in unrelated_lines(labels, line_names).items() if m in present and ls}
    voters = list(dict.fromkeys([*targets, *(m for m in unrelated if m not in set(refs))]))
    overlap = [t for t in targets if t in set(refs)]
    if overlap:
        raise ValueError(f"a reference cannot be a target of its own classifier: {overlap}")
    counts = count_features(frame.filter(pl.col("model").is_in([*refs, *voters])),
                            basic_features([method.features]))
    votes = vote_matrix(counts, refs, voters, features=method.features, prompts=prompts, k=k, seed=seed)
    loro = None
    if reference_null or method.hub:
        loro = vote_matrix(counts, refs, [], features=method.features, prompts=prompts, k=k, seed=seed,
                           held_out={r: [r] for r in refs})
    bg = hub_background(loro, method.vote, lines) if method.hub and loro is not None else None
    rankings = {v: rank(votes, v, method, lines, bg) for v in voters}
    if reference_null and loro is not None:
        for r in refs:
            rb = hub_background(loro, method.vote, lines, exclude=r) if method.hub else None
            rankings[r] = rank(loro, r, method, lines, rb)
    else:
        unrelated = {m: ls for m, ls in unrelated.items() if m not in set(refs)}
    return line_tests(line_statistics(rankings), targets, unrelated, alpha=alpha, min_null=min_null,
                           method=method.name)
