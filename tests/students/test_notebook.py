"""Notebook 07 runs end to end on a micro student (papermill; slow: a kernel, the base model)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nbformat
import pytest

from tests.helpers.installed import needs

pytestmark = needs("peft")


@pytest.mark.slow
def test_notebook_07_trains_probes_and_prints_the_overlay(run_notebook: Callable[..., Path], tmp_path: Path,
                                                          data_dir: Path) -> None:
    out = run_notebook("07-known-lineage-students.ipynb", {
        "dose": 2, "eval_sample_size": 2, "max_tokens": 8, "recipe": {"top_layers": 1, "batch_size": 2},
        "store_path": str(tmp_path / "store.sqlite")})
    text = "\n".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "teacher alpaca-eval/gpt4_0613, dose 2 pairs" in text
    assert "provider: transformers" in text and "adapter:" in text
