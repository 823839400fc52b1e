"""ICE LLM judge vs the paper's GPT-4o-mini loose labels, on a class-balanced sample of published answers.

    DISTILL_KIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_identity_llm.py \
        [--model smollm2-local] [--per-class 20] [--models deepseek-chat,qwen-max-0919,phi-4]

Any model in configs/models.yaml can be the judge (API models read their key from the environment). Every
verdict goes through collect + the response store, so a re-run costs nothing and an interrupted run resumes.
Reports how many verdicts could be parsed (unparseable ones are never counted as 0), then accuracy and
Cohen's kappa on the parsed ones, and seconds per verdict. Prints a table, then one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import polars as pl

from distill_kit import config, datasets, models
from distill_kit.ice import scores
from distill_kit.ice.judges import LLMQuestion
from distill_kit.store import Store


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-local", help="judge model (configs/models.yaml)")
    ap.add_argument("--per-class", type=int, default=20, help="answers sampled per label value")
    ap.add_argument("--models", default="deepseek-chat,qwen-max-0919,phi-4", help="published models to sample from")
    ap.add_argument("--max-chars", type=int, default=1200, help="skip longer answers (small judges' context)")
    ap.add_argument("--max-tokens", type=int, default=160, help="judge reply length cap")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    frame = datasets.identity_responses(config.split_names(args.models))
    frame = frame.filter(pl.col("response").str.len_chars() <= args.max_chars)
    sample = pl.concat([frame.filter(pl.col("loose_label") == v).sample(args.per_class, seed=args.seed)
                        for v in (True, False)])
    facts = datasets.identity_facts()
    judge_cfg = models.get_model(args.model)
    judge_cfg = judge_cfg.with_params(max_tokens=args.max_tokens)
    t = time.perf_counter()
    with Store() as store:
        verdicts = LLMQuestion(judge_cfg, store, "loose").judge_many(
            sample["response"].to_list(), [facts[f] for f in sample["family"].to_list()])
    seconds = time.perf_counter() - t
    labels = sample["loose_label"].to_list()
    parsed = [i for i, v in enumerate(verdicts) if v.value is not None]
    status = {s: sum(v.status == s for v in verdicts) for s in ("ok", "unparseable", "error")}
    agree = scores.agreement([verdicts[i].value for i in parsed], [labels[i] for i in parsed]) if parsed else {}
    out = {"bench": "identity_llm", "judge": args.model, "n": len(verdicts), "parsed": len(parsed),
           "parse_rate": len(parsed) / len(verdicts), "status": status,
           "accuracy_parsed": agree.get("accuracy"), "kappa_parsed": agree.get("kappa"),
           "attempts_mean": sum(v.attempts for v in verdicts) / len(verdicts),
           "seconds": seconds, "seconds_per_verdict": seconds / len(verdicts), "sample_models": args.models}
    print(f"LLM identity judge {args.model!r} vs GPT-4o-mini loose labels ({len(verdicts)} answers, balanced)")
    print(f"  parsed verdicts   {len(parsed)}/{len(verdicts)}  (ok {status['ok']}, unparseable {status['unparseable']}, "
          f"error {status['error']}; mean attempts {out['attempts_mean']:.2f})")
    if parsed:
        print(f"  on parsed         accuracy {agree['accuracy']:.3f}  kappa {agree['kappa']:.3f}")
    print(f"  time              {seconds:.0f} s ({out['seconds_per_verdict']:.1f} s per answer, incl. retries; "
          "0 when every verdict is already in the store)")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
