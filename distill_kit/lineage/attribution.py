"""Teacher attribution by similarity signals: which candidate each student answers most like, and how sure.

All functions take a *long* frame with one answer per row in the one response schema (``model``,
``prompt``, ``text``; :func:`distill_kit.datasets.as_responses`). Prompts are split once into a *fit*
part and a *score* part (:func:`distill_kit.lineage.prompts.split_prompts`): vocabularies are learnt
on fit prompts only, and students are compared with candidates on score prompts only.

The headline teacher attribution is now the vote of a candidates-only "who wrote this?" classifier in
:mod:`distill_kit.lineage.votes` (line top-1 0.35-0.60 on the 20 documented targets of
``lineage_extended.csv`` when its method is chosen without the scored target, 0.55-0.65 for its fixed
default, against 0.40 for the ``paired`` signal below); this module keeps the
similarity signals, the distillation score (students vs controls) and the model x model similarity
the lineage tree is drawn from (:mod:`distill_kit.lineage.tree`).

Attribution signals (each a student x candidate similarity; higher = closer):

- ``paired`` (default) -- for each score prompt, cosine of the student's and the candidate's answer
  as TF-IDF vectors (word 1-2-grams with punctuation and case kept), averaged over prompts: does the
  student answer *this* instruction the way the candidate does (wording, structure, length)?
- ``ngram`` -- over-represented phrases: each model's mean TF-IDF profile minus the mean profile of
  all models in the set, compared by cosine (student on score prompts, candidate on fit prompts).
- ``style`` -- stylometry: standardised per-model means of surface features (length, list and heading
  markup, sentence length, punctuation, disclaimers ...; :func:`distill_kit.text.stylometry.surface_features`),
  compared by cosine.
- ``embedding`` -- like ``paired`` but with sentence embeddings (vectors from :mod:`distill_kit.text.embed`).

Every signal is hubness-corrected (:func:`hubness_correct`, CSLS): some middle-of-the-road chat
models are close to every model and would otherwise win most rankings. Signals are combined by
averaging per-student z-scores (equal weights, no tuning). The default signal set was chosen on the
sibling task below, not on students' documented teachers.

Confidence is a softmax over the combined scores whose temperature is fitted on a task with a known
answer built from the candidates alone (:func:`sibling_task`): each candidate with a same-``line``
sibling plays the student against the other candidates, and any member of its line is right. The
documented teachers of the students being scored are never used to fit or choose anything. That
fallback needs no labels but is over-confident on AlpacaEval (siblings are far more alike than a
student is to its teacher: mean top-pick confidence 0.90 at top-1 accuracy 0.44). When documented
teachers exist, :func:`calibrate_on_labels` refits the temperature leave-one-student-out (each
student's confidence comes from a temperature fitted on the *other* students' teachers): mean
confidence 0.50 at accuracy 0.44, top-1 Brier 0.24 instead of 0.49 (``benchmarks/bench_lineage.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from distill_kit.datasets import as_responses
from distill_kit.lineage.prompts import common_prompts, split_prompts
from distill_kit.text.stylometry import SURFACE_FEATURES, surface_features

SIGNALS = ("paired", "ngram", "style", "embedding")
DEFAULT_SIGNALS = ("paired",)
"""Default without embeddings; with embeddings the default is ``("paired", "embedding")``. Both were
picked as the best references-only sibling-task accuracy in ``benchmarks/bench_lineage.py``."""
DEFAULT_SIGNALS_WITH_EMBEDDINGS = ("paired", "embedding")

# ----------------------------------------------------------------------------------------- helpers
def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def _zscore_rows(m: np.ndarray) -> np.ndarray:
    """Row z-scores; NaN cells (a pseudo-student's self-match) are left out of the row statistics."""
    sd = np.nanstd(m, axis=1, keepdims=True)
    return (m - np.nanmean(m, axis=1, keepdims=True)) / np.where(sd == 0, 1.0, sd)


PAIRED_FEATURES = ("word", "char")
"""Text features a paired similarity can compare answers on (:func:`prompt_similarity`)."""


def _vectorizer(max_features: int, features: str = "word"):  # type: ignore[no-untyped-def]
    """``word``: 1-2-grams with punctuation as tokens and case kept (style lives in "Sure!" vs "sure");
    ``char``: character 1-4-grams, case kept (spelling, punctuation spacing and markup habits that word tokens
    split apart: "**Note:**", "e.g.,", "—")."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if features == "char":
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 4), min_df=3, max_features=max_features,
                               sublinear_tf=True, lowercase=False, dtype=np.float32)
    if features != "word":
        raise ValueError(f"unknown paired features {features!r}; choose from {PAIRED_FEATURES}")
    return TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), min_df=3, max_features=max_features, sublinear_tf=True,
        lowercase=False, token_pattern=r"(?u)\b\w+\b|[^\w\s]", dtype=np.float32,
    )


# --------------------------------------------------------------------------------------- features
@dataclass
class LineageFeatures:
    """Everything the signals need, computed once for a set of models and a prompt split.

    ``matrix`` holds the TF-IDF rows of every (model, prompt) answer on fit and score prompts
    (vocabulary learnt on fit prompts only); ``rows`` maps (model, prompt) -> row.
    """

    models: list[str]
    fit_prompts: list[str]
    score_prompts: list[str]
    matrix: object  # scipy.sparse CSR
    rows: dict[tuple[str, str], int]
    ngram_fit: dict[str, np.ndarray]  # model -> mean TF-IDF profile on fit prompts
    ngram_score: dict[str, np.ndarray]  # model -> mean TF-IDF profile on score prompts
    style_fit: dict[str, np.ndarray]  # all zeros when built with ``with_style=False``
    style_score: dict[str, np.ndarray]
    embed_pairs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def row_ids(self, model: str, prompts: Sequence[str]) -> list[int]:
        """Matrix rows of ``model``'s answers to ``prompts`` (those it answered)."""
        return [self.rows[(model, p)] for p in prompts if (model, p) in self.rows]


def answer_vectors(frame: pl.DataFrame, vectors: Sequence[np.ndarray] | np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """(model, prompt) -> vector for each row of ``frame`` and its row of ``vectors`` (the ``embeddings``
    argument of :func:`build_features`)."""
    if len(frame) != len(vectors):
        raise ValueError(f"frame has {len(frame)} rows but {len(vectors)} vectors were given")
    return dict(zip(zip(frame["model"].to_list(), frame["prompt"].to_list()), vectors))


def build_features(
    frame: pl.DataFrame,
    models: Sequence[str],
    fit_prompts: Sequence[str],
    score_prompts: Sequence[str],
    *,
    max_features: int = 100_000,
    with_style: bool = True,
    embeddings: Mapping[tuple[str, str], np.ndarray] | None = None,
) -> LineageFeatures:
    """TF-IDF and stylometric profiles per model on fit and score prompts.

    The vectorizer vocabulary is learnt on fit-prompt answers only. ``embeddings`` (optional) maps
    (model, prompt) -> vector for the embedding signal; prompts without a vector are skipped.
    """
    models = list(dict.fromkeys(models))
    if len(models) < 2:
        raise ValueError("lineage needs at least two models")
    fit_set, score_set = set(fit_prompts), set(score_prompts)
    sub = frame.filter(pl.col("model").is_in(models) & pl.col("prompt").is_in(list(fit_set | score_set)))
    keys = list(zip(sub["model"].to_list(), sub["prompt"].to_list()))
    texts = sub["text"].to_list()
    rows = {k: i for i, k in enumerate(keys)}
    is_fit = np.array([p in fit_set for _, p in keys])
    for m in models:
        own = [i for i, (mm, _) in enumerate(keys) if mm == m]
        if not is_fit[own].any() or is_fit[own].all():
            raise ValueError(f"model {m!r} has no answers on the fit or score prompts")
    vec = _vectorizer(max_features)
    vec.fit([t for t, f in zip(texts, is_fit) if f])
    matrix = vec.transform(texts).tocsr()
    style = surface_features(texts) if with_style else np.zeros((len(texts), len(SURFACE_FEATURES)))
    labels = np.array([m for m, _ in keys])

    def prof(data, m: str, fit: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
        mask = (labels == m) & (is_fit if fit else ~is_fit)
        return np.asarray(data[np.flatnonzero(mask)].mean(axis=0)).ravel()

    feats = LineageFeatures(
        models=models,
        fit_prompts=list(fit_prompts),
        score_prompts=list(score_prompts),
        matrix=matrix,
        rows=rows,
        ngram_fit={m: prof(matrix, m, True) for m in models},
        ngram_score={m: prof(matrix, m, False) for m in models},
        style_fit={m: prof(style, m, True) for m in models},
        style_score={m: prof(style, m, False) for m in models},
    )
    if embeddings:
        feats.embed_pairs = {
            (m, p): np.asarray(embeddings[(m, p)], dtype=np.float32)
            for m in models for p in score_prompts if (m, p) in embeddings
        }
    return feats


def _deviation_similarity(
    fit: Mapping[str, np.ndarray], score: Mapping[str, np.ndarray], students: Sequence[str],
    candidates: Sequence[str], pool: Sequence[str],
) -> np.ndarray:
    """Cosine of (student profile on score prompts - pool mean) vs (candidate on fit - pool mean)."""
    mean_fit = np.mean([fit[m] for m in pool], axis=0)
    mean_score = np.mean([score[m] for m in pool], axis=0)
    s = np.stack([score[m] - mean_score for m in students])
    c = np.stack([fit[m] - mean_fit for m in candidates])
    return _cosine_rows(s, c)


def _style_similarity(feats: LineageFeatures, students: Sequence[str], candidates: Sequence[str],
                      pool: Sequence[str]) -> np.ndarray:
    """Cosine of style vectors standardised over the pool (so every feature weighs the same)."""
    allv = np.stack([feats.style_fit[m] for m in pool] + [feats.style_score[m] for m in pool])
    mu, sd = allv.mean(axis=0), allv.std(axis=0)
    sd = np.where(sd == 0, 1.0, sd)
    s = np.stack([(feats.style_score[m] - mu) / sd for m in students])
    c = np.stack([(feats.style_fit[m] - mu) / sd for m in candidates])
    return _cosine_rows(s, c)


def _per_prompt_cosines(matrix, rows: Mapping[tuple[str, str], int], prompts: Sequence[str],  # type: ignore[no-untyped-def]
                        models: Sequence[str]) -> np.ndarray:
    """``out[p, i, j]``: dot product of the rows of ``models[i]`` and ``models[j]`` answering ``prompts[p]``
    (cosines for L2-normalised rows); NaN where either did not answer. One small sparse product per prompt,
    so all model pairs cost what one pass over the answers costs."""
    out = np.full((len(prompts), len(models), len(models)), np.nan, dtype=np.float32)
    for k, p in enumerate(prompts):
        idx = [(i, rows[(m, p)]) for i, m in enumerate(models) if (m, p) in rows]
        if not idx:
            continue
        mi = np.array([i for i, _ in idx])
        block = matrix[[r for _, r in idx]]
        out[k][np.ix_(mi, mi)] = (block @ block.T).toarray()
    return out


def _paired_similarity(feats: LineageFeatures, queries: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """Mean cosine of two models' TF-IDF rows for the same score prompt (rows are L2-normalised), over the
    score prompts both answered (0 where there are none)."""
    models = list(dict.fromkeys([*queries, *candidates]))
    cos = _per_prompt_cosines(feats.matrix, feats.rows, feats.score_prompts, models)
    qi, ci = [models.index(q) for q in queries], [models.index(c) for c in candidates]
    block = cos[:, qi][:, :, ci]
    seen = (~np.isnan(block)).sum(axis=0)
    return np.where(seen > 0, np.nansum(block, axis=0) / np.maximum(seen, 1), 0.0).astype(np.float64)


def _paired_embedding(feats: LineageFeatures, queries: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """Mean cosine of two models' embeddings for the same score prompt."""
    E = feats.embed_pairs
    out = np.zeros((len(queries), len(candidates)))
    for i, q in enumerate(queries):
        for j, c in enumerate(candidates):
            sims = [float(E[(q, p)] @ E[(c, p)]) for p in feats.score_prompts if (q, p) in E and (c, p) in E]
            out[i, j] = float(np.mean(sims)) if sims else 0.0
    return out


@dataclass(frozen=True)
class PromptSimilarity:
    """Cosine of two models' answers to the same prompt, kept per prompt: ``sim[p, i, j]`` compares
    ``models[i]`` and ``models[j]`` on ``prompts[p]`` (NaN where either did not answer). Kept per prompt rather
    than averaged so a statistic can weigh prompts (standardise each against the references' similarities on
    that prompt) before averaging; ``features`` names the text features compared (``word``, ``char``)."""

    prompts: list[str]
    models: list[str]
    sim: np.ndarray
    features: str = "word"

    def block(self, queries: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """``(prompts, queries, candidates)`` slice of :attr:`sim`."""
        pos = {m: i for i, m in enumerate(self.models)}
        missing = [m for m in [*queries, *candidates] if m not in pos]
        if missing:
            raise ValueError(f"no paired similarity for models {sorted(set(missing))}")
        return self.sim[:, [pos[q] for q in queries]][:, :, [pos[c] for c in candidates]]


def prompt_similarity(frame: pl.DataFrame, models: Sequence[str], prompts: Sequence[str], *,
                      features: str = "word", max_features: int = 100_000) -> PromptSimilarity:
    """Per-prompt paired cosine of every two of ``models`` on ``prompts``, as TF-IDF vectors of ``features``
    (:data:`PAIRED_FEATURES`). The vocabulary and IDF are learnt from these same answers: that reads no label,
    so every shared prompt can be compared (:func:`build_features` keeps a fit half apart because its
    ``ngram`` signal learns profiles)."""
    models = list(dict.fromkeys(models))
    prompts = list(dict.fromkeys(prompts))
    sub = as_responses(frame).filter(pl.col("model").is_in(models) & pl.col("prompt").is_in(prompts))
    if sub.is_empty():
        raise ValueError("no answers of these models to these prompts")
    keys = list(zip(sub["model"].to_list(), sub["prompt"].to_list()))
    matrix = _vectorizer(max_features, features).fit_transform(sub["text"].to_list()).tocsr()
    rows = {k: i for i, k in enumerate(keys)}
    return PromptSimilarity(prompts, models, _per_prompt_cosines(matrix, rows, prompts, models), features)


def signal_matrix(feats: LineageFeatures, name: str, queries: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """Query x candidate similarity of one signal (``SIGNALS``), before hubness correction."""
    pool = feats.models
    if name == "paired":
        return _paired_similarity(feats, queries, candidates)
    if name == "ngram":
        return _deviation_similarity(feats.ngram_fit, feats.ngram_score, queries, candidates, pool)
    if name == "style":
        if not any(np.any(v) for v in feats.style_fit.values()):
            raise ValueError("the style signal needs features built with with_style=True")
        return _style_similarity(feats, queries, candidates, pool)
    if name == "embedding":
        if not feats.embed_pairs:
            raise ValueError("the embedding signal needs embeddings passed to build_features/attribute")
        return _paired_embedding(feats, queries, candidates)
    raise ValueError(f"unknown signal {name!r}; choose from {SIGNALS}")


def hubness_correct(sim_qc: np.ndarray, sim_cc: np.ndarray, k: int = 3) -> np.ndarray:
    """CSLS hubness correction: ``2 sim(q, c) - r_c`` with ``r_c`` the mean similarity of candidate c
    to its k nearest *other candidates*. Some models (middle-of-the-road chat models) are close to
    everyone; without this they win every ranking. Uses candidates only, no labels."""
    cc = np.array(sim_cc, dtype=np.float64)
    np.fill_diagonal(cc, -np.inf)
    k = max(1, min(k, cc.shape[0] - 1))
    r = np.sort(cc, axis=1)[:, -k:].mean(axis=1)
    return 2.0 * sim_qc - r[None, :]


# ------------------------------------------------------------------------------------- attribution
@dataclass
class Attribution:
    """Per-signal and combined student x candidate scores, plus calibrated probabilities."""

    students: list[str]
    candidates: list[str]
    signals: dict[str, np.ndarray]  # name -> (students, candidates) hubness-corrected similarity
    combined: np.ndarray  # mean of per-row z-scores of the signals
    probabilities: np.ndarray  # softmax(combined / temperature)
    temperature: float
    calibration: dict[str, float] = field(default_factory=dict)
    temperatures: np.ndarray | None = None  # per-student temperature when calibrated per row

    @property
    def distillation_score(self) -> np.ndarray:
        """Per student: its closeness to the nearest candidate (max over candidates of the first
        signal). High = answers like some reference model; used to tell students from controls."""
        first = next(iter(self.signals.values()))
        return first.max(axis=1)

    def table(self, top_k: int = 3) -> pl.DataFrame:
        """One row per student: its top-k candidates with confidences and the distillation score."""
        rows = []
        dist = self.distillation_score
        for i, s in enumerate(self.students):
            order = np.argsort(-self.combined[i])[:top_k]
            row: dict[str, object] = {"student": s, "distillation_score": float(dist[i])}
            for r, j in enumerate(order, start=1):
                row[f"top{r}"] = self.candidates[j]
                row[f"p{r}"] = round(float(self.probabilities[i, j]), 4)
            rows.append(row)
        return pl.DataFrame(rows)

    def long(self) -> pl.DataFrame:
        """Tidy frame: student, candidate, rank, combined score, probability and each signal."""
        rows = []
        for i, s in enumerate(self.students):
            ranks = np.empty(len(self.candidates), dtype=int)
            ranks[np.argsort(-self.combined[i])] = np.arange(1, len(self.candidates) + 1)
            for j, c in enumerate(self.candidates):
                row = {"student": s, "candidate": c, "rank": int(ranks[j]),
                       "score": float(self.combined[i, j]), "probability": float(self.probabilities[i, j])}
                row.update({k: float(v[i, j]) for k, v in self.signals.items()})
                rows.append(row)
        return pl.DataFrame(rows)


def combine(signals: Mapping[str, np.ndarray]) -> np.ndarray:
    """Equal-weight mean of per-student z-scores over candidates."""
    if not signals:
        raise ValueError("no signals to combine")
    return np.mean([_zscore_rows(m) for m in signals.values()], axis=0)


def softmax(scores: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature`` (a scalar, or one temperature per row as a column)."""
    z = scores / np.maximum(temperature, 1e-6)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, correct: Sequence[Sequence[int]]) -> float:
    """Temperature maximising the log-likelihood that the right candidate set wins.

    ``correct[i]`` lists the candidate indices that count as right for row ``i`` (e.g. all members
    of the true line); their probabilities are summed.
    """
    rows = [i for i, c in enumerate(correct) if len(c)]
    if not rows:
        raise ValueError("no rows with a known answer to calibrate on")
    grid = np.exp(np.linspace(np.log(0.02), np.log(20.0), 200))

    def nll(t: float) -> float:
        p = softmax(scores[rows], t)
        return -float(np.sum([np.log(p[k, list(correct[i])].sum() + 1e-12) for k, i in enumerate(rows)]))

    return float(min(grid, key=nll))


def held_out_temperatures(scores: np.ndarray, correct: Sequence[Sequence[int]]) -> np.ndarray:
    """Leave-one-out temperatures: for each row ``i`` with a known answer, :func:`fit_temperature` on
    the *other* rows with a known answer, so row ``i``'s own answer never sets its own confidence.
    Rows without a known answer get the temperature fitted on all known rows. Needs >= 2 known rows.
    """
    known = [i for i, c in enumerate(correct) if len(c)]
    if len(known) < 2:
        raise ValueError(f"leave-one-out calibration needs at least 2 rows with a known answer, got {len(known)}")
    everyone = fit_temperature(scores, correct)
    out = np.full(len(correct), everyone, dtype=np.float64)
    for i in known:
        out[i] = fit_temperature(scores, [c if k != i else [] for k, c in enumerate(correct)])
    return out


def calibrate_on_labels(result: Attribution, truth: Mapping[str, str], fallback_below: int = 0) -> Attribution:
    """Re-calibrate ``result``'s confidence on documented teachers, without scoring any student on
    its own label.

    Each student whose documented teacher (``truth``) is among the candidates gets probabilities
    ``softmax(combined / T_i)`` with ``T_i`` fitted (maximum likelihood of the exact teacher) on the
    *other* labelled students (:func:`held_out_temperatures`); unlabelled students (e.g. controls)
    get the temperature fitted on all labelled ones, which is also the returned ``temperature`` for
    new students. Rankings are unchanged. On AlpacaEval the references-only sibling task gives
    over-confident probabilities (siblings are far more alike than a student is to its teacher);
    this is the calibration to use when labels exist. Needs >= 2 labelled students; with fewer than
    ``fallback_below`` labelled students ``result`` is returned as it is (sibling-task calibration).
    """
    cidx = {c: j for j, c in enumerate(result.candidates)}
    correct = [[cidx[truth[s]]] if truth.get(s) in cidx else [] for s in result.students]
    labelled = [i for i, c in enumerate(correct) if c]
    if len(labelled) < fallback_below:
        return result
    temps = held_out_temperatures(result.combined, correct)
    probs = softmax(result.combined, temps[:, None])
    everyone = float(fit_temperature(result.combined, correct))
    calibration = {  # added to the sibling-task diagnostics, which stay for comparison
        **result.calibration,
        "labelled_n": float(len(labelled)),
        "held_out_temperature_min": float(temps[labelled].min()),
        "held_out_temperature_max": float(temps[labelled].max()),
    }
    return Attribution(
        students=list(result.students), candidates=list(result.candidates), signals=dict(result.signals),
        combined=result.combined, probabilities=probs, temperature=everyone, calibration=calibration,
        temperatures=temps,
    )


def sibling_task(
    cc_signals: Mapping[str, np.ndarray], candidates: Sequence[str], lines: Mapping[str, str]
) -> tuple[np.ndarray, list[list[int]], list[str]]:
    """Known-answer task from the candidates alone: every candidate with a same-line sibling plays
    the student, the *other* candidates are ranked, and any member of its line is right.

    ``cc_signals`` are hubness-corrected candidate x candidate matrices. Returns (combined scores,
    with the pseudo-student itself at -inf; right indices per row; pseudo-student names).
    """
    cands = list(candidates)
    pseudo = [c for c in cands if lines.get(c) and sum(lines.get(o) == lines[c] for o in cands) > 1]
    rows = [cands.index(c) for c in pseudo]
    masked = {}
    for k, m in cc_signals.items():
        sub = np.array(m[rows], dtype=np.float64)
        sub[np.arange(len(rows)), rows] = np.nan
        masked[k] = sub
    scores = combine(masked) if masked and rows else np.zeros((0, len(cands)))  # NaN only at self
    scores = np.where(np.isnan(scores), -np.inf, scores)
    correct = [[j for j, c in enumerate(cands) if c != s and lines.get(c) == lines[s]] for s in pseudo]
    return scores, correct, pseudo


def attribute(
    frame: pl.DataFrame,
    students: Sequence[str],
    candidates: Sequence[str],
    *,
    lines: Mapping[str, str] | None = None,
    fit_fraction: float = 0.5,
    seed: int = 0,
    signals: Sequence[str] | None = None,
    hubness_k: int | None = 3,
    prompts: Sequence[str] | None = None,
    embeddings: Mapping[tuple[str, str], np.ndarray] | None = None,
    max_features: int = 100_000,
    temperature: float | None = None,
    features: LineageFeatures | None = None,
) -> Attribution:
    """Rank ``candidates`` as the teacher of each student, with calibrated probabilities.

    ``frame`` is a long responses frame (see :func:`distill_kit.datasets.as_responses`). ``lines`` (candidate -> product
    line) enables temperature calibration on :func:`sibling_task`; without it (and without an
    explicit ``temperature``) the temperature is 1. ``hubness_k=None`` turns the correction off.
    Pass ``features`` (from :func:`build_features`) to reuse vectors across calls. ``signals=None``
    means ``DEFAULT_SIGNALS_WITH_EMBEDDINGS`` when embeddings are available, else ``DEFAULT_SIGNALS``.
    """
    students, candidates = list(dict.fromkeys(students)), list(dict.fromkeys(candidates))
    if not students or len(candidates) < 2:
        raise ValueError("attribution needs at least one student and two candidates")
    overlap = set(students) & set(candidates)
    if overlap:
        raise ValueError(f"models cannot be both student and candidate: {sorted(overlap)}")
    if signals is not None:
        unknown = set(signals) - set(SIGNALS)
        if unknown or not signals:
            raise ValueError(f"unknown signals {sorted(unknown)}; choose from {SIGNALS}")
    models = [*candidates, *students]
    if features is None:
        frame = as_responses(frame)
        known = set(frame["model"].unique().to_list())
        absent = [m for m in models if m not in known]
        if absent:
            raise ValueError(f"no responses for models {absent}")
        pool = common_prompts(frame, models) if prompts is None else sorted(set(prompts))
        fit, score = split_prompts(pool, fit_fraction, seed)
        features = build_features(
            frame, models, fit, score, max_features=max_features,
            with_style="style" in (signals or ()), embeddings=embeddings,
        )
    elif not set(models) <= set(features.models):
        raise ValueError("features were built for other models than the ones asked for")
    if signals is None:
        signals = DEFAULT_SIGNALS_WITH_EMBEDDINGS if features.embed_pairs else DEFAULT_SIGNALS
    sig: dict[str, np.ndarray] = {}
    cc_sig: dict[str, np.ndarray] = {}
    for name in signals:
        qc = signal_matrix(features, name, students, candidates)
        cc = signal_matrix(features, name, candidates, candidates)
        if hubness_k:
            qc, cc = hubness_correct(qc, cc, hubness_k), hubness_correct(cc, cc, hubness_k)
        sig[name], cc_sig[name] = qc, cc
    combined = combine(sig)
    calibration: dict[str, float] = {}
    if temperature is None:
        temperature = 1.0
        if lines:
            cal, correct, pseudo = sibling_task(cc_sig, candidates, lines)
            if any(correct):
                temperature = fit_temperature(cal, correct)
                p = softmax(cal, temperature)
                hit = [bool(c) and int(np.argmax(cal[i])) in c for i, c in enumerate(correct)]
                calibration = {
                    "sibling_n": float(len(pseudo)),
                    "sibling_top1_line": float(np.mean(hit)),
                    "sibling_mean_confidence": float(p.max(axis=1).mean()),
                }
    return Attribution(
        students=students, candidates=candidates, signals=sig, combined=combined,
        probabilities=softmax(combined, temperature), temperature=float(temperature),
        calibration=calibration,
    )


# ----------------------------------------------------------------------------------- evaluation
def attribution_metrics(
    result: Attribution, truth: Mapping[str, str], lines: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Top-1/top-3 accuracy of the combined ranking against ``truth`` (student -> teacher), exact and
    by line (the teacher's line counts for any candidate of that line); also mean confidence of the
    top pick (``p_top1``) so calibration can be eyeballed against accuracy, the mean probability given
    to the documented teacher (``p_teacher``) and the Brier score of the top-pick confidence against
    whether the pick is right (``brier_top1``; 0 is perfect, always saying 0.5 scores 0.25)."""
    lines = lines or {}
    hits = {"top1": [], "top3": [], "top1_line": [], "top3_line": [], "p_top1": [], "p_teacher": [], "brier_top1": []}
    for i, s in enumerate(result.students):
        if s not in truth:
            continue
        order = [result.candidates[j] for j in np.argsort(-result.combined[i])]
        t = truth[s]
        tline = lines.get(t, t)
        hits["top1"].append(order[0] == t)
        hits["top3"].append(t in order[:3])
        line_order = [lines.get(c, c) for c in order]
        hits["top1_line"].append(line_order[0] == tline)
        hits["top3_line"].append(tline in line_order[:3])
        hits["p_top1"].append(float(result.probabilities[i].max()))
        p_t = float(result.probabilities[i, result.candidates.index(t)]) if t in result.candidates else 0.0
        hits["p_teacher"].append(p_t)
        hits["brier_top1"].append((hits["p_top1"][-1] - float(order[0] == t)) ** 2)
    n = len(hits["top1"])
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in hits.items()}
    out["n"] = float(n)
    return out


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if not len(pos) or not len(neg):
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))
