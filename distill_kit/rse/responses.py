"""RSE answers: the published answers of a prompt set (replayed) and live ones (collected through the store),
aligned to the prompts by prompt text.

Data flow: ``datasets.prompt_set`` -> answers (``datasets.load_responses`` for published sets, or
``collect_responses`` from a live model through ``collect``) -> ``align_responses`` (by normalised prompt
text, empty answers dropped and counted) -> a :class:`ResponseSet` that both judges read
(:mod:`distill_kit.rse.offline_judge`, :mod:`distill_kit.rse.llm_judge`). Frames follow the one response
schema of :mod:`distill_kit.datasets` (``model, prompt_id, prompt, text``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from distill_kit import datasets


def sampled_prompts(prompt_sets: Sequence[str], sample_size: int, seed: int = 0) -> pl.DataFrame | None:
    """``sample_size`` prompts of each prompt set (0 = all) drawn with ``seed``, one frame (``prompt_set,
    prompt_id, prompt``); None for no prompt sets. What notebook 02's live models answer for the RSE steps."""
    if not prompt_sets:
        return None
    return pl.concat([datasets.prompt_set(name, sample_size=sample_size, seed=seed) for name in prompt_sets])


def answer_requests(prompts: pl.DataFrame, sample: int = 0) -> list[Any]:
    """One request per prompt (``prompt_set, prompt_id, prompt``): the prompt as the user's only message. The one
    place these are built, so the estimate prices exactly what :func:`collect_responses` sends."""
    from distill_kit.collect import ChatRequest

    return [ChatRequest.user(r["prompt"], meta={"prompt_set": r["prompt_set"], "prompt_id": r["prompt_id"]}, sample=sample)
            for r in prompts.iter_rows(named=True)]


def collect_responses(model_cfg: Any, prompts: pl.DataFrame, store: Any, sample: int = 0) -> pl.DataFrame:
    """Ask a live (or replay) model every prompt through ``collect`` and the store -> the response schema
    ``model, prompt_id, prompt, text`` (``text`` None for failed requests, counted later as empty)."""
    from distill_kit.collect import collect_sync

    results = collect_sync(model_cfg, answer_requests(prompts, sample), store)
    return pl.DataFrame(
        {
            "model": [model_cfg.name] * len(results),
            "prompt_id": prompts["prompt_id"].to_list(),
            "prompt": prompts["prompt"].to_list(),
            "text": [r.text if r.ok else None for r in results],
        },
        schema={"model": pl.Utf8, "prompt_id": pl.Utf8, "prompt": pl.Utf8, "text": pl.Utf8},
    )


def answered_line(model: str, answers: pl.DataFrame) -> str:
    """One line per model after :func:`collect_responses`; raises when the model answered none of the prompts
    (an RSE table built on zero answers would be silently empty)."""
    ok = int(answers["text"].is_not_null().sum())
    line = f"{model}: {ok}/{answers.height} RSE prompts answered"
    if answers.height and not ok:
        raise RuntimeError(f"{line}; see the errors in the store (they are retried on the next run)")
    return line


@dataclass
class AlignReport:
    """What ``align_responses`` dropped, per model: prompts with no response row, empty outputs."""

    missing: dict[str, int] = field(default_factory=dict)
    empty: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)

    def merge(self, other: AlignReport) -> None:
        """Add another prompt set's counts to these."""
        for attr in ("missing", "empty", "kept"):
            mine = getattr(self, attr)
            for model, n in getattr(other, attr).items():
                mine[model] = mine.get(model, 0) + n

    def frame(self) -> pl.DataFrame:
        """One row per model: kept, empty, missing."""
        models = sorted(set(self.kept) | set(self.empty) | set(self.missing))
        return pl.DataFrame(
            {
                "model": models,
                "kept": [self.kept.get(m, 0) for m in models],
                "empty": [self.empty.get(m, 0) for m in models],
                "missing": [self.missing.get(m, 0) for m in models],
            },
            schema={"model": pl.Utf8, "kept": pl.Int64, "empty": pl.Int64, "missing": pl.Int64},
        )


