"""RSE offline similarity on the published AlpacaEval outputs: every model's style / structure /
content similarity (1-5) to every reference model (roles from ``lineage.lineage_labels()``), whether the
closest reference is the documented teacher, and the runtime of the full 34 x 34 matrices.

Style and structure use every prompt (default); content (sentence-transformer embeddings, the slow
part on 2 CPU cores) uses a seeded prompt sample. Reads data via ``distill_kit.datasets`` (set
``DISTILL_KIT_DATA_DIR``). Prints readable tables and ends with one line of JSON holding every figure.

    python benchmarks/bench_similarity.py [--prompts 0] [--content-prompts 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import polars as pl

from distill_kit import datasets
from distill_kit.lineage.documented import lineage_labels
from distill_kit.rse import offline_judge as oj
from distill_kit.rse import responses as rr
from distill_kit.rse import scores as rs


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def _matrix(frame: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    models = frame["model"].to_list()
    return models, frame.select(models).to_numpy().astype(float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=0, help="prompts for style/structure (0 = all 805)")
    ap.add_argument("--content-prompts", type=int, default=60, help="prompts for content (0 = skip content)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    figures: dict = {"data_dir": str(datasets.data_dir()), "cpus": os.cpu_count(), "python": platform.python_version(),
                     "load_average_1min_start": round(os.getloadavg()[0], 2)}
    try:
        import rapidfuzz  # noqa: F401

        figures["edit_distance"] = "rapidfuzz"
    except ImportError:
        figures["edit_distance"] = "pure python"

    # ---- data -------------------------------------------------------------------------------
    (prompts, responses), t_load = _timed(
        lambda: (datasets.prompt_set("alpaca-eval", args.prompts, args.seed), datasets.load_responses("alpaca-eval", keep_empty=True))
    )
    (aligned, report), t_align = _timed(rr.align_responses, prompts, responses)
    models = sorted(aligned["model"].unique().to_list(), key=str.lower)
    labels = lineage_labels()
    roles, teacher = labels.roles, labels.truth
    references = [m for m in models if roles.get(m) == "reference"]
    rep = report.frame()
    figures.update(
        n_models=len(models), n_prompts=prompts.height, n_answers=aligned.height,
        empty_outputs=int(rep["empty"].sum()), missing_outputs=int(rep["missing"].sum()),
        seconds_load=round(t_load, 2), seconds_align=round(t_align, 2),
    )
    print(f"AlpacaEval: {len(models)} models x {prompts.height} prompts -> {aligned.height} aligned answers "
          f"({figures['empty_outputs']} empty and {figures['missing_outputs']} missing dropped)")

    # ---- style + structure on all prompts -----------------------------------------------------
    prof, t_feat = _timed(oj.build_profiles, aligned, models, content=False, progress=False)
    pair_ss, t_pair_ss = _timed(oj.pairwise_scores, prof, ("style", "structure"))
    floors_ss = oj.calibrate_floors(prof, n_pairs=200, seed=args.seed)
    figures.update(seconds_style_structure_features=round(t_feat, 2), seconds_style_structure_pairs=round(t_pair_ss, 2))
    mats = rs.matrices(pair_ss)

    # ---- content on a prompt sample ----------------------------------------------------------
    t_embed = t_pair_c = 0.0
    floors_c: dict[str, float] = {}
    if args.content_prompts:
        sample = datasets.sample_prompts(prompts, args.content_prompts, args.seed)
        sub = aligned.filter(pl.col("prompt_id").is_in(sample["prompt_id"].to_list()))
        from distill_kit.text import embed

        cached_before = embed.cache_stats().get("vectors")
        prof_c, t_embed = _timed(oj.build_profiles, sub, models, content=True, progress=False)
        pair_c, t_pair_c = _timed(oj.pairwise_scores, prof_c, ("content",))
        floors_c = {"content": oj.calibrate_floors(prof_c, n_pairs=60, seed=args.seed).get("content")}
        mats["content"] = rs.matrices(pair_c, likert=True)["content"]
        n_sent = int(prof_c.sent_emb.shape[0]) if prof_c.sent_emb is not None else 0
        figures.update(content_prompts=sample.height, content_answers=sub.height, content_sentences=n_sent,
                       seconds_content_embed_and_features=round(t_embed, 2), seconds_content_pairs=round(t_pair_c, 2),
                       embedding_cache_before=cached_before)
    figures["seconds_full_matrix_total"] = round(t_feat + t_pair_ss + t_embed + t_pair_c, 2)
    figures["cpu_seconds_process"] = round(time.process_time(), 2)
    figures["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    figures["floors_measured"] = {**floors_ss, **floors_c}
    figures["floors_used"] = oj.LIKERT_FLOORS
    grans = [g for g in oj.GRANULARITIES if g in mats]
    overall = np.mean([_matrix(mats[g])[1] for g in grans], axis=0)

    # ---- per model: scores to every reference, teacher attribution -----------------------------
    idx = {m: i for i, m in enumerate(models)}
    per_model: dict[str, dict] = {}
    hits = {"exact": 0, "line": 0, "n": 0}
    rows = []
    for m in models:
        refs = [r for r in references if r != m]
        scores = {g: {r: round(float(_matrix(mats[g])[1][idx[m], idx[r]]), 3) for r in refs} for g in grans}
        scores["overall"] = {r: round(float(overall[idx[m], idx[r]]), 3) for r in refs}
        best = {g: max(scores[g], key=scores[g].get) for g in scores}
        t = teacher.get(m) or ""
        entry = {"role": roles.get(m, "?"), "teacher": t, "scores_to_references": scores, "closest_reference": best}
        if t in refs:
            ranks = {g: 1 + sorted(scores[g].values(), reverse=True).index(scores[g][t]) for g in scores}
            entry["teacher_rank"] = ranks
            hits["n"] += 1
            hits["exact"] += int(best["overall"] == t)
            hits["line"] += int(labels.lines.get(best["overall"], best["overall"]) == labels.lines.get(t, t))
        per_model[m] = entry
        rows.append(entry | {"model": m})
    figures["per_model"] = per_model
    figures["teacher_attribution"] = {
        "students_and_variants_with_teacher_in_data": hits["n"],
        "closest_overall_is_teacher": hits["exact"],
        "closest_overall_is_teacher_line": hits["line"],
    }
    figures["matrices"] = {g: {"models": models, "values": np.round(_matrix(mats[g])[1], 3).tolist()} for g in grans}

    # ---- readable output ---------------------------------------------------------------------
    print("\nTimings (s, wall clock): " + ", ".join(f"{k[8:]}={v}" for k, v in figures.items() if k.startswith("seconds_")))
    print(f"process CPU time {figures['cpu_seconds_process']} s on {figures['cpus']} cores; load average "
          f"{figures['load_average_1min_start']} -> {figures['load_average_1min_end']}; edit distance: {figures['edit_distance']}")
    print("1-5 floors (median similarity of unrelated answers): measured", figures["floors_measured"], "used", oj.LIKERT_FLOORS)
    hdr = f"{'model':34} {'role':9} {'teacher':22} " + " ".join(f"{g[:6]:>6}" for g in [*grans, 'overall']) + "  rank(o)  closest reference (overall)"
    print("\nSimilarity to the documented teacher (1-5) and the closest reference")
    print(hdr)
    print("-" * len(hdr))
    for r in sorted(rows, key=lambda r: (r["role"] != "student", r["role"] != "variant", r["role"], r["model"])):
        t = r["teacher"] if r["teacher"] in r["scores_to_references"]["overall"] else ""
        vals = " ".join(f"{r['scores_to_references'][g][t]:6.2f}" if t else f"{'':>6}" for g in [*grans, "overall"])
        rank = f"{r['teacher_rank']['overall']:>7}" if t else f"{'':>7}"
        best = r["closest_reference"]["overall"]
        print(f"{r['model'][:34]:34} {r['role'][:9]:9} {(r['teacher'] or '-')[:22]:22} {vals} {rank}  {best} "
              f"({r['scores_to_references']['overall'][best]:.2f})")
    a = figures["teacher_attribution"]
    print(f"\nClosest reference (overall) = documented teacher: {a['closest_overall_is_teacher']}/{a['students_and_variants_with_teacher_in_data']}, "
          f"same product line: {a['closest_overall_is_teacher_line']}/{a['students_and_variants_with_teacher_in_data']}")
    short = [r[:10] for r in references]
    for g in [*grans, "overall"]:
        mat = overall if g == "overall" else _matrix(mats[g])[1]
        print(f"\nMean {g} similarity (1-5) of each model (rows) to every reference (columns):")
        print(f"{'model':30} " + " ".join(f"{s:>10}" for s in short))
        for m in models:
            print(f"{m[:30]:30} " + " ".join(f"{mat[idx[m], idx[r]]:10.2f}" for r in references))
    print(json.dumps(figures, separators=(",", ":")))


if __name__ == "__main__":
    main()
