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


def clip_answers(frame: pl.DataFrame, max_tokens: int, base: str = "") -> pl.DataFrame:
    """``frame`` with every ``text`` cut to its first ``max_tokens`` tokens of the base's tokenizer.

    Why: a student generates (and was trained on) at most ``max_tokens`` tokens, while published answers run to
    hundreds; compared as they are, answer length alone would tell students from references. Clipped alike,
    every comparison is between answer openings of the same length."""
    from distill_kit.providers.transformers import dequantized_folder, require, resolve_base

    tokenizer = require("transformers").AutoTokenizer.from_pretrained(str(dequantized_folder(resolve_base(base))))
    texts = frame["text"].to_list()
    present = [i for i, t in enumerate(texts) if t]
    ids = tokenizer([texts[i] for i in present], add_special_tokens=False)["input_ids"]
    clipped = list(texts)
    for i, row in zip(present, ids):
        if len(row) > max_tokens:
            clipped[i] = tokenizer.decode(row[:max_tokens]).strip()
    return frame.with_columns(pl.Series("text", clipped, dtype=pl.Utf8))


def rse_toward(answers: pl.DataFrame, students: list[str], references: list[str]) -> dict[str, dict[str, float]]:
    """student -> reference -> offline RSE (1-5, the mean of style, structure and content) averaged over the
    prompts both answered (:mod:`distill_kit.rse.offline_judge`)."""
    import numpy as np

    from distill_kit.rse.offline_judge import build_profiles, pairwise_scores

    models = list(dict.fromkeys([*students, *references]))
    prof = build_profiles(answers.filter(pl.col("model").is_in(models)), models, progress=False)
    overall = pairwise_scores(prof).likert("overall")
    idx = {m: i for i, m in enumerate(prof.models)}
    return {s: {r: float(np.nanmean(overall[idx[s], idx[r]])) for r in references} for s in students}
