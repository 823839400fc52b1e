"""Notebook 03 (identity scores) headless under papermill: replay, and live against the local model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.identity import store_attempts

pytestmark = pytest.mark.slow

REPLAYED = ["phi-4", "qwen2.5-14b-instruct"]


def run_03(run_notebook, tmp_path: Path, **params: Any) -> tuple[dict, str, dict]:
    """Run notebook 03 with the rules judge on two published models; its recorded summary, its HTML outputs and
    the executed notebook."""
    run = tmp_path / "run"
    out = run_notebook("03-identity-scores.ipynb", {
        "models": REPLAYED, "judge": "rules", "sample_size": 40, "run_dir": str(run),
        "store_path": str(tmp_path / "s.sqlite"), **params})
    nb = json.loads(Path(out).read_text())
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []))
    summary = json.loads(next(run.rglob("*03-identity-scores.json")).read_text())
    return summary.get("payload", summary), html, nb


def check_replay(payload: dict) -> dict[str, dict]:
    replay = {r["model"]: r for r in payload["replay"]}
    assert set(replay) == set(REPLAYED)
    assert all(r["n"] == 40 and 0 <= r["lis_lo"] <= r["lis"] <= r["lis_hi"] <= 1 for r in replay.values())
    assert replay["phi-4"]["lis_paper"] == 0.22
    corrected = {r["model"]: r for r in payload["corrected"]}  # prevalence-corrected, calibrated on the other models
    assert all(r["lis_lo"] <= r["lis_corrected"] <= r["lis_hi"] and r["lis_method"] for r in corrected.values())
    assert corrected["phi-4"]["n"] == corrected["qwen2.5-14b-instruct"]["n"] == 40
    assert corrected["phi-4"]["lis_n_labels"] == 0
    assert isinstance(payload["paired_lis"], list)
    makers = {r["model"]: r for r in payload["makers"]}  # whose maker each model claims, and the foreign-maker test
    assert set(REPLAYED) <= set(makers)
    assert all(r["n"] == 40 and abs(sum(r["profile"].values()) - 1) < 1e-9 for m, r in makers.items() if m in REPLAYED)
    assert makers["phi-4"]["own_makers"] == ["microsoft"]
    return corrected


def test_notebook_03_replay(run_notebook, data_dir: Path, tmp_path: Path) -> None:
    payload, html, nb = run_03(run_notebook, tmp_path, source="replay")
    assert "flagged answers" in html and "<script" not in html.split("flagged answers")[0].split("<table>")[-1]
    assert set(check_replay(payload)) == set(REPLAYED) and "live" not in payload
    # the maker profile: one sentence per model, then its chart
    cell = next(c for c in nb["cells"] if "maker_profile_chart" in "".join(c["source"]))
    printed = "".join("".join(o.get("text", "")) for o in cell["outputs"] if o["output_type"] == "stream")
    assert all(f"{m}: " in printed for m in REPLAYED)
    assert any(o["output_type"] == "display_data" and set(o["data"]) - {"text/plain"} for o in cell["outputs"])


def test_notebook_03_live_with_stored_fuzz_attempts(run_notebook, data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the live target is the local model (make setup)")
    from distill_kit.store import Store

    with Store(tmp_path / "s.sqlite") as store:  # two stored GPTFuzzer attempts on the live target, as 02 leaves them
        store_attempts(store, "smollm2-local", ["I am ChatGPT, a model trained by OpenAI.", "I am SmolLM2 by Hugging Face."])
    payload, _, _ = run_03(run_notebook, tmp_path, source="both", live_models=["smollm2-local"], live_probes=1,
                        max_tokens=16)
    corrected = check_replay(payload)
    # the live target and its GPTFuzzer attempts are new models, calibrated on every published one
    assert set(corrected) == set(REPLAYED) | {"smollm2-local", "smollm2-local (GPTFuzzer)"}
    rows = {r["model"]: r for r in payload["live"]}
    assert rows["smollm2-local"]["n"] == 1 and payload["live_errors"] == 0  # the one probe asked, answered and judged
    fuzzed = rows["smollm2-local (GPTFuzzer)"]  # re-judged with this notebook's judge (rules)
    assert fuzzed["n"] == 2 and fuzzed["lis"] == 0.5 and fuzzed["sis"] == 0.5
    assert corrected["smollm2-local (GPTFuzzer)"]["n"] == 2