def align_responses(prompts: pl.DataFrame, responses: pl.DataFrame) -> tuple[pl.DataFrame, AlignReport]:
    """Join responses to prompts by normalised prompt text (never by position).

    ``responses`` are in the response schema (``model, prompt, text``; a ``prompt_id`` of theirs is ignored:
    the prompt set's id is kept). Returns ``prompt_set, prompt_id, prompt, model, text`` restricted to the
    prompts given, without empty/whitespace-only/None answers, plus an ``AlignReport`` counting per model
    the empty outputs dropped and the prompts that had no answer at all.
    """
    for col in ("model", "prompt", "text"):
        if col not in responses.columns:
            raise ValueError(f"responses need columns model, prompt, text; missing {col!r}")
    key = pl.col("prompt").map_elements(datasets.normalise_prompt, return_dtype=pl.Utf8).alias("_key")
    p = prompts.with_columns(key)
    r = (
        responses.with_columns(key)
        .unique(subset=["model", "_key"], keep="first", maintain_order=True)
        .select("model", "_key", "text")
    )
    joined = p.join(r, on="_key", how="inner")
    is_empty = pl.col("text").is_null() | (pl.col("text").str.strip_chars() == "")
    report = AlignReport()
    n_prompts = p.height
    for model in responses["model"].unique(maintain_order=True).to_list():
        sub = joined.filter(pl.col("model") == model)
        empty = sub.filter(is_empty).height
        report.empty[model] = empty
        report.kept[model] = sub.height - empty
        report.missing[model] = n_prompts - sub.height
    out = joined.filter(~is_empty).select("prompt_set", "prompt_id", "prompt", "model", "text")
    return out, report


@dataclass
class ResponseSet:
    """Prompts and aligned responses of one or more prompt sets, with what alignment dropped."""

    prompts: pl.DataFrame
    aligned: pl.DataFrame
    report: AlignReport
    models: list[str]

    @property
    def prompt_sets(self) -> list[str]:
        """The prompt sets' labels as they appear in ``prompts`` (a file's set is named after the file)."""
        return self.prompts["prompt_set"].unique(maintain_order=True).to_list()


def gather_responses(
    prompt_sets: Sequence[str],
    models: Sequence[str] | None,
    reference: str,
    *,
    live_models: Sequence[Any] = (),
    store: Any = None,
    sample_size: int | None = None,
    seed: int = 0,
) -> ResponseSet:
    """Everything RSE needs from prompts to aligned answers, for notebooks and benchmarks.

    For each prompt set: sample prompts; take published answers of ``models`` + ``reference``
    where the set has them (replay); ask every ``live_models`` config (``ModelConfig``) through
    ``collect`` and ``store``. ``models`` empty/None = every published model of the set(s).
    Raises ``ValueError`` when the reference ends up with no answer.
    """
    for what, names in (("prompt_sets", prompt_sets), ("models", models)):
        if isinstance(names, str):  # "a,b" would otherwise be read letter by letter
            raise ValueError(f"{what} must be a list of names, got the string {names!r}")
    wanted = list(dict.fromkeys([*(models or []), reference])) if models else None
    prompt_frames, aligned_frames = [], []
    report = AlignReport()
    for name in map(datasets.dataset_name, prompt_sets):
        prompts = datasets.prompt_set(name, sample_size, seed)
        parts = []
        if name in datasets.BUILTIN_PROMPT_SETS:
            published = datasets.response_models(name)
            keep = [m for m in (wanted or published) if m in published]
            if keep:  # empty published answers are kept so that alignment counts them
                parts.append(datasets.load_responses(name, keep, keep_empty=True))
        for cfg in live_models:
            parts.append(collect_responses(cfg, prompts, store))
        prompt_frames.append(prompts)
        if not parts:
            continue
        aligned, rep = align_responses(prompts, pl.concat(parts, how="vertical_relaxed"))
        aligned_frames.append(aligned)
        report.merge(rep)
    if not aligned_frames:
        raise ValueError(f"no responses for prompt sets {', '.join(prompt_sets)}: name published models or live models")
    aligned = pl.concat(aligned_frames)
    present = aligned["model"].unique(maintain_order=True).to_list()
    if reference not in present:
        raise ValueError(f"reference {reference!r} has no answers in {', '.join(prompt_sets)}; models with answers: {', '.join(present)}")
    order = [m for m in (wanted or present) if m in present] + [m for m in present if wanted and m not in wanted]
    return ResponseSet(pl.concat(prompt_frames), aligned, report, order)
