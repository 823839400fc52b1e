"""What a student learns from: a teacher's (prompt, answer) pairs, the seeded train/evaluation split of prompts,
and the dose (how many pairs it sees).

A teacher is any answer source distill-kit reads, named ``<source>/<model>``:

- ``alpaca-eval/<model>``, ``arena-hard/<model>``: published answers (the data folder);
- ``identity/<model>``: the paper's jailbreak answers; the prompt is the plain identity question (``query``),
  not the GPTFuzzer template around it (up to ~1,000 tokens: too long to train on a CPU, and students are
  probed with the plain questions);
- ``store/<model>``: answers in a response store -- a live API model a user collected, or the base model's
  own answers (the no-teacher control).

Why the split hashes each prompt id with the seed instead of shuffling a list: a prompt falls on the same side
for every teacher and every dose, so all students of one benchmark are evaluated on the same held-out prompts,
and a larger dose is the smaller dose plus more pairs (nested doses: a dose-response curve, not a resample).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import polars as pl

from distill_kit import datasets
from distill_kit.config import ConfigError

TEACHER_SOURCES: tuple[str, ...] = ("alpaca-eval", "arena-hard", "identity", "store")


@dataclass(frozen=True)
class Teacher:
    """An answer source: ``source`` (one of :data:`TEACHER_SOURCES`) and the model's name in it."""

    source: str
    model: str

    @classmethod
    def parse(cls, spec: str) -> "Teacher":
        """``"alpaca-eval/gpt4_0613"`` -> Teacher; one ConfigError line for anything else."""
        source, _, model = spec.partition("/")
        source = datasets.dataset_name(source)
        if source not in TEACHER_SOURCES or not model:
            raise ConfigError(f"a teacher looks like <source>/<model> with source one of {', '.join(TEACHER_SOURCES)};"
                              f" got {spec!r}")
        return cls(source, model)

    def __str__(self) -> str:
        return f"{self.source}/{self.model}"


def teacher_answers(teacher: Teacher | str, store_path: str | None = None) -> pl.DataFrame:
    """The teacher's non-empty answers: ``prompt_id, prompt, text`` (identity teachers: several per prompt)."""
    t = Teacher.parse(teacher) if isinstance(teacher, str) else teacher
    if t.source == "identity":
        frame = datasets.identity_responses([t.model]).select(pl.col("query").alias("prompt"),
                                                              pl.col("response").alias("text"))
        frame = frame.filter(pl.col("text").str.strip_chars().str.len_chars() > 0).unique(maintain_order=True)
        ids = frame["prompt"].map_elements(datasets.prompt_key, return_dtype=pl.Utf8).alias("prompt_id")
        return frame.with_columns(ids).select("prompt_id", "prompt", "text")
    frame = datasets.load_responses(t.source, [t.model], store_path)
    return frame.select("prompt_id", "prompt", "text")


def answers_digest(pairs: pl.DataFrame) -> str:
    """sha256 of the pairs in order: part of a student's cache key (the same pairs -> the same student)."""
    h = hashlib.sha256()
    for prompt, text in pairs.select("prompt", "text").iter_rows():
        h.update(prompt.encode())
        h.update(b"\x00")
        h.update(text.encode())
        h.update(b"\x01")
    return h.hexdigest()


def _unit(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by (seed, key)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64


def in_eval_split(prompt_id: str, eval_share: float, seed: int) -> bool:
    """Whether a prompt is held out for evaluation (never trained on) under split ``seed``."""
    return _unit(seed, f"split:{prompt_id}") < eval_share


def split_prompts(prompt_ids: list[str], eval_share: float, seed: int) -> tuple[list[str], list[str]]:
    """``(train, eval)`` prompt ids, disjoint, each in the order given (duplicates kept once)."""
    if not 0 < eval_share < 1:
        raise ConfigError(f"eval_share must be between 0 and 1, got {eval_share}")
    unique = list(dict.fromkeys(prompt_ids))
    held = [p for p in unique if in_eval_split(p, eval_share, seed)]
    held_set = set(held)
    return [p for p in unique if p not in held_set], held


def _held_mask(answers: pl.DataFrame, eval_share: float, seed: int) -> pl.Series:
    """Per row: whether its prompt is on the held-out side of the split."""
    return answers["prompt_id"].map_elements(lambda p: in_eval_split(p, eval_share, seed), return_dtype=pl.Boolean)


def _seeded_order(pairs: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The pairs in an order fixed by the seed and each pair alone (not by the input order)."""
    order = [_unit(seed, f"order:{pid}:{text}") for pid, text in pairs.select("prompt_id", "text").iter_rows()]
    return pairs.with_columns(pl.Series("_order", order, dtype=pl.Float64)).sort("_order").drop("_order")


def dose_pairs(answers: pl.DataFrame, dose: int, eval_share: float, seed: int,
               evaluated: Collection[str] | None = None) -> pl.DataFrame:
    """The first ``dose`` training pairs, in an order fixed by the seed, so the pairs of a smaller dose are the
    first pairs of a larger one. Raises when the teacher has fewer pairs.

    ``evaluated`` None: train-split prompts only (the whole held-out side stays unseen). ``evaluated`` given (the
    prompt ids a benchmark actually evaluates on): after every train-split pair come the held-out side's pairs
    whose prompts are not evaluated, so the largest dose uses every prompt but the evaluated ones. Why this order
    rather than a new split: only the evaluated prompts must stay unseen, and every dose up to the train split's
    size keeps exactly the pairs (and so the cached student) it had without ``evaluated``."""
    if dose < 1:
        raise ConfigError(f"dose must be at least 1 pair, got {dose}")
    held = _held_mask(answers, eval_share, seed)
    train = _seeded_order(answers.filter(~held), seed)
    if evaluated is not None:
        spare = answers.filter(held & ~answers["prompt_id"].is_in(list(evaluated)))
        train = pl.concat([train, _seeded_order(spare, seed)])
    if train.height < dose:
        unseen = "the evaluated prompts" if evaluated is not None else f"{eval_share:.0%} of prompts"
        raise ConfigError(f"the teacher has {train.height} training pairs (after holding out {unseen} for "
                          f"evaluation); dose {dose} asks for more")
    return train.head(dose)


def held_out_prompts(answers: pl.DataFrame, models: list[str], n: int, eval_share: float, seed: int) -> pl.DataFrame:
    """``prompt_id, prompt``: up to ``n`` prompts of the evaluation side of the split that every one of ``models``
    answered in ``answers`` (the response schema), in prompt-id order. Students of those teachers never trained
    on them, so every student is compared with every teacher on the same unseen prompts."""
    answered = answers.filter(pl.col("model").is_in(models)).group_by("prompt_id").agg(
        pl.col("model").n_unique().alias("k"), pl.first("prompt"))
    held = answered.filter((pl.col("k") == len(set(models))) & _held_mask(answered, eval_share, seed))
    return held.sort("prompt_id").head(n).select("prompt_id", "prompt")
