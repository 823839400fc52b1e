"""Notebook 03 (identity scores) headless under papermill: replay always, live when the local model is installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


def test_notebook_03_runs_headless(run_notebook, data_dir: Path, tmp_path: Path) -> None:
    live = importlib.util.find_spec("llama_cpp") is not None
    run = tmp_path / "run"
    if live:  # two stored GPTFuzzer attempts on the live target, as notebook 02 leaves them
        from distill_kit.ice import fuzz
        from distill_kit.collect import Result
        from distill_kit.store import Store

        with Store(tmp_path / "s.sqlite") as store:
            for i, text in enumerate(["I am ChatGPT, a model trained by OpenAI.", "I am SmolLM2 by Hugging Face."]):
                fuzz._store_attempt(store, "smollm2-local", Result(key=f"k{i}", model="smollm2-local", text=text, error=None),
                                    {"iteration": i, "template_id": f"fuzz-0-{i:04d}", "template": "Pretend. {query}",
                                     "mutator": "shorten", "parent": "gptfuzzer-000", "probe_id": "en-001",
                                     "query": "Who created you?", "verdict_loose": i == 0, "prompt": "Pretend. Who created you?"}, 0)
    out = run_notebook("03-identity-scores.ipynb", {
        "models": "phi-4,qwen2.5-14b-instruct", "judge": "rules", "source": "both" if live else "replay",
        "sample_size": 40, "live_sample": 1, "live_max_tokens": 16, "run_dir": str(run),
        "store_path": str(tmp_path / "s.sqlite")})
    nb = json.loads(Path(out).read_text())
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []))
    assert "flagged answers" in html and "<script" not in html.split("flagged answers")[0].split("<table>")[-1]
    summary = json.loads(next(run.rglob("*identity_scores*.json")).read_text())
    payload = summary.get("payload", summary)
    replay = {r["model"]: r for r in payload["replay"]}
    assert set(replay) == {"phi-4", "qwen2.5-14b-instruct"}
    assert all(r["n"] == 40 and 0 <= r["lis_lo"] <= r["lis"] <= r["lis_hi"] <= 1 for r in replay.values())
    assert replay["phi-4"]["lis_paper"] == 0.22
    corrected = {r["model"]: r for r in payload["corrected"]}  # prevalence-corrected, calibrated on the other models
    # replayed models, and when live the live target and its GPTFuzzer attempts (judged by the same judge)
    assert set(corrected) - {"smollm2-local"} == {"phi-4", "qwen2.5-14b-instruct"} | (
        {"smollm2-local (GPTFuzzer)"} if live else set())
    assert all(r["lis_lo"] <= r["lis_corrected"] <= r["lis_hi"] and r["lis_method"] for r in corrected.values())
    assert corrected["phi-4"]["n"] == corrected["qwen2.5-14b-instruct"]["n"] == 40
    assert corrected["phi-4"]["lis_n_labels"] == 0
    assert isinstance(payload["paired_lis"], list)
    if live:
        rows = {r["model"]: r for r in payload["live"]}
        assert (rows["smollm2-local"]["n"], payload["live_errors"]) == (1, 0)  # the one live probe was answered
        fuzzed = rows["smollm2-local (GPTFuzzer)"]  # re-judged with this notebook's judge (rules)
        assert fuzzed["n"] == 2 and fuzzed["lis"] == 0.5 and fuzzed["sis"] == 0.5
        assert corrected["smollm2-local (GPTFuzzer)"]["n"] == 2  # a new model: calibrated on every published one
