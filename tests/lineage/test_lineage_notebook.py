"""Notebook 05 runs headlessly under papermill on a small sample and records its scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_notebook_05_small_sample(run_notebook, data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    models = ["text_davinci_003", "gpt-3.5-turbo-0301", "claude-2", "Meta-Llama-3-8B-Instruct",
              "alpaca-7b", "SPPO-Llama-3-Instruct-8B-PairRM", "wizardlm-13b", "guanaco-33b"]
    out = run_notebook(
        "05-embed-and-cluster.ipynb",
        {"models": models, "sample_size": 24, "attribution_sample_size": 80, "seed": 1, "run_dir": str(run_dir)},
    )
    summary = json.loads((run_dir / "summary" / "05-embed-and-cluster.json").read_text())
    assert summary["models"] == models
    assert {r["set"] for r in summary["homogenisation"]} >= {"all models", "references"}
    assert all(0.0 <= r["index"] <= 1.0 for r in summary["homogenisation"])
    table = {r["student"]: r for r in summary["attribution"]}
    assert set(table) == {"alpaca-7b", "SPPO-Llama-3-Instruct-8B-PairRM", "wizardlm-13b", "guanaco-33b"}
    assert all(0.0 <= r["p1"] <= 1.0 for r in table.values())
    assert summary["attribution_metrics"]["n"] == 3
    # three documented students: each one's confidence is calibrated on the other two, not on siblings
    assert summary["calibration"]["labelled_n"] == 3
    # the vote attribution (headline): every target voted on, hub correction off (no line has two candidates here)
    votes = {r["target"]: r for r in summary["vote_attribution"]}
    assert set(votes) == set(table) and summary["vote_method"] == "word/hard/sum"
    assert all(0.0 < r["confidence"] <= 1.0 and r["line"] for r in votes.values())
    assert 0.0 <= summary["attribution_metrics"]["vote_top1_line"] <= 1.0
    # the lineage test: every target tested against the documented unrelated pairs (the references held out too)
    tests = {r["target"]: r for r in summary["lineage_test"]}
    assert set(tests) == set(table) and summary["lineage_test_alpha"] == 0.05 and summary["lineage_test_note"] is None
    assert all(0.0 <= r["p"] <= r["p_adj"] <= 1.0 and r["named"] == (r["p_adj"] < 0.05) for r in tests.values())
    assert tests["alpaca-7b"]["documented_line"] == "davinci" and tests["guanaco-33b"]["documented_line"] is None
    assert set(summary["lineage_test_null_models"]) == set(models)  # every documented model builds the null
    assert 1 / 7 < summary["who_wrote_accuracy"] <= 1.0  # better than chance on held-out prompts
    assert sorted(summary["tree_leaves"]) == sorted(models)
    assert sorted(summary["tree"]["labels"]) == sorted(models) and len(summary["tree"]["linkage"]) == len(models) - 1
    assert {p["model"] for p in summary["umap"]} == set(models)  # the report draws its map from these
    cells = json.loads(out.read_text())["cells"]
    assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))
