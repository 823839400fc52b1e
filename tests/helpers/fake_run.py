"""Run directories for report tests: step summaries built through the summaries models (the shapes notebooks
03-05 really record), a run state, and a store with answers. Fixture data, never shown to users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill_kit.store import Record, Store
from distill_kit.summaries import (
    IdentitySummary,
    LineageSummary,
    SimilaritySummary,
    record_summary,
)

XSS = "<script>alert(1)</script>"
MODELS = ["model-a", "model-b", f"evil{XSS}"]
STUDENT = f"stu{XSS}"
#: notebook stem -> the summary it writes, for the three scoring steps
STEPS = {"03": ("03-identity-scores", IdentitySummary), "04": ("04-response-similarity", SimilaritySummary),
         "05": ("05-embed-and-cluster", LineageSummary)}


def stored_record(key: str, model: str = "m", text: str = "x", prompt: str = "q", usage_out: int = 1,
                  provider: str = "openai") -> Record:
    """One answer as the store keeps it."""
    return Record(key=key, model=model, provider=provider, messages=[{"role": "user", "content": prompt}], params={},
                  sample=0, status="ok", text=text, error=None, attempts=1, usage_in=1, usage_out=usage_out, cost=0.0,
                  latency=0.1, meta={})


def identity_summary(models: list[str] = MODELS, **extra: Any) -> IdentitySummary:
    return IdentitySummary.model_validate({
        "judge": "offline", "source": "replay",
        "replay": [{"model": m, "n": 40, "lis": 0.1 * (i + 1), "lis_lo": 0.05 * (i + 1), "lis_hi": 0.15 * (i + 1),
                    "sis": 0.05 * i, "sis_lo": 0.0, "sis_hi": 0.1 * (i + 1)} for i, m in enumerate(models)],
        **extra})


def similarity_summary(models: list[str] = MODELS, reference: str = "ref", **extra: Any) -> SimilaritySummary:
    sims = [[1.0, 0.4, 0.2], [0.4, 1.0, 0.6], [0.2, 0.6, 1.0]]
    rows = [{"test_model": m, "mean": 2.5 + i, "mean_lo": 2.0 + i, "mean_hi": 3.0 + i} for i, m in enumerate(models)]
    return SimilaritySummary.model_validate({
        "prompt_sets": ["alpaca-eval"], "reference": reference, "judge": "offline", "sample_size": 10, "seed": 1,
        "rse_table": [{**r, "alpaca-eval": r["mean"], "n_alpaca-eval": 10} for r in rows],
        "rse_by_granularity": {g: [{**r, "mean": r["mean"] + d} for r in rows]
                               for g, d in (("style", -0.5), ("structure", 0.0), ("content", 0.5))},
        "matrices": {"overall": [{"model": a, **dict(zip(models, sims[i % 3]))} for i, a in enumerate(models)]},
        "rse_by_reference": {reference: rows},
        **extra})


def lineage_summary(models: list[str] = MODELS, **extra: Any) -> LineageSummary:
    return LineageSummary.model_validate({
        "data_source": "alpaca-eval", "models": models, "sample_size": 20, "seed": 1,
        "umap": [{"model": models[i % 3], "x": float(i % 7), "y": float(i % 5)} for i in range(60)],
        "tree": {"labels": models, "linkage": [[0, 1, 0.3, 2], [2, 3, 0.8, 3]]},
        "attribution": [{"student": STUDENT, "distillation_score": 0.5, "top1": "model-a", "p1": 0.9}],
        "documented_teachers": {STUDENT: "model-a"}, "reference_lines": {"model-a": "a-line"},
        **extra})


def make_fake_run(run_dir: Path, steps: tuple[str, ...] = ("03", "04", "05"), store: bool = True) -> Path:
    """A run directory whose steps ``steps`` finished (config, state, summaries) and, with ``store``, a
    ``store.sqlite`` holding one answer with markup in it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"name": "fixture", "description": f"fixture run {XSS}", "seed": 1,
           "steps": [{"notebook": s} for s in steps] + [{"notebook": "06"}]}
    (run_dir / "config.json").write_text(json.dumps(cfg))
    state = {"steps": {STEPS[s][0]: {"status": "ok", "seconds": 1.0, "summaries": [STEPS[s][1].step]} for s in steps}}
    (run_dir / "state.json").write_text(json.dumps(state))
    builders = {"03": identity_summary, "04": similarity_summary, "05": lineage_summary}
    for s in steps:
        record_summary(str(run_dir), builders[s]())
    if store:
        with Store(run_dir / "store.sqlite") as st:
            st.put(stored_record("k1", MODELS[2], f"I am {XSS} GPT", "Who made you?"))
    return run_dir


def set_state(run_dir: Path, **steps: dict) -> None:
    """Overwrite the run state of the named notebook stems (a killed step: ``{"status": "running"}``)."""
    state = json.loads((run_dir / "state.json").read_text())
    state["steps"].update(steps)
    (run_dir / "state.json").write_text(json.dumps(state))
