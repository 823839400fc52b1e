"""Train a student: LoRA on a base causal LM, loss on the teacher's answer tokens only, the base's own chat
template, fixed seeds, a progress bar, a checkpoint to resume from after a kill, cached by what made it.

Why a plain loop and not ``transformers.Trainer``: the loop is ~40 lines, resumes from one atomic file (adapter
weights, optimiser, step) and needs neither ``accelerate``'s launcher nor a ``datasets`` table. The pair order is
fixed by the seed, so a resumed run continues with exactly the batches the killed one would have seen next.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import polars as pl

from distill_kit.config import ConfigError
from distill_kit.paths import cache_dir
from distill_kit.providers.transformers import (
    chat_prompt,
    dequantized_folder,
    device_name,
    require,
    resolve_base,
    torch_module,
)
from distill_kit.students.pairs import Teacher, answers_digest, dose_pairs, teacher_answers
from distill_kit.students.recipe import Recipe, Student, load_student, student_key

IGNORE = -100  # label of a token that carries no loss (prompt, padding)


def students_dir() -> Path:
    """Where students live: ``<cache>/students/<key>/`` (never in the repository)."""
    return cache_dir() / "students"


def encode_pair(tokenizer: Any, prompt: str, answer: str, recipe: Recipe) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one pair in the base's chat template; labels are IGNORE on the prompt.

    The prompt's text is clipped to ``max_prompt_tokens`` before templating (the template's own tokens stay
    whole); the answer keeps its first ``max_answer_tokens`` tokens, and gets the end-of-turn token only when
    it fit whole (a clipped answer must not teach the student to stop there)."""
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if len(p_ids) > recipe.max_prompt_tokens:
        prompt = tokenizer.decode(p_ids[: recipe.max_prompt_tokens])
    head = tokenizer(chat_prompt(tokenizer, [{"role": "user", "content": prompt}]),
                     add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer.strip(), add_special_tokens=False)["input_ids"]
    if len(a_ids) > recipe.max_answer_tokens:
        a_ids = a_ids[: recipe.max_answer_tokens]
    elif tokenizer.eos_token_id is not None:
        a_ids = a_ids + [tokenizer.eos_token_id]
    return head + a_ids, [IGNORE] * len(head) + a_ids


def _batches(n: int, recipe: Recipe) -> list[list[int]]:
    """Indices per optimiser step over all epochs; each epoch's order fixed by (seed, epoch)."""
    out: list[list[int]] = []
    for epoch in range(recipe.epochs):
        order = list(range(n))
        random.Random(recipe.seed * 1000 + epoch).shuffle(order)
        out += [order[i: i + recipe.batch_size] for i in range(0, n, recipe.batch_size)]
    return out


def _collate(torch: Any, encoded: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (x, y) in enumerate(encoded):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _lora_model(model: Any, recipe: Recipe) -> Any:
    peft = require("peft")
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layers = list(range(n_layers - recipe.top_layers, n_layers)) if recipe.top_layers and n_layers else None
    cfg = peft.LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=0.0, bias="none",
                          target_modules=list(recipe.target_modules), layers_to_transform=layers,
                          task_type="CAUSAL_LM")
    return peft.get_peft_model(model, cfg)


def _save_checkpoint(torch: Any, path: Path, model: Any, optimizer: Any, step: int, losses: list[float]) -> None:
    peft = require("peft")
    state = {"adapter": peft.get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(), "step": step,
             "losses": losses}
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a kill mid-save leaves the previous checkpoint


