"""Notebook 04 runs headlessly under papermill on a small sample and records its scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "04-response-similarity.ipynb"


def test_notebook_04_declares_its_parameters_in_the_shared_vocabulary() -> None:
    """Papermill reads every parameter (a second '=' on a line, e.g. in a comment, would hide it from the
    runner) with the vocabulary's types: lists of names are lists."""
    import papermill as pm

    params = pm.inspect_notebook(str(NOTEBOOK))
    assert len(params) == 22
    types = {name: p["inferred_type_name"] for name, p in params.items()}
    for name in ("prompt_sets", "models", "live_models", "judge_panel", "compare", "extra_references"):
        assert types[name] == "list", name
    for name in ("judge_prompts", "sample_size", "seed", "drilldown_n", "paper_prompts", "max_tokens"):
        assert types[name] == "int", name
    assert all(p["help"] for p in params.values())  # every parameter says what it means


@pytest.mark.slow
def test_notebook_04_small_sample(run_notebook, data_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run_notebook(
        "04-response-similarity.ipynb",
        {
            "models": ["gpt4_0613", "vicuna-7b-v1.5", "guanaco-33b"],
            "reference": "gpt4_1106_preview",
            "sample_size": 5,
            "seed": 1,
            "drilldown_n": 2,
            "run_dir": str(run_dir),
            "store_path": str(tmp_path / "store.sqlite"),
        },
    )
    summary = json.loads((run_dir / "summary" / "04-response-similarity.json").read_text())
    table = {r["test_model"]: r for r in summary["rse_table"]}
    assert set(table) == {"gpt4_0613", "vicuna-7b-v1.5", "guanaco-33b"}
    for row in table.values():
        assert 1.0 <= row["mean_lo"] <= row["mean"] <= row["mean_hi"] <= 5.0
        assert row["n_alpaca-eval"] == 5
    assert set(summary["matrices"]) == {"style", "structure", "content", "overall"}
    diag = {r["model"]: r[r["model"]] for r in summary["matrices"]["overall"]}
    assert all(v == pytest.approx(5.0) for v in diag.values())
    paired = summary["paired_rse"]  # neighbours in the ranking, paired on the same prompts, Holm-adjusted
    assert len(paired) == 2 and all(r["n"] == 5 and r["p_holm"] >= r["p_value"] for r in paired)
    assert "gpt4_1106_preview" in summary["rse_by_reference"]
    html = "".join(
        "".join(o.get("data", {}).get("text/html", ""))
        for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])
    )
    assert "reference: gpt4_1106_preview" in html  # the drill-down rendered
