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
  but their own;

in each case not against the lines of the model's own documented family (the lineage file's ``family``: a
variant of gpt-4 is no unrelated model for the gpt-3.5 line).

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

Entry points: :func:`lineage_test` (answers frame in, tests out), :func:`lineage_test_from_votes` (vote
matrices in, for callers that cache them), :func:`line_tests` (any statistics table in; the pure step the unit
tests drive) and :func:`error_rates` (false-positive rate, power, selective accuracy, coverage against the
documented lineage).
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
        raise too_few(sum(len(unrelated[m] & set(stats[m])) for m in null_models), len(null_models), min_null)
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
    counts = count_features(frame.filter(pl.col("model").is_in([*refs, *voters])),
                            basic_features([method.features]))
    votes = vote_matrix(counts, refs, voters, features=method.features, prompts=prompts, k=k, seed=seed)
    loro = vote_matrix(counts, refs, [], features=method.features, prompts=prompts, k=k, seed=seed,
                       held_out=leave_one_reference_out(refs)) if reference_null or method.hub else None
    return lineage_test_from_votes(votes, loro if reference_null else None, targets, lines, labels, method=method,
                           alpha=alpha, min_null=min_null, background=loro)


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
    bg_votes = background if background is not None else loro
    if method.hub and bg_votes is None:
        raise ValueError(f"method {method.name} needs held-out reference votes for its hub background")
    lines = {c: lines.get(c) or c for c in votes.candidates}
    unrelated = {m: ls for m, ls in unrelated_lines(labels, sorted(set(lines.values()))).items() if ls}
    bg = hub_background(bg_votes, method.vote, lines) if method.hub and bg_votes is not None else None
    rankings = {v: rank(votes, v, method, lines, bg) for v in votes.probs}
    if loro is not None:
        for r in loro.probs:
            rb = hub_background(loro, method.vote, lines, exclude=r) if method.hub else None
            rankings[r] = rank(loro, r, method, lines, rb)
    unrelated = {m: ls for m, ls in unrelated.items() if m in rankings}
    return line_tests(line_statistics(rankings), targets, unrelated, alpha=alpha, min_null=min_null,
                      method=method.name)


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
