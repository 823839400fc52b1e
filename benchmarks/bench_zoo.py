"""The paper's protocol end to end, at its scale, offline: configs/runs/paper.yaml against the API zoo.

Every model call goes through the real openai / anthropic SDKs over loopback HTTP to distill_kit.testing,
which answers as the paper's published models and, as the GPT-4o-mini judge, with the published
labels. Prints the run time per step and whether the reproduced LIS / SIS of every published model
equal the scores of the published labels. ``--batch`` sends the API models through the batch APIs.

    python benchmarks/bench_zoo.py [--batch] [--steps 02,03] [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from distill_kit import datasets
from distill_kit.paths import PROJECT_ROOT
from distill_kit.config import read_yaml
from distill_kit.run import pipeline, plan
from distill_kit.testing import ZooServer


def label_conflicts() -> dict[str, int]:
    """Answers per model whose judge input (fact + text) also appears with the other published label:
    one request, one verdict, so no judge can reproduce both labels."""
    frame = datasets.identity_responses()
    facts = datasets.identity_facts()
    labels: dict[tuple[str, str], set[bool]] = {}
    for fam, resp, lab in frame.select("family", "response", "loose_label").iter_rows():
        labels.setdefault((facts.get(fam or "", ""), (resp or "").strip()), set()).add(bool(lab))
    out: Counter = Counter()
    for model, fam, resp in frame.select("model", "family", "response").iter_rows():
        if len(labels[(facts.get(fam or "", ""), (resp or "").strip())]) > 1:
            out[model] += 1
    return dict(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", action="store_true", help="API models through the batch APIs")
    ap.add_argument("--steps", default="", help="comma-separated step numbers to keep (default: all)")
    ap.add_argument("--runs-dir", default="", help="where the run directory goes (default: a temp dir)")
    args = ap.parse_args()
    raw = read_yaml(PROJECT_ROOT / "configs" / "runs" / "paper.yaml")
    if args.steps:
        keep = set(args.steps.split(","))
        raw["steps"] = [s for s in raw["steps"] if s["notebook"] in keep]
    raw["models_overlay"] = "configs/overlays/zoo.yaml"
    raw["batch"] = args.batch
    cfg = plan.RunConfig.model_validate(raw)
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="bench-zoo-"))
    with ZooServer() as zoo:
        os.environ["DISTILL_KIT_ZOO_URL"] = zoo.root_url
        os.environ.setdefault("DISTILL_KIT_ZOO_KEY", "zoo")
        t0 = time.perf_counter()
        result = pipeline.run_pipeline(cfg, runs_dir)
        seconds = time.perf_counter() - t0
        stats = zoo.stats
    state = json.loads((result.run_dir / "state.json").read_text())
    summary = json.loads(result.summary.read_text())
    print(f"paper config against the zoo: {seconds:.0f} s on this machine; {stats.chat} chat requests, "
          f"{stats.batches_created} batches ({stats.batch_requests} requests), max {stats.max_in_flight} in flight")
    for name, st in state["steps"].items():
        print(f"  {name}: {st.get('seconds')} s")
    rows = summary["steps"].get("identity_scores", {}).get("replay", [])
    conflicts = label_conflicts()
    checks = []
    print(f"{'model':<28} {'n':>5} {'LIS':>7} {'labels':>7} {'SIS':>7} {'labels':>7}  equal")
    for r in rows:
        eq = abs(r["lis"] - r["lis_labels"]) < 1e-12 and abs(r["sis"] - r["sis_labels"]) < 1e-12
        note = "" if eq else f"  ({conflicts.get(r['model'], 0)} answers share a judge input with the other label)"
        print(f"{r['model']:<28} {r['n']:>5} {r['lis']:>7.3f} {r['lis_labels']:>7.3f} {r['sis']:>7.3f} "
              f"{r['sis_labels']:>7.3f}  {'yes' if eq else 'NO'}{note}")
        checks.append({"model": r["model"], "n": r["n"], "lis": r["lis"], "lis_labels": r["lis_labels"],
                       "sis": r["sis"], "sis_labels": r["sis_labels"], "equal": eq,
                       "label_conflicts": conflicts.get(r["model"], 0)})
    print(json.dumps({"benchmark": "paper_on_zoo", "seconds": round(seconds, 1), "batch": args.batch,
                      "chat_requests": stats.chat, "batch_requests": stats.batch_requests,
                      "steps": {k: v.get("seconds") for k, v in state["steps"].items()}, "lis_sis": checks,
                      "run_dir": str(result.run_dir)}))


if __name__ == "__main__":
    main()
