"""Probe a model (a student, its base, any configured model) on prompts through ``collect``: answers are stored,
a re-run reads them back, a killed run resumes. Returns the one response schema of :mod:`distill_kit.datasets`.

Why here and not in a notebook: the benchmark, notebook 07 and the CLI ask the same prompts the same way (RSE's
``collect_responses`` does the asking; this adds the prompt ids and set name a plain list lacks).
"""

from __future__ import annotations

import polars as pl

from distill_kit.config import ModelConfig
from distill_kit.datasets import prompt_key
from distill_kit.rse.responses import collect_responses
from distill_kit.store import Store


def ask(model: ModelConfig, prompts: pl.DataFrame | list[str], store: Store, prompt_set: str = "") -> pl.DataFrame:
    """One row per prompt, ``model, prompt_id, prompt, text`` (``text`` None where the request failed: stored as
    an error and retried by the next run). ``prompts``: strings, or a frame with ``prompt`` (and ``prompt_id``)."""
    if isinstance(prompts, list):
        prompts = pl.DataFrame({"prompt": prompts}, schema={"prompt": pl.Utf8})
    if "prompt_id" not in prompts.columns:
        prompts = prompts.with_columns(pl.col("prompt").map_elements(prompt_key, return_dtype=pl.Utf8)
                                       .alias("prompt_id"))
    if "prompt_set" not in prompts.columns:
        prompts = prompts.with_columns(pl.lit(prompt_set).alias("prompt_set"))
    return collect_responses(model, prompts, store)
