"""Held-out offline-judge probabilities on the published identity answers, computed once and cached on disk.

Why: an honest prevalence correction needs the judge's scores on answers of models it never saw, both for
the target (fitted without it) and, for choosing and calibrating the correction, for every *other* model
scored by a judge that saw neither it nor the target (nested leave-one-model-out). One fit takes about 40 s
on two busy cores and the nesting needs one per pair of models, so every fit's predictions are cached under
``cache_dir()/identity_heldout/`` keyed by the judge version, the data's models and the excluded models.
Run ``python -m distill_kit.ice.calibration`` (or ``--lomo`` for the nine leave-one-model-out fits only) to fill the
cache ahead of ``benchmarks/bench_identity.py`` or notebook 03's corrected scores.

``pool()`` is what a corrected score calibrates on: every published answer with the label and the probability
of a judge that never saw its model, plus the strata observable at scoring time.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from distill_kit import cache, datasets
from distill_kit.ice.judges import OFFLINE_JUDGES, OfflineIdentityJudge, resolve_judge, rule_verdict_of
from distill_kit.paths import cache_dir

JUDGE_TAG = "offline-v8"  # bump with judges.identity's cache tag when the judge changes


def _dir() -> Path:
    path = cache_dir() / "identity_heldout"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fingerprint(frame: pl.DataFrame) -> str:
    models = frame["model"].unique(maintain_order=True).to_list()
    sizes = frame.group_by("model", maintain_order=True).len()["len"].to_list()
    pos = frame.group_by("model", maintain_order=True).agg(pl.col("loose_label").sum(), pl.col("strict_label").sum())
    raw = f"{JUDGE_TAG}|{models}|{sizes}|{pos.rows()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


@lru_cache(maxsize=1)
def load() -> tuple[pl.DataFrame, list[str], list[dict[str, float]]]:
    """The labelled frame and its featurised rows (cached: featurising 9,000 answers takes ~25 s)."""
    frame = datasets.identity_responses()
    path = _dir() / f"features_{_fingerprint(frame)}.pkl"
    stored = cache.load(path)
    if stored is not None:
        texts, feats = stored
    else:
        judge = OfflineIdentityJudge(datasets.identity_facts())
        texts, feats = judge.featurize(frame["response"].to_list(), frame["family"].to_list())
        cache.save(path, (texts, feats))
    return frame, texts, feats


def predictions(excluded: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loose and strict positive probabilities, on the rows of each model in ``excluded``, of a judge fitted
    on every other model's labels -> {model: (loose_prob, strict_prob)}."""
    frame, texts, feats = load()
    excluded = tuple(sorted(set(excluded)))
    path = _dir() / f"pred_{_fingerprint(frame)}_{hashlib.sha256('|'.join(excluded).encode()).hexdigest()[:12]}.pkl"
    stored = cache.load(path)
    if stored is not None:
        return stored
    model_col = np.array(frame["model"].to_list())
    loose = np.array(frame["loose_label"].to_list(), dtype=bool)
    strict = frame["strict_label"].to_list()  # None: unknown (never re-judged upstream), not "no"
    tr = np.where(~np.isin(model_col, excluded))[0]
    judge = OfflineIdentityJudge(datasets.identity_facts()).fit_features(
        [texts[i] for i in tr], [feats[i] for i in tr], loose[tr], [strict[i] for i in tr])
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for m in excluded:
        te = np.where(model_col == m)[0]
        lp, sp, _ = judge.predict_features([texts[i] for i in te], [feats[i] for i in te])
        out[m] = (np.asarray(lp), np.asarray(sp))
    cache.save(path, out)
    return out


