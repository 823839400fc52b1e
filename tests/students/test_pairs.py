"""Teacher pairs, the seeded split and the dose: pure, fast."""

from __future__ import annotations

import polars as pl
import pytest

from distill_kit.config import ConfigError
from distill_kit.students.pairs import Teacher, answers_digest, dose_pairs, split_prompts


def _answers(n: int) -> pl.DataFrame:
    return pl.DataFrame({"prompt_id": [f"p{i}" for i in range(n)], "prompt": [f"question {i}" for i in range(n)],
                         "text": [f"answer {i}" for i in range(n)]})


def test_split_is_disjoint_covers_every_prompt_and_ignores_input_order() -> None:
    ids = [f"p{i}" for i in range(400)]
    train, held = split_prompts(ids, 0.5, seed=3)
    assert not set(train) & set(held)
    assert set(train) | set(held) == set(ids)
    assert 150 < len(held) < 250  # about half
    train2, held2 = split_prompts(list(reversed(ids)), 0.5, seed=3)
    assert set(held2) == set(held) and set(train2) == set(train)
    assert set(split_prompts(ids, 0.5, seed=4)[1]) != set(held)  # the seed chooses the split


def test_dose_pairs_train_only_nested_and_seeded() -> None:
    answers = _answers(200)
    _, held = split_prompts(answers["prompt_id"].to_list(), 0.5, seed=0)
    small = dose_pairs(answers, 10, 0.5, seed=0)
    large = dose_pairs(answers, 40, 0.5, seed=0)
    assert not set(large["prompt_id"]) & set(held)
    assert large.head(10).equals(small)  # a larger dose = the smaller dose plus more pairs
    assert dose_pairs(answers.reverse(), 40, 0.5, seed=0).equals(large)  # order of the source does not matter
    assert not dose_pairs(answers, 40, 0.5, seed=1).equals(large)


def test_dose_may_use_every_prompt_but_the_evaluated_ones() -> None:
    answers = _answers(200)
    train, held = split_prompts(answers["prompt_id"].to_list(), 0.5, seed=0)
    evaluated = set(held[:30])
    largest = dose_pairs(answers, 200 - 30, 0.5, seed=0, evaluated=evaluated)
    assert set(largest["prompt_id"]) == set(answers["prompt_id"]) - evaluated  # every other prompt, once
    # the train split comes first, in its own order: the doses it could give are the pairs they were
    assert largest.head(len(train)).equals(dose_pairs(answers, len(train), 0.5, seed=0))
    assert set(largest.head(len(train))["prompt_id"]) == set(train)
    assert dose_pairs(answers.reverse(), 170, 0.5, seed=0, evaluated=evaluated).equals(largest)
    with pytest.raises(ConfigError, match="evaluated prompts"):
        dose_pairs(answers, 171, 0.5, seed=0, evaluated=evaluated)


def test_dose_beyond_the_teacher_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="training pairs"):
        dose_pairs(_answers(10), 50, 0.5, seed=0)
    with pytest.raises(ConfigError, match="at least 1"):
        dose_pairs(_answers(10), 0, 0.5, seed=0)


@pytest.mark.parametrize("spec", ["gpt4", "nowhere/gpt4", "alpaca-eval/", ""])
def test_bad_teacher_names_are_one_line(spec: str) -> None:
    with pytest.raises(ConfigError, match="<source>/<model>"):
        Teacher.parse(spec)


def test_teacher_parse_and_digest() -> None:
    assert str(Teacher.parse("alpaca-eval/gpt4_0613")) == "alpaca-eval/gpt4_0613"
    a = _answers(5)
    assert answers_digest(a) == answers_digest(a.clone())
    assert answers_digest(a) != answers_digest(a.reverse())


def test_identity_teacher_uses_the_plain_question(data_dir: object) -> None:
    from distill_kit.students.pairs import teacher_answers

    pairs = teacher_answers("identity/qwen2.5-14b")
    assert pairs.columns == ["prompt_id", "prompt", "text"]
    assert pairs["prompt"].n_unique() == 50  # 50 identity questions, each under 20 templates
    assert pairs["prompt"].str.len_chars().max() < 200  # no jailbreak template around them