def train_student(pairs: pl.DataFrame, *, name: str, teacher: str, base: str = "", recipe: Recipe | None = None,
                  progress: bool = True, device: str | None = None,
                  stop_after: int | None = None) -> Student:
    """Train (or load from the cache) a student on ``pairs`` (``prompt, text``, in training order).

    ``stop_after``: stop after that many optimiser steps of this run, leaving the checkpoint (tests use it to
    simulate an interruption without a kill; a resumed run continues from there)."""
    recipe = recipe or Recipe()
    torch = torch_module()
    transformers = require("transformers")
    weights = resolve_base(base or None)
    digest = answers_digest(pairs)
    key = student_key(weights.label, digest, recipe)
    folder = students_dir() / key
    done = load_student(folder)
    if done is not None:
        return done.model_copy(update={"name": name}) if done.name != name else done
    folder.mkdir(parents=True, exist_ok=True)
    device = device or device_name()
    torch.manual_seed(recipe.seed)
    hf_folder = dequantized_folder(weights)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_folder))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = transformers.AutoModelForCausalLM.from_pretrained(str(hf_folder))
    model = _lora_model(model, recipe).to(device)
    model.train()
    encoded = [encode_pair(tokenizer, p, a, recipe) for p, a in pairs.select("prompt", "text").iter_rows()]
    batches = _batches(len(encoded), recipe)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.0)
    ckpt = folder / "checkpoint.pt"
    step, losses = 0, []
    if ckpt.is_file():  # a killed or interrupted run left this: continue where it stopped
        state = torch.load(ckpt, map_location=device, weights_only=False)
        require("peft").set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["losses"])
    from tqdm.auto import tqdm

    started, ran, resumed_from = time.monotonic(), 0, step
    bar = tqdm(total=len(batches), initial=step, desc=f"train {name}", disable=not progress, leave=False)
    while step < len(batches):
        if stop_after is not None and ran >= stop_after:
            bar.close()
            raise StudentInterrupted(f"stopped after {ran} step(s); run again to resume from step {step}")
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate * min(1.0, (step + 1) / (recipe.warmup_steps + 1))
        batch = {k: v.to(device) for k, v in _collate(torch, [encoded[i] for i in batches[step]], pad_id).items()}
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        step, ran = step + 1, ran + 1
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if step % recipe.checkpoint_every == 0 or step == len(batches):
            _save_checkpoint(torch, ckpt, model, optimizer, step, losses)
    bar.close()
    adapter = folder / "adapter"
    model.save_pretrained(str(adapter))
    per_epoch = math.ceil(len(encoded) / recipe.batch_size)
    student = Student(name=name, key=key, base=base, base_label=weights.label, teacher=teacher, dose=len(encoded),
                      answers_digest=digest, recipe=recipe, train_prompt_ids=_prompt_ids(pairs),
                      adapter=str(adapter), device=device, steps=len(batches),
                      train_tokens=sum(len(ids) for ids, _ in encoded) * recipe.epochs,
                      seconds=round(time.monotonic() - started, 1),
                      final_loss=sum(losses[-per_epoch:]) / len(losses[-per_epoch:]), first_loss=losses[0],
                      resumed_from=resumed_from)
    tmp = folder / "student.json.tmp"
    tmp.write_text(student.model_dump_json(indent=1), encoding="utf-8")
    tmp.replace(folder / "student.json")
    (folder / "losses.json").write_text(json.dumps(losses), encoding="utf-8")
    ckpt.unlink(missing_ok=True)
    return student


def answer_loss(student: Student, pairs: pl.DataFrame, batch_size: int = 8) -> float:
    """The student's mean answer-token loss on ``pairs`` (``prompt, text``), token-weighted, encoded as it was
    trained (its recipe's clipping and chat template). On pairs it did not train on, this is how well it predicts
    its teacher: the one measure a recipe may be chosen by (never a test's result on the evaluated prompts)."""
    from distill_kit.providers.transformers import load_causal_lm

    torch = torch_module()
    model, tokenizer = load_causal_lm(student.base or None, student.adapter)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [encode_pair(tokenizer, p, a, student.recipe) for p, a in pairs.select("prompt", "text").iter_rows()]
    if not encoded:
        raise ConfigError("answer_loss needs at least one pair")
    total, tokens = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            batch = {k: v.to(model.device) for k, v in _collate(torch, encoded[i: i + batch_size], pad_id).items()}
            n = int((batch["labels"][:, 1:] != IGNORE).sum())  # the loss is on shifted labels
            total += float(model(**batch).loss) * n
            tokens += n
    return total / tokens


def _prompt_ids(pairs: pl.DataFrame) -> list[str]:
    if "prompt_id" in pairs.columns:
        return list(dict.fromkeys(pairs["prompt_id"].to_list()))
    from distill_kit.datasets import prompt_key

    return list(dict.fromkeys(prompt_key(p) for p in pairs["prompt"].to_list()))


class StudentInterrupted(RuntimeError):
    """Training stopped before the end on purpose (``stop_after``); the checkpoint holds the progress."""


def make_student(teacher: str, dose: int, *, base: str = "", recipe: Recipe | None = None, name: str | None = None,
                 store_path: str | None = None, progress: bool = True, device: str | None = None,
                 evaluated: Collection[str] | None = None) -> Student:
    """A student of ``teacher`` (``<source>/<model>``) after ``dose`` training pairs, trained or from the cache.
    ``evaluated``: the prompt ids it will be evaluated on; given, a dose may go beyond the train split into the
    held-out prompts not evaluated (:func:`~distill_kit.students.pairs.dose_pairs`)."""
    recipe = recipe or Recipe()
    t = Teacher.parse(teacher)
    if base and not Path(base).expanduser().exists():
        raise ConfigError(f"base model not found: {base}")
    pairs = dose_pairs(teacher_answers(t, store_path), dose, recipe.eval_share, recipe.seed, evaluated)
    return train_student(pairs, name=name or default_name(t, dose), teacher=str(t), base=base, recipe=recipe,
                         progress=progress, device=device)


def default_name(teacher: Teacher, dose: int) -> str:
    """``student-<teacher model>-<dose>``."""
    return f"student-{teacher.model}-{dose}"