def fit_held_out(exclusions: list[tuple[str, ...]], workers: int | None = None) -> None:
    """Fill the cache of :func:`predictions` for every exclusion, the fits side by side in ``workers`` processes
    (default: one per core, at most one per fit).

    Why processes: each fit (gradient boosting + TF-IDF logistic regressions) is single-threaded and independent
    of the others, seeded, so fitting them in parallel gives the same predictions sooner (about twice as fast on
    two cores). The features are computed once here first, so the workers read them from the cache.
    """
    import os

    todo = [e for e in exclusions if not cached(e)]
    if not todo:
        return
    n = min(len(todo), workers or os.cpu_count() or 1)
    if n <= 1:
        for e in todo:
            predictions(e)
        return
    from joblib import Parallel, delayed, parallel_config
    from threadpoolctl import threadpool_info

    load()  # featurise once, in this process; the workers find the features in the cache
    # the workers' BLAS uses as many threads as this process's: the same sums in the same order, so the same
    # predictions to the last bit as fitting one after the other (joblib would otherwise cap them at one)
    threads = max((pool.get("num_threads", 1) for pool in threadpool_info()), default=1)
    with parallel_config(backend="loky", inner_max_num_threads=threads):
        Parallel(n_jobs=n)(delayed(_fit_one)(e) for e in todo)


def _fit_one(excluded: tuple[str, ...]) -> None:
    predictions(excluded)  # writes the cache; the result is read back from it by the caller


def cached(excluded: tuple[str, ...]) -> bool:
    frame, _, _ = load()
    excluded = tuple(sorted(set(excluded)))
    return (_dir() / f"pred_{_fingerprint(frame)}_{hashlib.sha256('|'.join(excluded).encode()).hexdigest()[:12]}.pkl").exists()


def _claimed(feat: dict[str, float]) -> str:
    return next((k.split("_", 3)[3] for k, v in feat.items() if k.startswith("first_claim_own_") and v), "none")


def strata_frame(frame: pl.DataFrame, feats: list[dict[str, float]]) -> pl.DataFrame:
    """The strata observable at scoring time (language, category, template, claimed maker) and a key per answer."""
    from distill_kit.ice import probes

    return (probes.annotate_queries(frame)
            .with_columns(pl.Series("claimed", [_claimed(f) for f in feats]), pl.col("row").cast(pl.String).alias("key"))
            .select("model", "key", "language", "category", "template_id", "claimed", "loose_label", "strict_label"))


def check_calibrated(judge: str) -> None:
    """Only the offline judges have a calibration pool (held-out scores of every published answer); an LLM
    judge's scores would cost a judging run over all of them."""
    if judge not in OFFLINE_JUDGES:
        raise ValueError(f"a calibration pool exists for the offline and rules judges, not {judge!r}")


def pool(judge: str = "offline", exclude: tuple[str, ...] = ()) -> pl.DataFrame:
    """Calibration pool: every published answer (of models not in ``exclude``) with its labels, strata and
    ``loose_prob``/``strict_prob`` from a judge that never saw its model -- the offline judge fitted without
    that model (cached; one fit per model the first time), or the rule judge (no fitting, 0/1 scores)."""
    frame, texts, feats = load()
    base = strata_frame(frame, feats)
    models = [m for m in frame["model"].unique(maintain_order=True).to_list() if m not in set(exclude)]
    check_calibrated(judge)
    if judge == "rules":  # the rule layer's verdicts, read off the featurised rows (the same answers, facts, cut)
        v = [rule_verdict_of(f) for f in feats]
        out = base.with_columns(pl.Series("loose_prob", [float(loose) for loose, _ in v]),
                                pl.Series("strict_prob", [float(strict) for _, strict in v]))
        return out.filter(pl.col("model").is_in(models))
    todo = [m for m in models if not cached((m,))]
    if todo:
        print(f"calibration pool: fitting the offline judge without each of {len(todo)} published model(s) "
              "(once; cached for every later run)", flush=True)
        fit_held_out([(m,) for m in todo])
    parts = []
    for m in models:
        lp, sp = predictions((m,))[m]
        parts.append(base.filter(pl.col("model") == m).with_columns(pl.Series("loose_prob", lp), pl.Series("strict_prob", sp)))
    return pl.concat(parts)


