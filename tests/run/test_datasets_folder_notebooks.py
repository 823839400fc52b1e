"""Notebooks 03, 04, 05 and 06 on an open data folder (unregistered model, missing registered file, own lineage),
and the paper's results beside ours in the report: ICE x RSE with sourced points and the two side-by-side tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers.open_folder import USER_MODEL, build_open_folder


@pytest.mark.slow
def test_notebooks_and_report_on_an_open_folder(run_notebook, data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    folder = build_open_folder(data_dir, tmp_path / "data")
    monkeypatch.setenv("DISTILL_KIT_DATA_DIR", str(folder))  # the kernels inherit it
    run = tmp_path / "run"
    store = str(tmp_path / "s.sqlite")
    run_notebook("03-identity-scores.ipynb", {"judge": "rules", "source": "replay", "sample_size": 60,
                                              "run_dir": str(run), "store_path": store})
    ice = json.loads((run / "summary" / "03-identity-scores.json").read_text())
    assert {r["model"] for r in ice["replay"]} >= {USER_MODEL, "phi-4", "qwen2.5-14b"}
    assert "qwen2.5-72b" not in {r["model"] for r in ice["replay"]}  # the registered file the folder lacks
    assert {(r["model"], r["kind"]) for r in ice["base_vs_instruct"]} == {("qwen2.5-14b", "base"), ("qwen2.5-14b-instruct", "instruct")}

    run_notebook("04-response-similarity.ipynb", {
        "models": [USER_MODEL, "alpaca-7b", "vicuna-7b-v1.5"], "reference": "gpt-3.5-turbo-0301", "content": False,
        "sample_size": 8, "paper_prompts": 8, "run_dir": str(run), "store_path": store})
    rse = json.loads(next((run / "summary").glob("04*.json")).read_text())
    side = {r["paper_name"]: r for r in rse["paper_rse"]["rows"]}
    assert side["Llama3.1-70B-Instruct"]["our_rse"] is not None and side["Llama3.1-70B-Instruct"]["paper_rse"] == 3.628
    assert side["Doubao-Pro-32k"]["our_rse"] is None  # no AlpacaEval counterpart: not made up
    assert rse["paper_rse"]["stats"]["n"] == 6 and -1 <= rse["paper_rse"]["stats"]["spearman_rho"] <= 1

    run_notebook("05-embed-and-cluster.ipynb", {
        "models": ["alpaca-7b", USER_MODEL, "text_davinci_003", "gpt-3.5-turbo-0301", "claude-2", "guanaco-33b"],
        "sample_size": 12, "attribution_sample_size": 60, "run_dir": str(run)})
    emb = json.loads((run / "summary" / "05-embed-and-cluster.json").read_text())
    assert USER_MODEL in {r["student"] for r in emb["attribution"]}  # a student per the folder's own lineage

    run_notebook("06-report.ipynb", {"run_dir": str(run), "static_formats": []})
    page = (run / "report.html").read_text()
    section = re.search(r'<section id="ice-rse" class="ran">(.*?)</section>', page, re.S).group(1)
    assert "The paper's RSE table beside ours" in section and "base vs instruct" in section
    assert section.count(">paper<") >= 5 and section.count(">measured<") >= 2
    # the combined figure: recorded by the report step only, from step 03's scores and step 04's RSE
    assert "ice_x_rse" not in ice and "ice_x_rse" not in rse
    rows = json.loads((run / "summary" / "06-report.json").read_text())["ice_x_rse"]
    assert len(rows) >= 7 and {r["rse_source"] for r in rows} == {"paper", "measured"}
    assert set(rows[0]) >= {"model", "lis", "lis_ci", "rse", "rse_source"}
    paper_points = [r for r in rows if r["rse_source"] == "paper"]
    assert {r["model"] for r in paper_points} == {"llama-3.1-70b-instruct", "claude-3-5-sonnet-20241022", "phi-4",
                                                  "deepseek-chat", "qwen-max-0919"}
    assert all(r["lis_ci"][0] <= r["lis"] <= r["lis_ci"][1] for r in paper_points)
    measured = {r["model"] for r in rows if r["rse_source"] == "measured"}
    # the two AlpacaEval lines of paper models, and the user's model (scored under its own name by both steps)
    assert measured == {"llama-3.1-70b-instruct", "claude-3-5-sonnet-20241022", USER_MODEL}
