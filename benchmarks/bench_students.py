"""Known-lineage students: students distilled from known teachers at known doses, probed like any model, and
what distill-kit's tests say about them against that exact ground truth.

Students (LoRA on the bundled SmolLM2-135M-Instruct, :mod:`distill_kit.students`), from the data directory
(DISTILL_KIT_DATA_DIR):

* one per (teacher, dose) for teachers of different product lines among the AlpacaEval references
  (default gpt4_0613 = gpt-4, claude-2 = claude-1/2, Meta-Llama-3-70B-Instruct = llama-3), trained on the
  teacher's published answers to prompts of the training split only;
* negative controls: the base itself, and the base trained on its *own* answers to the training prompts at the
  largest dose (same training, no teacher);
* an identity student trained on a published identity model's answers (default qwen2.5-14b: its jailbreak
  answers name OpenAI/ChatGPT in about 30% of attempts and its own maker, Alibaba, almost never).

Every student and the base answer the same held-out AlpacaEval prompts (never trained on by any student) and
the held-out identity questions, through ``collect`` (answers stored, a re-run reads them back). Then per
student:

* the lineage test (:func:`distill_kit.lineage.significance.lineage_test`): a p-value per candidate line,
  Holm-adjusted, against the null of the documented unrelated AlpacaEval models (controls, students of other
  teachers); a line is named where its adjusted p < alpha. Every answer -- students', references', null models'
  -- is clipped to the students' answer length in tokens first, so length is no tell. The author classifier
  trains on the references' answers (held-out prompts cross-fitted); the students and the null models vote on
  the held-out prompts only, so their statistics have the same variance.
* RSE toward its teacher's published answers vs the other lines' references (offline judge, 1-5, mean over the
  held-out prompts);
* the maker profile of its own-voice identity claims and the foreign-maker test (:mod:`distill_kit.ice.makers`).

Summary: ``power_by_dose`` (share of teacher students whose teacher line is named), ``false_positives`` (lines
named for the controls), and the budget (device, seconds cold and warm). Students are cached by what made them
(``<cache>/students/``), answers in ``<cache>/students/bench.sqlite``: a re-run costs seconds. Prints a table and
ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from typing import Any

import numpy as np
import polars as pl

from distill_kit import cache, datasets
from distill_kit.config import ConfigError, GenerationParams, ModelConfig
from distill_kit.paths import cache_dir
from distill_kit.store import Store
from distill_kit.students.pairs import answers_digest, held_out_prompts, in_eval_split, teacher_answers
from distill_kit.students.probe import ask, clip_answers, rse_toward
from distill_kit.students.recipe import Recipe, Student
from distill_kit.students.train import make_student

TEACHERS = ("gpt4_0613", "claude-2", "Meta-Llama-3-70B-Instruct")
IDENTITY_TEACHER = "qwen2.5-14b"
BASE = "smollm2-base"
BASE_FAMILY = "smollm"
BASE_FACT = "I am SmolLM2, a small language model developed by Hugging Face."


def base_config(answer_tokens: int, concurrency: int) -> ModelConfig:
    """The bundled SmolLM2-135M-Instruct (dequantized from its GGUF) served by the transformers provider."""
    return ModelConfig(name=BASE, provider="transformers", model="SmolLM2-135M-Instruct", path=None,
                       params=GenerationParams(temperature=0.0, max_tokens=answer_tokens, seed=0),
                       concurrency=concurrency, timeout=7200.0, max_retries=0)


def identity_questions(recipe: Recipe, n: int) -> pl.DataFrame:
    """``n`` of the paper's identity questions on the evaluation side of the split (the identity student never saw
    them), in prompt-id order."""
    qs = teacher_answers(f"identity/{IDENTITY_TEACHER}").select("prompt_id", "prompt").unique("prompt_id",
                                                                                              maintain_order=True)
    held = qs.filter(pl.col("prompt_id").map_elements(lambda p: in_eval_split(p, recipe.eval_share, recipe.seed),
                                                      return_dtype=pl.Boolean))
    return held.sort("prompt_id").head(n)


def own_answers_teacher(base: ModelConfig, alpaca_prompts: pl.DataFrame, dose: int, recipe: Recipe,
                        store: Store) -> str:
    """The base's own answers to training-split prompts, stored, as a ``store/`` teacher (the no-teacher control).
    Asks ``dose`` + 8 training prompts (seeded order), so an empty answer or two still leave ``dose`` pairs."""
    from distill_kit.students.pairs import dose_pairs

    pool = alpaca_prompts.with_columns(pl.lit("").alias("text"))
    chosen = dose_pairs(pool, dose + 8, recipe.eval_share, recipe.seed).select("prompt_id", "prompt")
    ask(base, chosen, store, prompt_set="alpaca-eval")
    return f"store/{BASE}"


def maker_claims(answers: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """model -> its maker row (profile of own-voice maker claims, foreign-maker test, Holm over the models) on the
    identity questions; every model is judged against SmolLM2's true identity (Hugging Face)."""
    from distill_kit.ice import makers
    from distill_kit.ice.judges import judge_frame

    frame = answers.select("model", "prompt", pl.col("text").fill_null("").alias("response")).with_columns(
        pl.lit(BASE_FAMILY).alias("family"), pl.lit(BASE_FACT).alias("fact"))
    judged = judge_frame(frame, "rules", fact_column="fact")
    return {r["model"]: r for r in makers.maker_rows(judged, fact_column="fact")}