def main(argv: list[str] | None = None) -> int:
    frame, _, _ = load()
    models = frame["model"].unique(maintain_order=True).to_list()
    jobs = [(m,) for m in models]
    if "--lomo" not in (argv if argv is not None else sys.argv[1:]):
        jobs += [tuple(sorted(p)) for p in itertools.combinations(models, 2)]
    t0 = time.perf_counter()
    todo = [ex for ex in jobs if not cached(ex)]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} held-out fits cached; fitting {len(todo)}", flush=True)
    fit_held_out(todo)
    print(f"done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


def sample_labels(target: pl.DataFrame, k: int, seed: int = 0, pool: pl.DataFrame | None = None) -> pl.DataFrame:
    """``k`` of the target's answers with their published labels, drawn with ``seed`` -- the labelled sample a
    user would click in notebook 03's answer browser, here taken from the paper's GPT-4o-mini labels. With
    ``pool`` (the calibration pool) the draw is the package's stratified one (``scores.label_plan``: more
    labels where the judge is unsure, no label of the target used to choose them); without, a simple random
    sample."""
    from distill_kit.ice import scores

    cols = ["model", "key", "loose_label", "strict_label"]
    if k <= 0:
        return target.head(0).select(cols)
    if pool is not None:
        keys = scores.label_plan(target, pool, k, seed)
        return target.filter(pl.col("key").cast(pl.String).is_in(keys)).select(cols)
    order = np.random.default_rng(seed).permutation(target.height)[:k]
    return target[order].select(cols)


def labels_for_rows(frame: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Labels clicked in notebook 03's answer browser (``distill_kit.ice.labels``: keyed by
    ``labels.answer_key(model, prompt, answer)``) as the labelled sample ``corrected_table`` takes (keyed
    by the replay frame's ``row``). Labels already keyed by row (a csv a user wrote) pass through; labels
    of answers not in ``frame``, or without a loose verdict, are dropped -- a label counts only for the
    answer it was given to."""
    from distill_kit.ice.labels import answer_key

    cols = ["model", "key", "loose_label", "strict_label"]
    if labels.is_empty():
        return labels.select(cols) if set(cols) <= set(labels.columns) else pl.DataFrame(
            schema={"model": pl.String, "key": pl.String, "loose_label": pl.Boolean, "strict_label": pl.Boolean})
    keys = [answer_key(m, p, a) for m, p, a in zip(frame["model"], frame["prompt"], frame["response"])]
    index = pl.DataFrame({"model": frame["model"], "answer_key": keys, "row_key": frame["row"].cast(pl.String)})
    lab = labels.select(pl.col("model").cast(pl.String), pl.col("key").cast(pl.String),
                        pl.col("loose_label").cast(pl.Boolean), pl.col("strict_label").cast(pl.Boolean))
    by_answer = (lab.join(index, left_on=["model", "key"], right_on=["model", "answer_key"], how="inner")
                 .select("model", pl.col("row_key").alias("key"), "loose_label", "strict_label"))
    by_row = lab.join(index.select("model", "row_key"), left_on=["model", "key"], right_on=["model", "row_key"],
                      how="semi")
    out = pl.concat([by_answer, by_row]).unique(["model", "key"], keep="first", maintain_order=True)
    # a strict claim is a kind of loose contradiction: an answer labelled only "consistent" is not strict
    return (out.filter(pl.col("loose_label").is_not_null())
            .with_columns(pl.col("strict_label").fill_null(False) & pl.col("loose_label")))


def labels_from_file(frame: pl.DataFrame, path: str | Path) -> pl.DataFrame | None:
    """The labelled sample ``corrected_table`` takes, read from ``path`` (see :func:`distill_kit.ice.labels.load_labels`)
    and keyed by ``frame``'s rows; None when no answer of ``frame`` is labelled there."""
    from distill_kit.ice.labels import load_labels

    user = load_labels(path)
    return labels_for_rows(frame, user) if user.height else None


def pool_choices(judge: str = "offline") -> dict[str, dict[str, Any]]:
    """The label-free choices of the corrected scores, made on the calibration pool alone, cached on disk:
    ``{"loose"|"strict": {"held_out": {model: selection}, "new": selection}}`` -- for each published model the
    choice made on the others (``scores.select_quantifiers_held_out``), and for a model outside the pool the
    choice made on all of it (``scores.select_quantifier``).

    Why cached: the nested choice quantifies every candidate on every pool model held out in turn (about 40 s
    per score on two cores), yet depends only on the pool's judge scores and labels and on the candidate and
    rule lists -- the same for every run -- so `distill-kit prepare` computes it once at set-up."""
    from distill_kit.ice import scores

    full = pool(judge)
    cols = full.select("model", "key", "loose_prob", "strict_prob", "loose_label", "strict_label")
    digest = hashlib.sha256(cols.write_ipc(None).getvalue())
    digest.update(repr((scores.QUANTIFIERS, scores.SELECTION_RULES, scores.CHOICE_VERSION)).encode())
    path = _dir() / f"choices_{judge}_{digest.hexdigest()[:16]}.pkl"
    stored = cache.load(path)
    if isinstance(stored, dict):
        return stored
    how = {"candidates": scores.QUANTIFIERS, "rules": scores.SELECTION_RULES}
    out = {score: {"held_out": scores.select_quantifiers_held_out(full, score, **how),
                   "new": scores.select_quantifier(full, score, **how)} for score in ("loose", "strict")}
    cache.save(path, out)
    return out


def corrected_table(frame: pl.DataFrame, judge: str = "offline", labels: pl.DataFrame | None = None,
                    labelled_answers: int = 0, seed: int = 0) -> pl.DataFrame:
    """Raw and corrected LIS/SIS side by side for the published models in ``frame`` (a replay frame with
    ``model`` and ``row``; sampled rows are respected).

    Each model's answers are scored by a judge that never saw it; the calibration pool is the other models'
    held-out scores; ``labels`` (model, key, loose_label, strict_label; key = the answer's ``row``) or, for a
    demonstration, ``labelled_answers`` published labels per model (0 = none) drawn with ``seed`` make the estimate
    prediction-powered. Columns: model, n, lis_raw, lis_corrected, lis_lo, lis_hi, lis_method, lis_n_labels,
    the same for sis, and lis_labels/sis_labels (the labels' own score over the same answers)."""
    full = pool(judge)
    known = set(full["model"].unique().to_list())
    # the label-free choice for each published model, made on the others (computed together: shared work)
    chosen = {score: c["held_out"] for score, c in pool_choices(judge).items()}
    rows = []
    for (m,), part in frame.group_by(["model"], maintain_order=True):
        if m not in known:
            continue
        keys = part["row"].cast(pl.String).to_list()
        target = full.filter((pl.col("model") == m) & pl.col("key").is_in(keys))
        cal = full.filter(pl.col("model") != m)
        lab = (labels.filter(pl.col("model") == m) if labels is not None and labels.height
               else sample_labels(target, labelled_answers, seed, pool=cal))
        row: dict[str, Any] = {"model": m, "n": target.height}
        for score, short in (("loose", "lis"), ("strict", "sis")):
            row.update(_score_columns(target, cal, score, labels=lab, selection=chosen[score].get(m)))
            row[f"{short}_labels"] = _mean_or_none(target[f"{score}_label"])
        rows.append(row)
    return pl.DataFrame(rows)


def _score_columns(target: pl.DataFrame, cal: pl.DataFrame, score: str, **how: Any) -> dict[str, Any]:
    """One score's columns of a corrected table: the raw classify-and-count share (strict counts only loose
    positives) and the corrected estimate, its interval, method and number of labels (``how``: labels or
    selection, passed to ``scores.corrected_identity_score``)."""
    from distill_kit import stats
    from distill_kit.ice import scores

    short = {"loose": "lis", "strict": "sis"}[score]
    prob = target[f"{score}_prob"].to_numpy()
    pred = prob >= 0.5 if score == "loose" else (prob >= 0.5) & (target["loose_prob"].to_numpy() >= 0.5)
    raw = stats.classify_and_count(pred)
    est = scores.corrected_identity_score(target, cal, score, **how)
    return {f"{short}_raw": raw.value, f"{short}_corrected": est.value, f"{short}_lo": est.lo, f"{short}_hi": est.hi,
            f"{short}_method": est.method, f"{short}_n_labels": est.n_labels}


def _mean_or_none(labels: pl.Series) -> float | None:
    """The labels' own score, or None where the labels are unknown (qwen2.5-72b-instruct's strict file)."""
    value = labels.drop_nulls().mean()
    return None if value is None else float(value)


def summary_rows(corrected: pl.DataFrame) -> list[dict[str, Any]]:
    """Corrected-score rows as notebook 03 records them: each row plus ``lis_ci``/``sis_ci`` pairs."""
    return [{**r, "lis_ci": [r["lis_lo"], r["lis_hi"]], "sis_ci": [r["sis_lo"], r["sis_hi"]]} for r in corrected.to_dicts()]


def headline(row: dict[str, Any]) -> str:
    """One line per model for notebook 03: the corrected score first, its interval, method and labels used."""
    def part(short: str) -> str:
        return (f"{short.upper()} {row[f'{short}_corrected']:.3f} [{row[f'{short}_lo']:.3f}, {row[f'{short}_hi']:.3f}] "
                f"({row[f'{short}_method']}; {row[f'{short}_n_labels']} labels; raw {row[f'{short}_raw']:.3f})")
    return f"{row['model']}: {part('lis')} · {part('sis')}"


def new_model_target(frame: pl.DataFrame, judge: str = "offline") -> pl.DataFrame:
    """A judged frame of a model the judge never saw (e.g. notebook 03's live rows: ``model, family, response``
    and optionally ``fact``, ``language``, ``template``/``template_id``) in the pool's shape, scored by the
    package's offline judge (or the rule judge), so it can be corrected against ``pool(judge)``."""
    from distill_kit.ice.probes import detect_language

    check_calibrated(judge)
    facts = datasets.identity_facts()
    responses = [r or "" for r in frame["response"].to_list()]
    families = frame["family"].to_list()
    fact_list = frame["fact"].to_list() if "fact" in frame.columns else None
    texts, feats = OfflineIdentityJudge(facts).featurize(responses, families, fact_list)
    resolved = resolve_judge(judge, facts=facts)
    if isinstance(resolved, OfflineIdentityJudge):
        lp, sp, _ = resolved.predict_features(texts, feats)
    else:
        v = resolved.judge_many(responses, families, fact_list)
        lp, sp = [float(x.loose) for x in v], [float(x.strict) for x in v]
    lang = (frame["language"].to_list() if "language" in frame.columns
            else [detect_language(q or "") for q in frame["query"].to_list()] if "query" in frame.columns else ["en"] * frame.height)
    tid = frame["template_id"] if "template_id" in frame.columns else frame["template"] if "template" in frame.columns else None
    return pl.DataFrame({
        "model": frame["model"].to_list(), "key": [str(i) for i in range(frame.height)], "language": lang,
        "template_id": tid.cast(pl.String).to_list() if tid is not None else ["none"] * frame.height,
        "claimed": [_claimed(f) for f in feats], "loose_prob": [float(x) for x in lp], "strict_prob": [float(x) for x in sp]})


def corrected_new_models(frame: pl.DataFrame, judge: str = "offline") -> pl.DataFrame:
    """Label-free corrected LIS/SIS for models outside the calibration pool (same columns as ``corrected_table``,
    without the labels' own score, which a new model does not have)."""
    cal = pool(judge)
    chosen = {score: c["new"] for score, c in pool_choices(judge).items()}  # on the pool only
    rows = []
    target_all = new_model_target(frame, judge)
    for (m,), target in target_all.group_by(["model"], maintain_order=True):
        row: dict[str, Any] = {"model": m, "n": target.height}
        for score in ("loose", "strict"):
            row.update(_score_columns(target, cal, score, selection=chosen[score]))
        rows.append(row)
    return pl.DataFrame(rows)


if __name__ == "__main__":
    sys.exit(main())
