"""The answers ICE scores: the paper's published jailbreak answers (replay) and live answers of configured
models (probes asked now, plus the GPTFuzzer attempts notebook 02 stored), each with its true identity fact.

Notebook 03 wires these together; everything that shapes a frame lives here, so it is tested without a kernel.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import polars as pl

from distill_kit.ice import fuzz, probes

SOURCES = ("replay", "live", "both")
LIVE_COLUMNS = {"model": pl.String, "family": pl.String, "fact": pl.String, "query": pl.String, "language": pl.String,
                "category": pl.String, "template": pl.String, "response": pl.String, "error": pl.String}


def sources(source: str, live_models: Sequence[str] = ()) -> tuple[bool, bool]:
    """(replay?, live?) for notebook 03's ``source`` (replay, live or both); live needs ``live_models``."""
    if source not in SOURCES:
        raise ValueError(f"source must be replay, live or both, not {source!r}")
    return source in ("replay", "both"), source in ("live", "both") and bool(live_models)


def published_sample(models: Sequence[str] = (), sample_size: int = 0, seed: int = 0) -> pl.DataFrame:
    """The paper's published jailbreak answers of ``models`` (``[]`` = every published model) with their
    GPT-4o-mini labels, ``sample_size`` answers per model drawn with ``seed`` (0 = all): the answers notebook
    03's judge reads, and the estimate prices an LLM judge on."""
    from distill_kit import datasets

    frame = datasets.identity_responses(list(models) or None)
    if sample_size:
        frame = frame.filter(pl.int_range(pl.len()).shuffle(seed).over("model") < sample_size)
    return frame


def published_answers(models: Sequence[str] = (), sample_size: int = 0, seed: int = 0) -> pl.DataFrame:
    """:func:`published_sample` annotated with language, category and template_id (what the scores break down by)."""
    return probes.annotate_queries(published_sample(models, sample_size, seed))


def live_targets(live_models: Sequence[str], max_tokens: int, seed: int = 0) -> list[Any]:
    """The configs notebook 03 asks and whose stored answers it reads: each answer capped at ``max_tokens`` and
    sampled with ``seed`` (both part of the store key, so the estimate must name the same configs)."""
    from distill_kit.models import get_model

    return [get_model(name).with_params(max_tokens=max_tokens, seed=seed) for name in live_models]


def asked_live(target: Any, live_probes: int, store: Any, seed: int = 0) -> pl.DataFrame:
    """``live_probes`` probe x seed-template pairs (0 = none) asked of ``target`` now, through the store, one row
    per answer (columns :data:`LIVE_COLUMNS`; ``response`` None where the call failed)."""
    if not target.identity:
        raise ValueError(f"model {target.name!r} has no identity fact (set identity: in configs/models.yaml)")
    requests = probes.live_requests(live_probes, seed)
    if not requests:
        return pl.DataFrame(schema=LIVE_COLUMNS)
    from distill_kit.collect import collect_sync

    results = collect_sync(target, requests, store)
    return pl.DataFrame([{"model": target.name, "family": target.family or target.name, "fact": target.identity,
                          "query": r.meta["query"], "language": r.meta["language"], "category": r.meta["category"],
                          "template": r.meta["template_id"], "response": r.text, "error": r.error} for r in results],
                        schema=LIVE_COLUMNS)


def collected_live(target: Any, store: Any) -> pl.DataFrame:
    """The identity-probe answers of ``target`` already in the store (what notebook 02 collected), one row per
    probe x template (the latest when asked more than once, e.g. with other settings), laid out like
    :func:`asked_live`. GPTFuzzer attempts are left out: :func:`fuzz.scoring_frame` scores those separately.

    Why: notebook 02 collects and 03 judges, so a run does not pay the model twice for the same questions."""
    rows = store.frame(model=target.name, status="ok")
    if not rows.height or "probe_id" not in rows.columns:
        return pl.DataFrame(schema=LIVE_COLUMNS)
    if "fuzz" in rows.columns:
        rows = rows.filter(pl.col("fuzz").is_null())
    rows = (rows.filter(pl.col("probe_id").is_not_null() & pl.col("template_id").is_not_null())
            .sort("updated_at").unique(["probe_id", "template_id"], keep="last", maintain_order=True))
    return rows.select(
        pl.lit(target.name).alias("model"), pl.lit(target.family or target.name).alias("family"),
        pl.lit(target.identity, pl.String).alias("fact"), "query", "language", "category",
        pl.col("template_id").alias("template"), pl.col("text").alias("response"),
        pl.lit(None, pl.String).alias("error")).cast(LIVE_COLUMNS)  # type: ignore[arg-type]


class LiveAnswers(NamedTuple):
    """Live answers to judge (answered ones only) and how many live calls failed."""

    frame: pl.DataFrame
    errors: int


def live_answers(targets: Sequence[Any], live_probes: int, store: Any, seed: int = 0) -> LiveAnswers:
    """Each target's live answers -- those the store already holds (:func:`collected_live`, notebook 02's) and
    ``live_probes`` pairs asked now (:func:`asked_live`; a pair asked both ways counts once) -- and, as a
    separate model ``<target> (GPTFuzzer)``, its stored GPTFuzzer attempts (re-judged by the caller: ICE as the
    paper runs it, over mutated templates)."""
    asked = [asked_live(t, live_probes, store, seed) for t in targets]
    collected = [collected_live(t, store) for t in targets]
    fuzzed = [fuzz.scoring_frame(store, t) for t in targets]
    # a pair that failed now but has a stored answer (asked before with other settings) keeps that answer
    plain = (pl.concat([pl.DataFrame(schema=LIVE_COLUMNS), *asked, *collected], how="vertical_relaxed")
             .filter(pl.col("response").is_not_null())
             .unique(["model", "query", "template"], keep="first", maintain_order=True))
    frame = pl.concat([plain, *fuzzed], how="vertical_relaxed")
    errors = sum(int(a["error"].is_not_null().sum()) for a in asked)
    return LiveAnswers(frame.filter(pl.col("response").is_not_null()), errors)
