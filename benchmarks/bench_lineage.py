"""Lineage benchmark: teacher attribution and "who wrote this?" on AlpacaEval's documented lineage,
plus embedding throughput (distill-kit vs raw SentenceTransformer.encode) and cold vs warm cache.

    DISTILL_KIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_lineage.py [--seeds 0,1,2]

For each seed the shared prompts are split 50/50 into fit and score halves; students are compared
with references on score prompts only. Rankings never use documented teachers (the signal set was
chosen on the references-only sibling task). Confidence is reported two ways: the label-free
sibling-task temperature, and the held-out one (``lineage.calibrate_on_labels``): each student's or
variant's temperature is fitted on the *other* 8 documented teachers, never its own. Prints a
readable table and ends with one line of JSON holding every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid

import numpy as np
import polars as pl

from distill_kit import embed, lineage

SIGNAL_SETS = [("paired",), ("ngram",), ("style",), ("paired", "style"), ("embedding",), ("paired", "embedding")]


def _fmt(x: float) -> str:
    return "  nan" if x != x else f"{x:5.2f}"


def lineage_run(frame: pl.DataFrame, labels: lineage.LineageLabels, seed: int, embed_pool: list[str]) -> dict:
    """All signal sets for one prompt split. ``embed_pool``: the prompts embedded once for all seeds."""
    queries = labels.students + labels.variants + labels.controls
    models = [*labels.references, *queries]
    shared = lineage.common_prompts(frame, models)
    fit, score = lineage.split_prompts(shared, 0.5, seed)
    t = time.perf_counter()
    feats = lineage.build_features(frame, models, fit, score, with_style=True)
    feat_s = time.perf_counter() - t
    # embeddings only for the embedded pool's score prompts (the embedding signal compares score prompts)
    emb_prompts = sorted(set(embed_pool) & set(score))
    sub = frame.filter(pl.col("model").is_in(models) & pl.col("prompt").is_in(emb_prompts))
    t = time.perf_counter()
    vecs = embed.embed_texts(sub["text"].to_list(), progress=True)
    emb_s = time.perf_counter() - t
    feats.embed_pairs = dict(zip(zip(sub["model"].to_list(), sub["prompt"].to_list()), vecs))
    out: dict = {"seed": seed, "n_fit": len(fit), "n_score": len(score), "n_embed_prompts": len(emb_prompts),
                 "features_s": round(feat_s, 1), "embed_s": round(emb_s, 1), "signals": {}}
    for sigs in SIGNAL_SETS:
        res = lineage.attribute(frame, queries, labels.references, lines=labels.lines, signals=sigs, features=feats)
        m_all = lineage.attribution_metrics(res, labels.truth, labels.lines)
        m_stu = lineage.attribution_metrics(res, {k: labels.truth[k] for k in labels.students}, labels.lines)
        held = lineage.calibrate_on_labels(res, labels.truth)
        m_held = lineage.attribution_metrics(held, labels.truth, labels.lines)
        dist = dict(zip(res.students, res.distillation_score.tolist()))
        au = lineage.auroc([dist[m] for m in labels.students], [dist[m] for m in labels.controls])
        au_v = lineage.auroc([dist[m] for m in labels.students + labels.variants], [dist[m] for m in labels.controls])
        top = {s: res.candidates[int(np.argmax(res.combined[i]))] for i, s in enumerate(res.students)}
        out["signals"]["+".join(sigs)] = {
            **{k: m_all[k] for k in ("top1", "top3", "top1_line", "top3_line", "p_top1", "n")},
            "students_top1": m_stu["top1"], "students_top1_line": m_stu["top1_line"],
            "auroc_students_vs_controls": au, "auroc_distilled_and_variants_vs_controls": au_v,
            "p_teacher": m_all["p_teacher"], "brier_top1": m_all["brier_top1"],
            "p_top1_held_out": m_held["p_top1"], "p_teacher_held_out": m_held["p_teacher"],
            "brier_top1_held_out": m_held["brier_top1"],
            "held_out_temperature_min": held.calibration["held_out_temperature_min"],
            "held_out_temperature_max": held.calibration["held_out_temperature_max"],
            "held_out_temperature_all": held.temperature,
            "top1_p_held_out": {s: float(held.probabilities[i].max()) for i, s in enumerate(held.students)},
            "temperature": res.temperature, **res.calibration, "top1_pick": top,
        }
    t = time.perf_counter()
    who = lineage.who_wrote_this(frame, models, features=feats, seed=seed)
    out["who_wrote"] = {"accuracy": who.accuracy, "chance": who.chance, "n_test": who.n_test,
                        "seconds": round(time.perf_counter() - t, 1),
                        "most_confused": who.most_confused(5).to_dicts()}
    refs = lineage.who_wrote_this(frame, labels.references, features=feats, seed=seed)
    out["who_wrote_references"] = {"accuracy": refs.accuracy, "chance": refs.chance}
    return out


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated split seeds")
    ap.add_argument("--embed-prompts", type=int, default=150, help="prompts embedded (all models), shared by seeds")
    ap.add_argument("--throughput-texts", type=int, default=200)
    args = ap.parse_args()
    started = time.perf_counter()
    frame = lineage.load_responses("alpaca_eval")
    labels = lineage.lineage_labels(frame["model"].unique().to_list())  # lineage rows of models the folder holds
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    shared = lineage.common_prompts(frame, [*labels.references, *labels.students, *labels.variants, *labels.controls])
    embed_pool = lineage.sample_prompts(shared, args.embed_prompts, 0)
    runs = [lineage_run(frame, labels, s, embed_pool) for s in seeds]
    tp = throughput(frame, args.throughput_texts)

    print(f"\nTeacher attribution on AlpacaEval lineage: {len(labels.students)} students + {len(labels.variants)} "
          f"variants vs {len(labels.references)} references, {len(labels.controls)} controls; seeds {seeds}")
    print(f"{'signals':<18}{'top1':>6}{'top3':>6}{'top1L':>7}{'top3L':>7}{'conf':>6}{'Brier':>6}{'confLO':>7}"
          f"{'BrierLO':>8}{'AUROC':>7}{'AUROC+v':>8}{'sibling':>8}")
    summary: dict[str, dict] = {}
    for sigs in SIGNAL_SETS:
        key = "+".join(sigs)
        rows = [r["signals"][key] for r in runs]
        mean = {k: float(np.mean([r.get(k, np.nan) for r in rows])) for k in
                ("top1", "top3", "top1_line", "top3_line", "p_top1", "auroc_students_vs_controls",
                 "auroc_distilled_and_variants_vs_controls", "sibling_top1_line", "students_top1",
                 "brier_top1", "p_teacher", "p_top1_held_out", "brier_top1_held_out", "p_teacher_held_out")}
        summary[key] = mean
        print(f"{key:<18}{_fmt(mean['top1']):>6}{_fmt(mean['top3']):>6}{_fmt(mean['top1_line']):>7}"
              f"{_fmt(mean['top3_line']):>7}{_fmt(mean['p_top1']):>6}{_fmt(mean['brier_top1']):>6}"
              f"{_fmt(mean['p_top1_held_out']):>7}{_fmt(mean['brier_top1_held_out']):>8}"
              f"{_fmt(mean['auroc_students_vs_controls']):>7}"
              f"{_fmt(mean['auroc_distilled_and_variants_vs_controls']):>8}{_fmt(mean['sibling_top1_line']):>8}")
    print("(top1L/top3L: by product line; conf: mean confidence of the top pick with the sibling-task temperature;"
          " Brier: of that confidence vs the pick being right; confLO/BrierLO: the same with each target's temperature"
          " fitted on the other targets' documented teachers; AUROC: distillation score, students vs human-data"
          " controls; +v: students and variants; sibling: references-only calibration task)")
    default = "+".join(lineage.DEFAULT_SIGNALS_WITH_EMBEDDINGS)
    print(f"\nDefault ({default}) top-1 picks, seed {seeds[0]}:")
    d0 = runs[0]["signals"][default]
    for s, pick in d0["top1_pick"].items():
        p = d0["top1_p_held_out"][s]
        print(f"  {s:<34} -> {pick:<28} p={p:.2f}  documented: {labels.truth.get(s, '(control)')}")
    who = float(np.mean([r["who_wrote"]["accuracy"] for r in runs]))
    who_ref = float(np.mean([r["who_wrote_references"]["accuracy"] for r in runs]))
    print(f"\nWho wrote this? held-out accuracy, 34 models: {who:.3f} (chance {1/34:.3f}); "
          f"23 references only: {who_ref:.3f} (chance {1/23:.3f})")
    print("\nEmbedding throughput (all-MiniLM-L6-v2, CPU):")
    print(f"  raw SentenceTransformer.encode: {tp['raw_texts_per_s']:.1f} texts/s ({tp['raw_encode_s']:.1f} s)")
    print(f"  distill-kit cold (cache miss):  {tp['kit_cold_texts_per_s']:.1f} texts/s ({tp['kit_cold_s']:.1f} s), "
          f"ratio kit/raw {tp['kit_cold_over_raw_throughput']:.2f}")
    print(f"  distill-kit warm (cache hit):   {tp['kit_warm_texts_per_s']:.0f} texts/s ({tp['kit_warm_s']:.3f} s), "
          f"{tp['warm_speedup_over_cold']:.0f}x faster than cold")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = {
        "bench": "lineage", "seeds": seeds, "default_signals": default, "summary": summary, "runs": runs,
        "who_wrote_accuracy": who, "who_wrote_references_accuracy": who_ref, "throughput": tp,
        "cpu_count": os.cpu_count(), "load_avg_1m": load, "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
