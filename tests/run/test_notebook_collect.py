"""Notebook 02 runs headless under papermill against the real local model and fills the store."""

from __future__ import annotations

import json

import pytest

from distill_kit.ice import fuzz
from distill_kit.store import Store

pytestmark = pytest.mark.slow


def test_collect_notebook_fills_the_store_and_resumes(run_notebook, tmp_path, data_dir):
    pytest.importorskip("llama_cpp")
    store_path = tmp_path / "store.sqlite"
    params = {"live_models": ["smollm2-local"], "probe_sample_size": 1, "seed_templates": 1, "sample_size": 1,
              "max_tokens": 16, "store_path": str(store_path), "run_dir": str(tmp_path / "run")}
    run_notebook("02-collect-responses.ipynb", params)
    store = Store(store_path)
    # 2 probes (en, zh) x (bare + 1 template) + 1 RSE prompt
    assert store.count(model="smollm2-local", status="ok") == 5
    frame = store.frame()
    assert set(frame.filter(frame["probe_id"].is_not_null())["language"]) == {"en", "zh"}
    summary = json.loads((tmp_path / "run" / "summary" / "02-collect-responses.json").read_text())
    assert summary["identity_prompts_per_model"] == 4 and summary["usage"][0]["tokens_out"] > 0
    run_notebook("02-collect-responses.ipynb", params)  # second run: everything comes from the store
    assert Store(store_path).count() == 5
    assert Store(store_path).frame()["attempts"].max() == 1


def test_collect_notebook_runs_the_fuzzer_when_asked(run_notebook, tmp_path, data_dir):
    pytest.importorskip("llama_cpp")
    store_path = tmp_path / "store.sqlite"
    run_notebook("02-collect-responses.ipynb", {
        "live_models": ["smollm2-local"], "probe_sample_size": 1, "seed_templates": 0, "prompt_sets": [],
        "max_tokens": 16, "fuzz_queries": 2, "store_path": str(store_path), "run_dir": str(tmp_path / "run")})
    summary = json.loads((tmp_path / "run" / "summary" / "02-collect-responses.json").read_text())
    [row] = summary["fuzz"]["smollm2-local"]  # budget 2 = one mutant asked two probes
    assert row["attempts"] == 2 and row["judged"] == 2
    with Store(store_path) as store:  # every attempt stored with its verdict, in the fuzz table
        assert fuzz.stored_attempts(store, "smollm2-local").height == 2
        assert fuzz.stored_attempts(store, "smollm2-local")["verdict"].is_not_null().all()
