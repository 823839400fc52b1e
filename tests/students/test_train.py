"""A micro student trains in seconds, resumes after an interruption and after a real kill, is cached, and is
served through ``collect`` into the store. Slow: loads the base model (once per module) and starts a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import polars as pl
import pytest

from distill_kit.students.recipe import Recipe  # noqa: E402
from tests.helpers.installed import needs  # noqa: E402
from tests.helpers.paths import subprocess_env  # noqa: E402
from distill_kit.students.train import StudentInterrupted, student_key, students_dir, train_student  # noqa: E402

pytestmark = [pytest.mark.slow, needs("peft")]

MICRO = Recipe(top_layers=1, target_modules=("q_proj", "v_proj"), lora_r=4, max_prompt_tokens=16,
               max_answer_tokens=12, batch_size=2, checkpoint_every=1)


def _pairs(n: int) -> pl.DataFrame:
    """Pairs no earlier run trained on (a nonce in every prompt), so the cache never answers for them."""
    nonce = uuid.uuid4().hex[:8]
    return pl.DataFrame({"prompt_id": [f"{nonce}-{i}" for i in range(n)],
                         "prompt": [f"[{nonce}] Name a colour, number {i}." for i in range(n)],
                         "text": [f"Blue is colour number {i}. It is calm." for i in range(n)]})


def _folder(pairs: pl.DataFrame, recipe: Recipe) -> Path:
    from distill_kit.providers.transformers import resolve_base
    from distill_kit.students.pairs import answers_digest

    return students_dir() / student_key(resolve_base(None).label, answers_digest(pairs), recipe)


@pytest.fixture(scope="module")
def micro_student():  # type: ignore[no-untyped-def]
    """One micro student for the module: interrupted after one step, then resumed to the end."""
    pairs = _pairs(4)
    with pytest.raises(StudentInterrupted):
        train_student(pairs, name="micro", teacher="store/micro", recipe=MICRO, progress=False, stop_after=1)
    folder = _folder(pairs, MICRO)
    assert (folder / "checkpoint.pt").is_file() and not (folder / "student.json").exists()
    student = train_student(pairs, name="micro", teacher="store/micro", recipe=MICRO, progress=False)
    yield student, pairs
    shutil.rmtree(folder, ignore_errors=True)


def test_micro_student_trains_resumes_and_is_cached(micro_student) -> None:  # type: ignore[no-untyped-def]
    student, pairs = micro_student
    assert student.steps == 2 and student.resumed_from == 1
    assert student.device in ("cpu", "cuda") and student.dose == 4
    assert (Path(student.adapter) / "adapter_config.json").is_file()
    assert not (Path(student.adapter).parent / "checkpoint.pt").exists()
    started = time.monotonic()
    again = train_student(pairs, name="micro", teacher="store/micro", recipe=MICRO, progress=False)
    assert again.key == student.key and time.monotonic() - started < 5  # from the cache, no training


def test_student_is_served_through_collect_into_the_store(micro_student, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from distill_kit.collect import ChatRequest, collect_sync
    from distill_kit.store import Store

    student, _ = micro_student
    cfg = student.model_config_for(concurrency=2, max_tokens=6)
    reqs = [ChatRequest.user("Name a colour."), ChatRequest.user("Name a number.")]
    with Store(tmp_path / "s.sqlite") as store:
        first = collect_sync(cfg, reqs, store, progress=False)
        assert all(r.ok and r.text for r in first) and not any(r.cached for r in first)
        assert all(r.usage_out > 0 for r in first)
        rows = store.frame(student.name)
        assert rows.height == 2 and set(rows["status"]) == {"ok"} and set(rows["provider"]) == {"transformers"}
        again = collect_sync(cfg, reqs, store, progress=False)
        assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in first]


KILLED_RUN = """
import sys, polars as pl
from distill_kit.students.recipe import Recipe
from distill_kit.students.train import train_student
pairs = pl.read_json(sys.argv[1])
recipe = Recipe.model_validate_json(sys.argv[2])
train_student(pairs, name="killed", teacher="store/killed", recipe=recipe, progress=False)
"""


def test_training_resumes_after_a_real_kill(micro_student, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    recipe = MICRO.model_copy(update={"batch_size": 1})
    pairs = _pairs(16)
    folder = _folder(pairs, recipe)
    pairs.write_json(tmp_path / "pairs.json")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / "pairs.json"), recipe.model_dump_json()],
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (folder / "checkpoint.pt").is_file():
            assert proc.poll() is None, proc.stderr.read().decode()[-500:] if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no clean-up runs
        proc.wait(30)
        assert not (folder / "student.json").exists(), "the run finished before the kill: make it longer"
        student = train_student(pairs, name="killed", teacher="store/killed", recipe=recipe, progress=False)
        assert student.resumed_from >= 1 and student.steps == 16
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


def test_answer_loss_is_the_token_weighted_training_loss(micro_student) -> None:  # type: ignore[no-untyped-def]
    import torch

    from distill_kit.providers.transformers import load_causal_lm
    from distill_kit.students.train import _collate, answer_loss, encode_pair

    student, pairs = micro_student
    model, tokenizer = load_causal_lm(None, student.adapter)
    one = []
    for prompt, text in pairs.select("prompt", "text").iter_rows():
        ids, labels = encode_pair(tokenizer, prompt, text, student.recipe)
        with torch.no_grad():
            loss = float(model(**_collate(torch, [(ids, labels)], tokenizer.eos_token_id)).loss)
        one.append((loss, sum(y != -100 for y in labels[1:])))
    weighted = sum(loss * n for loss, n in one) / sum(n for _, n in one)
    assert answer_loss(student, pairs, batch_size=3) == pytest.approx(weighted, rel=1e-4)
    unrelated = pairs.with_columns(pl.lit("Seven hundred trombones marched in the parade.").alias("text"))
    assert answer_loss(student, unrelated) > answer_loss(student, pairs)  # a fitting answer costs less