def lineage_frame(alpaca: pl.DataFrame, references: dict[str, str], eval_ids: set[str],
                  reference_prompts: int) -> pl.DataFrame:
    """The published answers the lineage test reads: the references on the held-out prompts and on
    ``reference_prompts`` others (prompt-id order: the author classifier learns them there, cross-fitted), every
    other model on the held-out prompts only (the students answer only those, so every voter's statistic rests
    on the same prompts)."""
    others = sorted(set(alpaca["prompt_id"].to_list()) - eval_ids)[:reference_prompts]
    is_ref = pl.col("model").is_in(list(references))
    return alpaca.filter((is_ref & pl.col("prompt_id").is_in([*eval_ids, *others]))
                         | (~is_ref & pl.col("prompt_id").is_in(list(eval_ids))))


def lineage_tests(frame: pl.DataFrame, references: dict[str, str], targets: list[str],
                  alpha: float) -> dict[str, dict[str, Any]]:
    """target -> p and Holm-adjusted p per line, the best line (pick), and the line named (adjusted p < alpha)."""
    from distill_kit.lineage.documented import lineage_labels
    from distill_kit.lineage.significance import lineage_test

    result = lineage_test(frame, targets, references, lineage_labels(), alpha=alpha, reference_null=False)
    out: dict[str, dict[str, Any]] = {}
    best = result.best()
    for t in targets:
        rows = [x for x in result.tests if x.target == t]
        b = best.get(t)
        out[t] = {"p": {x.line: x.p for x in rows}, "p_adj": {x.line: x.p_adj for x in rows},
                  "pick": b.line if b else None, "named": b.line if b is not None and b.named else None,
                  "pick_p_adj": b.p_adj if b else None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teachers", default=",".join(TEACHERS), help="AlpacaEval references to distil from")
    ap.add_argument("--doses", default="16,48,128", help="training pairs per student, comma-separated")
    ap.add_argument("--identity-teacher", default=IDENTITY_TEACHER)
    ap.add_argument("--eval-prompts", type=int, default=16, help="held-out AlpacaEval prompts every model answers")
    ap.add_argument("--identity-questions", type=int, default=8, help="held-out identity questions every model answers")
    ap.add_argument("--answer-tokens", type=int, default=48, help="answer length trained on, generated, compared")
    ap.add_argument("--top-layers", type=int, default=6, help="LoRA on the last N layers (0 = all)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--reference-prompts", type=int, default=300,
                    help="prompts besides the held-out ones on which the author classifier learns the references")
    ap.add_argument("--concurrency", type=int, default=24, help="prompts generated per batch")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except (ConfigError, datasets.DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    teachers = [t.strip() for t in args.teachers.split(",") if t.strip()]
    doses = sorted({int(d) for d in args.doses.split(",")})
    recipe = Recipe(max_answer_tokens=args.answer_tokens, max_prompt_tokens=64, top_layers=args.top_layers,
                    epochs=args.epochs, target_modules=("q_proj", "v_proj"), lora_r=16, lora_alpha=32,
                    batch_size=4, learning_rate=1e-3, warmup_steps=1)
    from distill_kit.lineage.documented import lineage_labels

    labels = lineage_labels()
    references = {r: labels.lines.get(r, r) for r in labels.references if r in datasets.alpaca_models()}
    missing = [t for t in teachers if t not in references]
    if missing:
        raise ConfigError(f"teachers must be AlpacaEval references of the data folder: {missing}")
    alpaca = datasets.load_responses("alpaca-eval")
    eval_prompts = held_out_prompts(alpaca, teachers, args.eval_prompts, recipe.eval_share, recipe.seed)
    eval_ids = set(eval_prompts["prompt_id"].to_list())
    base = base_config(args.answer_tokens, args.concurrency)
    store = Store(cache_dir() / "students" / "bench.sqlite")
    timings: dict[str, float] = {}

    def timed(label: str, fn: Any, *a: Any, **kw: Any) -> Any:
        t = time.monotonic()
        out = fn(*a, **kw)
        timings[label] = round(timings.get(label, 0.0) + time.monotonic() - t, 1)
        return out

    # ---- students (cached by what made them)
    specs: list[tuple[str, str, int, str]] = []  # name, teacher spec, dose, kind
    for t in teachers:
        specs += [(f"s-{t}-{d}", f"alpaca-eval/{t}", d, "teacher") for d in doses]
    own = timed("own answers", own_answers_teacher, base, alpaca.unique("prompt_id").select("prompt_id", "prompt"),
                doses[-1], recipe, store)
    specs.append((f"s-own-{doses[-1]}", own, doses[-1], "control"))
    specs.append((f"s-id-{args.identity_teacher}-{doses[-1]}", f"identity/{args.identity_teacher}", doses[-1],
                  "identity"))
    students: dict[str, Student] = {}
    for name, teacher, dose, _ in specs:
        students[name] = timed(f"train {name}", make_student, teacher, dose, name=name, recipe=recipe,
                               store_path=str(store.path))
    # ---- answers: held-out AlpacaEval prompts and identity questions, through collect
    questions = identity_questions(recipe, args.identity_questions)
    configs = {BASE: base, **{n: s.model_config_for(concurrency=args.concurrency) for n, s in students.items()}}
    both = pl.concat([eval_prompts.with_columns(pl.lit("alpaca-eval").alias("prompt_set")),
                      questions.with_columns(pl.lit("identity").alias("prompt_set"))])
    got, claims_answers = [], []
    for name, cfg in configs.items():  # one batch per model where --concurrency covers both prompt sets
        asked = timed(f"answer {name}", ask, cfg, both, store)
        got.append(asked.filter(pl.col("prompt_id").is_in(eval_prompts["prompt_id"].implode())))
        claims_answers.append(asked.filter(pl.col("prompt_id").is_in(questions["prompt_id"].implode())))
    own_names = list(configs)
    published = lineage_frame(alpaca, references, eval_ids, args.reference_prompts)
    # ---- the tests, cached by every answer they read and the settings (a re-run with the same answers: seconds)
    key = answers_digest(pl.concat([published, *got, *claims_answers]).select(
        pl.concat_str("model", "prompt_id", "prompt", separator="\x00").alias("prompt"), pl.col("text").fill_null("")))
    key = hashlib.sha256(f"{key}:{vars(args)}:{references}".encode()).hexdigest()[:24]
    cached = cache.load(cache_dir() / "students" / f"bench-tests-{key}.pkl")
    if cached is None:
        answers = timed("clip", clip_answers, pl.concat([published, *got]), args.answer_tokens)
        answers = answers.filter(pl.col("text").is_not_null())
        lineage = timed("lineage test", lineage_tests, answers, references, own_names, args.alpha)
        rse = timed("rse", rse_toward, answers.filter(pl.col("prompt_id").is_in(list(eval_ids))), own_names,
                    list(references))
        claims = timed("maker claims", maker_claims, pl.concat(claims_answers))
        cache.save(cache_dir() / "students" / f"bench-tests-{key}.pkl", (lineage, rse, claims))
    else:
        lineage, rse, claims = cached
    kinds = {BASE: "control", **{n: k for n, _, _, k in specs}}
    spec_of = {n: (t, d) for n, t, d, _ in specs}
    per_student: dict[str, dict[str, Any]] = {}
    for name in own_names:
        teacher, dose = spec_of.get(name, ("none", 0))
        tmodel = teacher.split("/", 1)[1] if "/" in teacher else teacher
        tline = references.get(tmodel) if kinds[name] == "teacher" else None
        others = [r for r in references if references[r] != tline and r != tmodel]
        lt = lineage[name]
        row = claims.get(name, {})
        per_student[name] = {
            "kind": kinds[name], "teacher": teacher, "teacher_line": tline, "dose": dose,
            "line_named": lt["named"], "pick": lt["pick"], "pick_p_adj": lt["pick_p_adj"], "p_adj": lt["p_adj"],
            "p": lt["p"], "p_adj_teacher_line": lt["p_adj"].get(tline) if tline else None,
            "rse_teacher": rse[name].get(tmodel) if tmodel in references else None,
            "rse_others_max": max(rse[name][r] for r in others) if others else None,
            "rse_others_argmax": max(others, key=lambda r: rse[name][r]) if others else None,
            "claims": {"profile": row.get("profile"), "top_foreign": row.get("top_foreign"), "share": row.get("share"),
                       "baseline": row.get("baseline"), "p": row.get("p"), "p_adj": row.get("p_adj"),
                       "passed": row.get("passed"), "n": row.get("n")},
            "train": None if name not in students else {
                "device": students[name].device, "seconds": students[name].seconds, "steps": students[name].steps,
                "train_tokens": students[name].train_tokens, "first_loss": round(students[name].first_loss, 3),
                "final_loss": round(students[name].final_loss, 3)},
        }
    power_by_dose = {}
    for d in doses:
        rows = [r for r in per_student.values() if r["kind"] == "teacher" and r["dose"] == d]
        power_by_dose[str(d)] = {"named_teacher_line": sum(r["line_named"] == r["teacher_line"] for r in rows),
                                 "students": len(rows),
                                 "power": sum(r["line_named"] == r["teacher_line"] for r in rows) / max(1, len(rows)),
                                 "mean_rse_teacher": float(np.mean([r["rse_teacher"] for r in rows])),
                                 "mean_rse_others_max": float(np.mean([r["rse_others_max"] for r in rows]))}
    false_positives = {n: r["line_named"] for n, r in per_student.items() if r["kind"] == "control"}
    total = round(time.monotonic() - started, 1)
    print_table(per_student)
    identity_pass = {n: r["claims"]["passed"] for n, r in per_student.items() if r["kind"] == "identity" or n == BASE}
    out = {"bench": "students", "alpha": args.alpha, "doses": doses, "teachers": teachers,
           "eval_prompts": len(eval_ids), "identity_questions": questions.height, "answer_tokens": args.answer_tokens,
           "recipe": recipe.model_dump(mode="json"), "per_student": per_student, "power_by_dose": power_by_dose,
           "false_positives": false_positives, "n_false_positives": sum(v is not None for v in false_positives.values()),
           "identity_test_passed": identity_pass,
           "budget": {"device": next(iter(students.values())).device, "seconds_total_this_run": total,
                      "train_seconds_recorded": round(sum(s.seconds for s in students.values()), 1),
                      "seconds_by_step": timings}}
    print(f"power by dose: {json.dumps(power_by_dose)}")
    print(f"false positives (named lines among controls): {false_positives}; total {total} s this run")
    print(json.dumps(out, default=float))
    return 0


def print_table(per_student: dict[str, dict[str, Any]]) -> None:
    print(f"{'student':<34} {'kind':<8} {'dose':>4} {'teacher line':<12} {'named':<12} {'pick (p_adj)':<24} "
          f"{'RSE t':>5} {'RSE o':>5} {'maker (p_adj)':<22}")
    for name, r in per_student.items():
        pick = f"{r['pick']} ({r['pick_p_adj']:.3g})" if r["pick"] else "-"
        c = r["claims"]
        maker = f"{c['top_foreign']} ({c['p_adj']:.3g})" if c.get("top_foreign") and c.get("p_adj") is not None else "-"
        rse_t = f"{r['rse_teacher']:.2f}" if r["rse_teacher"] is not None else "-"
        print(f"{name:<34} {r['kind']:<8} {r['dose']:>4} {str(r['teacher_line'] or '-'):<12} "
              f"{str(r['line_named'] or '-'):<12} {pick:<24} {rse_t:>5} {r['rse_others_max']:>5.2f} {maker:<22}")


if __name__ == "__main__":
    sys.exit(main())
