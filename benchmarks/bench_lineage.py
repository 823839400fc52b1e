"""Lineage benchmark: teacher attribution on AlpacaEval's documented (extended) lineage.

    DISTILL_KIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_lineage.py [--seed 0] [--finetune]
        [--alpha 0.05] [--no-reference-null]

Reads ``alpaca_eval/lineage_extended.csv`` from the data folder (``lineage.csv`` when absent) and uses
whichever documented models the folder holds outputs for. Method: a "who wrote this?" classifier
trained on the references' own answers (cross-fitted over prompt folds) votes on every answer of a
target (:mod:`distill_kit.lineage.votes`). The method is chosen two ways, neither of which looks at the
target being scored:

- ``reference_selected`` (primary): on a references-only task -- each reference with a same-line
  sibling is held out of training and must be attributed to its line; no target is involved;
- ``nested``: per target, on the *other* targets' documented lines (leave-one-target-out with the
  selection inside);
- ``nested_with_minilm`` (``--finetune``): the same, over the TF-IDF methods plus a fine-tuned MiniLM
  author classifier (:mod:`distill_kit.lineage.finetune`) alone and combined with the TF-IDF vote; only
  nested, because a references-only task for it needs one fine-tune per sibling round and fold.

Confidence = calibrated probability of the picked line: a temperature on the line votes fitted on
the *other* documented targets (leave-one-out), or label-free on the references-only task.
Students-vs-controls AUROC uses the distillation score fixed before the extended lineage existed
(``lineage.Attribution.distillation_score``: closeness to the nearest reference, paired TF-IDF,
CSLS); ``distillation_score_nested`` chooses among it, the vote's top-line share and the classifiers'
mean top author probability ("answer certainty") leave-one-target-out and scores the held-out targets.
The lineage test (:mod:`distill_kit.lineage.significance`): per (target, line) a p-value of a statistic against the
same statistic on pairs documented as unrelated (controls x every line, students and variants x the other lines,
references x the other lines, never a line of the model's own family), leaving the target out, Holm over each
target's lines; a line is named when its adjusted p < ``--alpha``. Run under every candidate statistic
(``lineage_test_candidates``): the paired statistics of :data:`~distill_kit.lineage.significance.PAIRED_CANDIDATES`
on all shared prompts (per-prompt word / character TF-IDF cosines, cached), the earlier default ``paired`` (score
half), the vote under the product's fixed method (``lineage_test_vote``) and under the method the references-only
task chose this run (``lineage_test_reference_selected``). ``lineage_test`` is the product's statistic,
:data:`~distill_kit.lineage.significance.DEFAULT_STATISTIC`. Reported per statistic: false-positive rate over the
documented unrelated (target, line) pairs with its Wilson interval, power (students and variants given their
documented line), selective accuracy (of the targets given a line, the share given their documented one), coverage
(the share given a line), and ``held_out_references``: the references-only task (each reference with a same-line
sibling tested against a null of the other references; no target read). ``statistic_selection`` applies the rule
that picks a statistic from that task alone (:func:`~distill_kit.lineage.significance.choose_statistic`).
Vote matrices are cached on disk
(``cache_dir()/lineage_votes``), so a re-run costs seconds. Prints tables, then one line of JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from itertools import product

import numpy as np
import polars as pl

from distill_kit import cache, datasets
from distill_kit.lineage import attribution as lineage
from distill_kit.lineage import finetune as FT
from distill_kit.lineage import significance as S
from distill_kit.lineage import votes as A
from distill_kit.lineage.documented import LineageLabels, lineage_labels, lineage_rows
from distill_kit.lineage.prompts import common_prompts, split_prompts
from distill_kit.paths import cache_dir
from distill_kit.text import embed

_CACHE_VERSION = "votes-v1"
FT_COMBINED = ("word", "word+char+template")  # TF-IDF sources the fine-tuned vote is also combined with


def _fmt(x: float | None) -> str:
    return "  nan" if x is None or x != x else f"{x:5.2f}"


def _ci(ci: list[float]) -> str:
    return "[  nan]" if ci[0] != ci[0] else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class LazyCounts:
    """Hashed counts computed on the first cache miss only (a fully cached re-run skips them)."""

    def __init__(self, frame: pl.DataFrame, features: tuple[str, ...]) -> None:
        self.frame, self.features, self._counts, self.seconds = frame, features, None, 0.0

    def get(self) -> A.Counts:
        if self._counts is None:
            t = time.perf_counter()
            self._counts = A.count_features(self.frame, A.basic_features(self.features))
            self.seconds = time.perf_counter() - t
        return self._counts


def cached_votes(counts: LazyCounts, data_key: str, features: str, candidates: list[str], voters: list[str],
                 prompts: list[str], held_out: dict[str, list[str]] | None, k: int, seed: int) -> A.VoteMatrix:
    """:func:`attribution.vote_matrix`, cached on disk by everything that determines it."""
    folder = cache_dir() / "lineage_votes"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_key(_CACHE_VERSION, data_key, features, candidates, voters, prompts, held_out, k, seed)}.pkl"
    stored = cache.load(path)  # a file an older version wrote (classes since moved) is a miss
    if stored is not None:
        return stored
    t = time.perf_counter()
    vm = A.vote_matrix(counts.get(), candidates, voters, features=features, prompts=prompts, held_out=held_out, k=k,
                       seed=seed)
    print(f"  votes {features:<20} {'references-only' if held_out else 'targets':<16} "
          f"{time.perf_counter() - t:6.1f} s", flush=True)
    cache.save(path, vm)
    return vm


def cached_finetuned(frame: pl.DataFrame, data_key: str, candidates: list[str], voters: list[str],
                     lines: dict[str, str], prompts: list[str], k: int, seed: int,
                     config: FT.FinetuneConfig) -> FT.FinetunedVotes:
    """:func:`finetune.finetuned_votes`, its result cached on disk by everything that determines it
    (the fine-tuned weights are cached separately by the module itself)."""
    folder = cache_dir() / "lineage_votes"
    folder.mkdir(parents=True, exist_ok=True)
    key = _key(_CACHE_VERSION, "minilm", data_key, candidates, voters, lines, prompts, k, seed, config.key())
    path = folder / f"{key}.pkl"
    stored = cache.load(path)
    if stored is not None:
        return stored
    fv = FT.finetuned_votes(frame, candidates, voters, lines, prompts=prompts, k=k, seed=seed, config=config,
                            log=lambda m: print(m, flush=True))
    print(f"  votes minilm (fine-tuned)  train {fv.train_s:6.1f} s on {fv.n_train} answers, "
          f"score {fv.score_s:6.1f} s on {fv.n_scored}", flush=True)
    cache.save(path, fv)
    return fv


def calibration_metrics(conf: list[float], correct: list[bool]) -> dict[str, float]:
    return {"mean_confidence": float(np.mean(conf)) if conf else float("nan"), "accuracy": float(np.mean(correct))
            if correct else float("nan"), "brier": A.brier(conf, correct), "ece_5bins": A.ece(conf, correct, 5)}


def summarise(per: list[dict], subset: list[str] | None = None) -> dict[str, float]:
    rows = [r for r in per if r["documented_line"] and (subset is None or r["target"] in subset)]
    if not rows:
        return {"n": 0.0}
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("hit_exact", "hit_exact_top3", "hit_line", "hit_line_top3")}
    out = {"top1_exact": out["hit_exact"], "top3_exact": out["hit_exact_top3"], "top1_line": out["hit_line"],
           "top3_line": out["hit_line_top3"], "n": float(len(rows))}
    out.update(calibration_metrics([r["confidence"] for r in rows], [r["hit_line"] for r in rows]))
    return out


def per_target(target: str, ranking: A.Ranking, confidence: float, labels: LineageLabels,
               extra: dict) -> dict:
    teacher = labels.truth.get(target)
    tline = labels.lines.get(teacher, teacher) if teacher else None
    return {
        "target": target, "role": labels.roles.get(target, ""), "pick": ranking.candidates[0],
        "pick_line": ranking.lines[0], "documented_teacher": teacher, "documented_line": tline,
        "confidence": confidence, "vote_share_top_line": ranking.line_scores[0],
        "hit_exact": bool(teacher) and ranking.candidates[0] == teacher,
        "hit_exact_top3": bool(teacher) and teacher in ranking.candidates[:3],
        "hit_line": bool(tline) and ranking.lines[0] == tline,
        "hit_line_top3": bool(tline) and tline in ranking.lines[:3],
        "top3": ranking.candidates[:3], "top3_lines": ranking.lines[:3], "n_answers": ranking.n_answers, **extra,
    }


@dataclass
class Setup:
    """The documented models this data folder holds, their answers and the shared prompts."""

    source: str
    labels: LineageLabels
    refs: list[str]
    targets: list[str]
    absent: list[str]
    frame: pl.DataFrame
    prompts: list[str]
    data_key: str


def load_setup(seed: int, n_prompts: int = 0) -> Setup:
    rows, source = lineage_rows()
    present = set(datasets.alpaca_models())
    documented = rows["model"].to_list()
    have = [m for m in documented if m in present]
    absent = [m for m in documented if m not in present]
    labels = lineage_labels(have, rows=rows)
    targets = labels.students + labels.variants + labels.controls
    refs = labels.references
    if len(refs) < 3 or not targets:
        raise SystemExit(f"need >= 3 references and a target with outputs; have {len(refs)} and {len(targets)}")
    frame = datasets.load_responses("alpaca-eval", [*refs, *targets])
    prompts = datasets.sample_prompts(common_prompts(frame, [*refs, *targets]), n_prompts, seed)
    data_key = _key(sorted(have), frame.height, hashlib.sha256("".join(frame["text"].to_list()).encode()).hexdigest())
    return Setup(source, labels, refs, targets, absent, frame, prompts, data_key)


def paired_similarity(st: Setup, seed: int) -> tuple[np.ndarray, list[str]]:
    """Paired TF-IDF similarity of every target and reference to every reference (the ``paired`` statistic of
    the lineage test), on the score half of the prompts; cached on disk."""
    queries = [*st.targets, *st.refs]
    key = _key(_CACHE_VERSION, "paired-sim", st.data_key, queries, st.refs, st.prompts, seed)
    path = cache_dir() / "lineage_votes" / f"{key}.pkl"
    sim = cache.load(path)
    if sim is None:
        t = time.perf_counter()
        fit, score = split_prompts(st.prompts, 0.5, seed)
        feats = lineage.build_features(st.frame, queries, fit, score, with_style=False)
        sim = lineage.signal_matrix(feats, "paired", queries, st.refs)
        print(f"  paired similarity {len(queries)} x {len(st.refs)} {time.perf_counter() - t:6.1f} s", flush=True)
        cache.save(path, sim)
    return sim, queries


def prompt_similarities(st: Setup, features: tuple[str, ...]) -> dict[str, lineage.PromptSimilarity]:
    """Per-prompt paired similarity of every target and reference on all shared prompts, one per feature set
    (:func:`attribution.prompt_similarity`); cached on disk."""
    models = [*st.targets, *st.refs]
    out = {}
    for f in features:
        path = cache_dir() / "lineage_votes" / f"{_key(_CACHE_VERSION, 'prompt-sim', f, st.data_key, models, st.prompts)}.pkl"
        ps = cache.load(path)
        if ps is None:
            t = time.perf_counter()
            ps = lineage.prompt_similarity(st.frame, models, st.prompts, features=f)
            print(f"  per-prompt similarity ({f}) {len(models)} models x {len(st.prompts)} prompts "
                  f"{time.perf_counter() - t:6.1f} s", flush=True)
            cache.save(path, ps)
        out[f] = ps
    return out


def lineage_tests(counts: LazyCounts, st: Setup, tgt: dict[str, A.VoteMatrix], sib: dict[str, A.VoteMatrix],
                  best: A.Method, k: int, seed: int, alpha: float, reference_null: bool = True) -> dict[str, dict]:
    """The lineage test under every candidate statistic, with error rates over every documented target (each
    scored against a null that leaves it out): the legacy ``paired`` (score half of the prompts), every
    :data:`~distill_kit.lineage.significance.PAIRED_CANDIDATES` statistic, the vote under the product's method and
    the vote under the references-only method choice. ``statistic_selection`` compares them on the
    references-only task (:func:`~distill_kit.lineage.significance.reference_task`: references with a same-line
    sibling tested against a null of the other references; no target's answers read) and picks one by
    :func:`~distill_kit.lineage.significance.choose_statistic`. ``reference_null``: the references join the targets'
    null (for the vote each is held out of the classifier in turn: ``len(refs) * k`` more fits per feature set;
    without it hub backgrounds come from the sibling rounds)."""
    refs, targets, labels = st.refs, st.targets, st.labels
    truth_line = {t: labels.lines.get(labels.truth[t], labels.truth[t]) for t in targets if t in labels.truth}
    ref_lines = {r: labels.lines.get(r) or r for r in refs}
    stats: dict[str, tuple[dict[str, dict[str, float]], str, str]] = {}  # key -> (statistics, method, how)
    sim, queries = paired_similarity(st, seed)
    stats["lineage_test_paired_half"] = (S.paired_line_statistics(sim, queries, refs, ref_lines), "paired",
                                         "paired similarity on the score half of the prompts (the earlier default)")
    sims = prompt_similarities(st, tuple(dict.fromkeys(f for c in S.PAIRED_CANDIDATES for f in c.features)))
    gap = S.length_gap(st.frame, [*targets, *refs], ref_lines, st.prompts)  # the /len statistics' covariate
    covariates: dict[str, dict[str, dict[str, float]]] = {}
    for c in S.PAIRED_CANDIDATES:
        stats[c.name] = (S.paired_statistics(c, sims, [*targets, *refs], ref_lines), c.name,
                         "a paired statistic on all shared prompts")
        if c.adjust == "len":
            covariates[c.name] = gap
    for key, method, how in (("lineage_test_vote", A.DEFAULT_METHOD, "the vote under the product's fixed method"),
                             ("lineage_test_reference_selected", best, "the vote under the references-only choice")):
        f = method.features
        if f not in tgt:
            tgt[f] = cached_votes(counts, st.data_key, f, refs, targets, st.prompts, None, k, seed)
        loro = cached_votes(counts, st.data_key, f, refs, [], st.prompts, S.leave_one_reference_out(refs), k, seed)
        if f not in sib and method.hub:
            sib[f] = cached_votes(counts, st.data_key, f, refs, [], st.prompts, A.sibling_rounds(refs, labels.lines),
                                  k, seed)
        bg = loro if reference_null else sib.get(f)
        stats[key] = (S.vote_statistics(tgt[f], loro, labels.lines, method, bg), method.name, how)
    combo = f"{S.DEFAULT_STATISTIC}+vote:{A.DEFAULT_METHOD.name}"  # the default paired and the product vote, summed
    stats[combo] = (S.combined_statistics([stats[S.DEFAULT_STATISTIC][0], stats["lineage_test_vote"][0]], refs), combo,
                    "the default paired statistic and the product vote, each scaled by its spread over the references")
    out: dict[str, dict] = {}
    tasks = {}
    for key, (st_, method, how) in stats.items():
        scored_on = {m: v for m, v in st_.items() if reference_null or m not in set(refs)}
        cov = covariates.get(key)
        res = S.lineage_test_from_statistics(scored_on, targets, ref_lines, labels, alpha=alpha, method=method,
                                             covariate=cov)
        tasks[method] = S.reference_task(st_, ref_lines, labels, alpha=alpha, covariate=cov)
        out[key] = {**S.error_rates(res, labels, targets), "method": method, "selected_on": how,
                    "reference_null": reference_null, "null_models": len(res.null_models),
                    "untested_lines": res.untested_lines, "held_out_references": tasks[method],
                    "per_target": res.per_target(truth_line)}
    # The coarser claim, measured beside it: the default statistic with each reference's family as its line
    # (one test per maker family; benchmarks only, the product names lines).
    flabels = labels.by_family()
    fam_lines = {r: flabels.lines.get(r) or r for r in refs}
    fam_truth = {t: flabels.lines.get(labels.truth[t], labels.truth[t]) for t in targets if t in labels.truth}
    default_stat = S.PairedStatistic.parse(S.DEFAULT_STATISTIC)
    fam_stats = S.paired_statistics(default_stat, sims, [*targets, *refs], fam_lines)
    fres = S.lineage_test_from_statistics(
        {m: v for m, v in fam_stats.items() if reference_null or m not in set(refs)}, targets, fam_lines, flabels,
        alpha=alpha, method=f"{S.DEFAULT_STATISTIC}, families")
    family_level = {**S.error_rates(fres, flabels, targets), "method": fres.method,
                    "selected_on": "the default statistic with every reference's documented family as its line "
                                   "(measured beside the product's line-level test, not offered by it)",
                    "reference_null": reference_null, "null_models": len(fres.null_models),
                    "untested_lines": fres.untested_lines, "per_target": fres.per_target(fam_truth)}
    chosen = S.choose_statistic(tasks)
    by_method = {v["method"]: key for key, v in out.items()}
    default = by_method.get(S.DEFAULT_STATISTIC, "lineage_test_paired_half")
    out["lineage_test"] = {**out[default], "selected_on": "the product's statistic (notebook 05), "
                           f"{S.DEFAULT_STATISTIC}: fixed from the references-only rule"}
    out["lineage_test_candidates"] = {v["method"]: v for key, v in out.items() if key != "lineage_test"}
    out["lineage_test_family"] = family_level
    out["statistic_selection"] = {
        "selected_on": "references-only task: each reference with a same-line sibling tested against a null of the "
                       "other references (no target involved); net = own line named - another line named, ties by "
                       "mean -log10 p of the own line",
        "tasks": tasks, "own_line_named": {m: t["own_line_named"] for m, t in tasks.items()},
        "chosen": chosen, "default": S.DEFAULT_STATISTIC, "default_is_chosen": chosen == S.DEFAULT_STATISTIC}
    return {k_: v for k_, v in out.items() if k_ in ("lineage_test", "lineage_test_vote",
                                                    "lineage_test_reference_selected", "lineage_test_candidates",
                                                    "lineage_test_family",
                                                    "statistic_selection")}


def run(seed: int, k: int, features: tuple[str, ...] = A.FEATURES, n_prompts: int = 0,
        finetune: FT.FinetuneConfig | None = None, alpha: float = S.ALPHA, reference_null: bool = True) -> dict:
    started = time.perf_counter()
    st = load_setup(seed, n_prompts)
    source, labels, refs, targets, absent = st.source, st.labels, st.refs, st.targets, st.absent
    frame, prompts, data_key = st.frame, st.prompts, st.data_key
    print(f"lineage: {source}; {len(labels.students)} students, {len(labels.variants)} variants, "
          f"{len(labels.controls)} controls vs {len(refs)} references; {len(prompts)} shared prompts; "
          f"absent here: {absent or 'none'}", flush=True)
    base_rows = set(lineage_labels(prefer_extended=False).roles)  # lineage.csv targets
    new_targets = [t for t in targets if t not in base_rows]

    counts = LazyCounts(frame, tuple(dict.fromkeys([*features, A.DEFAULT_METHOD.features])))
    rounds = A.sibling_rounds(refs, labels.lines)
    sib = {f: cached_votes(counts, data_key, f, refs, [], prompts, rounds, k, seed) for f in features}
    tgt = {f: cached_votes(counts, data_key, f, refs, targets, prompts, None, k, seed) for f in features}
    methods = [m for m in A.METHODS if m.features in features]

    best, ref_table = A.select_on_references(sib, refs, labels.lines, methods)
    order = sorted((m.name for m in methods),
                   key=lambda n: (-ref_table[n]["top1_line"], -ref_table[n]["p_true_line"]))
    bgs = {m.name: A.hub_background(sib[m.features], m.vote, labels.lines) if m.hub else None for m in methods}
    rankings = {m.name: {t: A.rank(tgt[m.features], t, m, labels.lines, bgs[m.name]) for t in targets}
                for m in methods}
    truth_line = {t: labels.lines.get(labels.truth[t], labels.truth[t]) for t in targets if t in labels.truth}
    line_names = sorted({labels.lines.get(c, c) for c in refs})

    tests = lineage_tests(counts, st, tgt, sib, best, k, seed, alpha, reference_null)

    # primary: method chosen on references only; confidence held out over the other targets' labels
    prim = [rankings[best.name][t] for t in targets]
    conf_lo, temps = A.held_out_line_confidence(prim, truth_line, line_names)
    T_sib = A.references_only_temperature(sib[best.features], best, labels.lines, line_names)
    conf_sib = [A.line_confidence(r, line_names, T_sib) for r in prim]

    # baseline and AUROC score fixed before the extended lineage: paired TF-IDF (lineage.attribute)
    t = time.perf_counter()
    paired_key = _key(_CACHE_VERSION, "paired", data_key, refs, targets, labels.lines, prompts, seed)
    paired_path = cache_dir() / "lineage_votes" / f"{paired_key}.pkl"
    paired = cache.load(paired_path)
    if paired is None:
        fit, score = split_prompts(prompts, 0.5, seed)
        feats = lineage.build_features(frame, [*refs, *targets], fit, score, with_style=False)
        paired = lineage.attribute(frame, targets, refs, lines=labels.lines, signals=("paired",), features=feats)
        cache.save(paired_path, paired)
    paired_s = time.perf_counter() - t
    dist = dict(zip(paired.students, paired.distillation_score.tolist()))
    pm = lineage.attribution_metrics(paired, labels.truth, labels.lines)
    paired_lo = lineage.calibrate_on_labels(paired, labels.truth)
    pm_lo = lineage.attribution_metrics(paired_lo, labels.truth, labels.lines)

    per = [per_target(t, rankings[best.name][t], float(conf_lo[i]), labels,
                      {"confidence_references_only": conf_sib[i], "held_out_temperature": float(temps[i]),
                       "distillation_score_paired": dist[t], "new_in_extended": t in new_targets})
           for i, t in enumerate(targets)]
    nested = A.nested_attribution(rankings, truth_line, order, line_names)
    per_nested = [per_target(t, nested[t].ranking, nested[t].confidence, labels, {"method": nested[t].method})
                  for t in targets]

    # fine-tuned MiniLM vote (alone and combined with TF-IDF sources): chosen by nested selection only,
    # since a references-only task for it would need one fine-tune per sibling round and fold
    ft_info: dict = {}
    ft_order: list[str] = []
    certainty = {"word": {t: A.answer_certainty(tgt["word"], t) for t in targets}} if "word" in tgt else {}
    if finetune is not None:
        fv = cached_finetuned(frame, data_key, refs, targets, labels.lines, prompts, k, seed, finetune)
        certainty[FT.FEATURES_NAME] = {t: A.answer_certainty(fv.votes, t) for t in targets}
        for src in (FT.FEATURES_NAME, *(f"{f}+{FT.FEATURES_NAME}" for f in FT_COMBINED if f in tgt)):
            for hub, vote, agg in product((False, True), A.VOTES, A.LINE_AGG):
                m = A.Method(src, vote, agg, hub)
                bg_ft = A.hub_background(fv.self_votes, vote, labels.lines) if hub else None
                if src == FT.FEATURES_NAME:
                    rankings[m.name] = {t: A.rank(fv.votes, t, m, labels.lines, bg_ft) for t in targets}
                else:  # product of experts: the TF-IDF vote on all answers x the fine-tuned vote on its sample
                    f = src.rsplit("+", 1)[0]
                    parts = [(tgt[f], A.hub_background(sib[f], vote, labels.lines) if hub else None),
                             (fv.votes, bg_ft)]
                    rankings[m.name] = {t: A.rank_combined(parts, t, m, labels.lines) for t in targets}
                ft_order.append(m.name)
        ft_info = {"config": finetune.key(), "train_s": round(fv.train_s, 1), "score_s": round(fv.score_s, 1),
                   "n_train_answers": fv.n_train, "n_scored_answers": fv.n_scored,
                   "held_out_reference_author_accuracy": fv.reference_accuracy,
                   "held_out_reference_line_accuracy": fv.reference_line_accuracy,
                   "answers_per_target": {t: int(fv.votes.probs[t].shape[0]) for t in targets}}
    nested_all = A.nested_attribution(rankings, truth_line, order + ft_order, line_names) if ft_order else nested
    per_nested_all = [per_target(t, nested_all[t].ranking, nested_all[t].confidence, labels,
                                 {"method": nested_all[t].method}) for t in targets]

    def auroc(score: dict[str, float], pos: list[str]) -> float:
        return lineage.auroc([score[m] for m in pos], [score[m] for m in labels.controls])

    vote_share = {r["target"]: r["vote_share_top_line"] for r in per}
    labelled = [t for t in targets if t in truth_line]
    # leave-one-out majority line: what a prior alone gets (no answers read)
    major = []
    for t in labelled:
        others = [truth_line[o] for o in labelled if o != t]
        major.append(max(sorted(set(others)), key=others.count) == truth_line[t])

    method_rows = {}
    for name in order + ft_order:
        hs = [rankings[name][t].lines[0] == truth_line[t] for t in labelled]
        method_rows[name] = {"references_only_top1_line": ref_table.get(name, {}).get("top1_line"),
                             "references_only_p_true_line": ref_table.get(name, {}).get("p_true_line"),
                             "targets_top1_line_not_for_selection": float(np.mean(hs))}
    # distillation score for students vs controls, chosen leave-one-target-out among these
    dscores = {"paired": dist, "vote_share": vote_share, **{f"certainty:{k_}": v for k_, v in certainty.items()}}
    d_auc, d_chosen, d_pct = A.nested_auroc(dscores, labels.students, labels.controls)
    summary = {
        "reference_selected": {
            "method": best.name, "selected_on": "references-only sibling task (no target involved)",
            "all": summarise(per), "students": summarise(per, labels.students), "variants": summarise(per, labels.variants),
            "new_in_extended": summarise(per, new_targets),
            "calibration_references_only": calibration_metrics(
                [r["confidence_references_only"] for r in per if r["documented_line"]],
                [r["hit_line"] for r in per if r["documented_line"]]),
            "references_only_task": ref_table[best.name], "references_only_temperature": T_sib,
        },
        "nested": {
            "selected_on": "leave-one-target-out: method chosen on the other targets' documented lines",
            "all": summarise(per_nested), "students": summarise(per_nested, labels.students),
            "variants": summarise(per_nested, labels.variants), "new_in_extended": summarise(per_nested, new_targets),
            "methods_chosen": {m: sum(p.method == m for p in nested.values()) for m in {p.method for p in nested.values()}},
        },
        "nested_with_minilm": {
            "selected_on": "leave-one-target-out over the TF-IDF and fine-tuned MiniLM methods: chosen on the "
                           "other targets' documented lines",
            "all": summarise(per_nested_all), "students": summarise(per_nested_all, labels.students),
            "variants": summarise(per_nested_all, labels.variants),
            "new_in_extended": summarise(per_nested_all, new_targets),
            "methods_chosen": {m: sum(p.method == m for p in nested_all.values())
                               for m in {p.method for p in nested_all.values()}},
        } if ft_order else None,
        "distillation_score_nested": {
            "auroc_students_vs_controls": d_auc, "chosen": d_chosen, "held_out_percentile": d_pct,
            "selected_on": "leave-one-target-out: score with the best AUROC on the other students and controls",
            "auroc_each_not_for_selection": {n: auroc(v, labels.students) for n, v in dscores.items()},
        },
        "auroc_students_vs_controls": auroc(dist, labels.students),
        "auroc_students_and_variants_vs_controls": auroc(dist, labels.students + labels.variants),
        "auroc_students_vs_controls_new_only": lineage.auroc(
            [dist[m] for m in labels.students if m in new_targets], [dist[m] for m in labels.controls if m in new_targets]),
        "auroc_vote_share_students_vs_controls": auroc(vote_share, labels.students),
        "baseline_majority_line_leave_one_out": float(np.mean(major)),
        "baseline_paired_tfidf": {"top1_exact": pm["top1"], "top3_exact": pm["top3"], "top1_line": pm["top1_line"],
                                  "top3_line": pm["top3_line"], "brier_held_out": pm_lo["brier_top1"]},
    }
    return {
        "lineage_file": source, "seed": seed, "folds": k, "features": list(features), "n_methods": len(methods), "n_prompts": len(prompts), "absent_models": absent,
        "targets": {"students": labels.students, "variants": labels.variants, "controls": labels.controls,
                    "new_in_extended": new_targets},
        "references": refs, "per_target": {r["target"]: r for r in per},
        "per_target_nested": {r["target"]: r for r in per_nested},
        "per_target_nested_with_minilm": {r["target"]: r for r in per_nested_all} if ft_order else None,
        "summary": summary, "methods": method_rows, "finetune": ft_info, **tests,
        "timing_s": {"counts": round(counts.seconds, 1), "paired_baseline": round(paired_s, 1),
                     "minilm_finetune": ft_info.get("train_s"), "minilm_scoring": ft_info.get("score_s"),
                     "total": round(time.perf_counter() - started, 1)},
    }


def throughput(frame: pl.DataFrame, n: int, batch_size: int = 32) -> dict:
    """distill-kit cold (new texts, cache write) and warm (all cached) vs raw encode on the same texts."""
    rng = np.random.default_rng(0)
    texts = frame["text"].to_list()
    nonce = uuid.uuid4().hex[:8]  # fresh texts so the cold run really misses the cache
    picked = [f"{texts[i]}\n[{nonce}]" for i in rng.choice(len(texts), size=n, replace=False)]
    model = embed.load_model(None)
    model.encode(picked[:8], batch_size=batch_size)  # warm up threads and allocator for both
    t = time.perf_counter()
    raw = model.encode(picked, batch_size=batch_size, show_progress_bar=False, normalize_embeddings=True)
    raw_s = time.perf_counter() - t
    t = time.perf_counter()
    cold = embed.embed_texts(picked, batch_size=batch_size, progress=False)
    cold_s = time.perf_counter() - t
    t = time.perf_counter()
    warm = embed.embed_texts(picked, batch_size=batch_size, progress=False)
    warm_s = time.perf_counter() - t
    assert np.allclose(cold, warm) and np.allclose(cold, raw, atol=1e-4)
    return {
        "n_texts": n, "mean_chars": float(np.mean([len(p) for p in picked])),
        "raw_encode_s": raw_s, "kit_cold_s": cold_s, "kit_warm_s": warm_s,
        "raw_texts_per_s": n / raw_s, "kit_cold_texts_per_s": n / cold_s, "kit_warm_texts_per_s": n / warm_s,
        "kit_cold_over_raw_throughput": raw_s / cold_s, "warm_speedup_over_cold": cold_s / max(warm_s, 1e-9),
    }


def report(res: dict) -> None:
    s = res["summary"]
    print(f"\nTeacher attribution on {res['lineage_file']} (seed {res['seed']}, {res['folds']}-fold cross-fitting, "
          f"{res['n_prompts']} prompts)")
    print(f"{'selection':<22}{'set':<18}{'n':>4}{'top1':>6}{'top3':>6}{'top1L':>7}{'top3L':>7}{'conf':>6}"
          f"{'Brier':>7}{'ECE':>6}")
    for sel in ("reference_selected", "nested", "nested_with_minilm"):
        for part in ("all", "students", "variants", "new_in_extended"):
            if not s.get(sel):
                continue
            m = s[sel][part]
            if not m.get("n"):
                continue
            print(f"{sel[:21]:<22}{part:<18}{int(m['n']):>4}{_fmt(m['top1_exact']):>6}{_fmt(m['top3_exact']):>6}"
                  f"{_fmt(m['top1_line']):>7}{_fmt(m['top3_line']):>7}{_fmt(m['mean_confidence']):>6}"
                  f"{_fmt(m['brier']):>7}{_fmt(m['ece_5bins']):>6}")
    rs = s["reference_selected"]
    print(f"reference-selected method: {rs['method']} (references-only task: line top-1 "
          f"{rs['references_only_task']['top1_line']:.2f} over {int(rs['references_only_task']['n'])} held-out references)")
    c = rs["calibration_references_only"]
    print(f"label-free confidence (references-only temperature {rs['references_only_temperature']:.2f}): mean "
          f"{c['mean_confidence']:.2f}, Brier {c['brier']:.2f}, ECE {c['ece_5bins']:.2f}")
    print(f"nested choices: {s['nested']['methods_chosen']}")
    if s.get("nested_with_minilm"):
        ft = res["finetune"]
        print(f"nested choices with MiniLM: {s['nested_with_minilm']['methods_chosen']}")
        print(f"MiniLM fine-tune: {ft['train_s']:.0f} s on {ft['n_train_answers']} answers (2 folds), scoring "
              f"{ft['score_s']:.0f} s on {ft['n_scored_answers']} answers; held-out reference answers to their author "
              f"{ft['held_out_reference_author_accuracy']:.3f}, to its line {ft['held_out_reference_line_accuracy']:.3f}")
        for name, row in res["methods"].items():
            if FT.FEATURES_NAME in name:
                print(f"  {name:<40} target line top-1 {row['targets_top1_line_not_for_selection']:.2f} (not for selection)")
    d = s["distillation_score_nested"]
    print(f"distillation score chosen leave-one-target-out: AUROC {d['auroc_students_vs_controls']:.3f} "
          f"(choices {sorted(set(d['chosen'].values()))}); each score on all targets (not for selection): "
          + ", ".join(f"{k} {v:.3f}" for k, v in d["auroc_each_not_for_selection"].items()))
    b = s["baseline_paired_tfidf"]
    print(f"baselines: paired TF-IDF top-1 {b['top1_exact']:.2f}, line top-1 {b['top1_line']:.2f}, top-3 line "
          f"{b['top3_line']:.2f}; leave-one-out majority line {s['baseline_majority_line_leave_one_out']:.2f}")
    print(f"AUROC students vs controls (paired distillation score): {s['auroc_students_vs_controls']:.3f}; "
          f"+variants {s['auroc_students_and_variants_vs_controls']:.3f}; new targets only "
          f"{s['auroc_students_vs_controls_new_only']:.3f}; vote share {s['auroc_vote_share_students_vs_controls']:.3f}")
    sel = res["statistic_selection"]
    print(f"\nlineage test, every candidate statistic (alpha {res['lineage_test']['alpha']}; error rates over the "
          f"{res['lineage_test']['n_scored']} documented targets, each against a null that leaves it out; "
          "references-only task: references with a sibling against the other references, no target)")
    print(f"{'statistic':<34}{'FPR':>7}{'':>15}{'power':>7}{'sel.acc':>9}{'cover':>7}   "
          f"{'ref own':>8}{'ref other':>10}{'net':>6}{'-log10p':>8}")
    for name, t in res["lineage_test_candidates"].items():
        h = t["held_out_references"]
        mark = " <- chosen" if name == sel["chosen"] else ""
        print(f"{name:<34}{t['fpr']:7.3f} {_ci(t['fpr_ci']):>14}{_fmt(t['power']):>7}"
              f"{_fmt(t['selective_accuracy']):>9}{_fmt(t['coverage']):>7}   {_fmt(h['own_line_named']):>8}"
              f"{_fmt(h['other_line_named']):>10}{_fmt(h['net']):>6}{_fmt(h['own_line_log10_p']):>8}{mark}")
    print(f"references-only rule picks {sel['chosen']}; product default {sel['default']}")
    for key in ("lineage_test", "lineage_test_vote", "lineage_test_reference_selected", "lineage_test_family"):
        t = res[key]
        print(f"{key} ({t['method']}, {t['selected_on']}; alpha {t['alpha']}): FPR {t['fpr']:.3f} "
              f"[{t['fpr_ci'][0]:.3f}, {t['fpr_ci'][1]:.3f}] ({t['n_false_positives']}/{t['n_unrelated_pairs']} "
              f"unrelated pairs), power {_fmt(t['power'])} {_ci(t['power_ci'])} (of {t['n_positives']}), selective "
              f"accuracy {_fmt(t['selective_accuracy'])} {_ci(t['selective_accuracy_ci'])} (of {t['n_named']} "
              f"named), coverage {_fmt(t['coverage'])} (of {t['n_scored']})")
        for tgt_name, r in t["per_target"].items():
            mark = "" if not r["named"] else ("ok" if r["line"] == r["documented_line"] else "WRONG")
            print(f"    {tgt_name:<34}best {r['line']:<12}p={r['p']:.2e} p_adj={r['p_adj']:.2e} "
                  f"doc: {r['documented_line'] or '(control)':<12}{'NAMED ' + mark if r['named'] else ''}")
    print("\nper target (reference-selected method; confidence held out):")
    for t, r in res["per_target"].items():
        mark = "" if not r["documented_line"] else ("ok " if r["hit_line"] else "MISS")
        print(f"  {t:<34}{r['role']:<9}-> {r['pick']:<28}{r['pick_line']:<12}p={r['confidence']:.2f} "
              f"doc: {r['documented_line'] or '(control)':<12}{mark}  dist={r['distillation_score_paired']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="prompt-fold and split seed")
    ap.add_argument("--folds", type=int, default=2, help="cross-fitting folds over prompts")
    # Default word only: the product's statistic is word-based, and the character-n-gram vote classifiers (25
    # leave-one-reference-out fits per fold) more than double a cold run on a folder no one has cached.
    ap.add_argument("--features", default="word",
                    help=f"vote feature sets to try (comma-separated; default word; all: {','.join(A.FEATURES)})")
    ap.add_argument("--prompts", type=int, default=0, help="shared prompts used, a seeded sample (0: all)")
    ap.add_argument("--finetune", action="store_true",
                    help="also fine-tune MiniLM as a vote source (~17 min per seed on 2 shared cores; see README)")
    ap.add_argument("--ft-train", type=int, default=FT.FinetuneConfig.train_per_candidate,
                    help="fine-tuning answers per reference per fold")
    ap.add_argument("--ft-vote", type=int, default=FT.FinetuneConfig.vote_per_fold,
                    help="prompts per fold each target votes with under the fine-tuned classifier")
    ap.add_argument("--ft-epochs", type=int, default=FT.FinetuneConfig.epochs, help="fine-tuning epochs")
    ap.add_argument("--ft-tokens", type=int, default=FT.FinetuneConfig.max_tokens, help="tokens kept per answer")
    ap.add_argument("--ft-threads", type=int, default=FT.FinetuneConfig.threads, help="torch threads")
    ap.add_argument("--alpha", type=float, default=S.ALPHA, help="family-wise level of the lineage test per target")
    ap.add_argument("--no-reference-null", action="store_true",
                    help="keep the references out of the lineage test's null (saves references x folds classifier fits)")
    ap.add_argument("--throughput-texts", type=int, default=0, help="also time embedding N texts (0: skip)")
    args = ap.parse_args()
    feats = tuple(f for f in args.features.split(",") if f)
    unknown = set(feats) - set(A.FEATURES)
    if unknown or not feats:
        raise SystemExit(f"unknown feature sets {sorted(unknown)}; choose from {A.FEATURES}")
    ft = None if not args.finetune else FT.FinetuneConfig(max_tokens=args.ft_tokens, train_per_candidate=args.ft_train,
                                                          vote_per_fold=args.ft_vote, epochs=args.ft_epochs,
                                                          threads=args.ft_threads)
    res = run(args.seed, args.folds, feats, args.prompts, ft, args.alpha, not args.no_reference_null)
    report(res)
    if args.throughput_texts:
        frame = datasets.load_responses("alpaca-eval", res["references"][:3])
        res["throughput"] = throughput(frame, args.throughput_texts)
    res["cpu_count"] = os.cpu_count()
    res["load_avg_1m"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(json.dumps({"bench": "lineage", **res}, default=float))


if __name__ == "__main__":
    main()
