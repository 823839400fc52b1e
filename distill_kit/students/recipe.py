"""How a student is made (the recipe) and what is recorded about it once made (the student).

Why a record beside the adapter: a student is evidence in a benchmark, so what made it -- base, teacher, dose,
the exact pairs (their digest), the seeded split, the recipe, where it trained and how long -- travels with it.
The cache key hashes everything that changes the weights and nothing that does not (name, progress bar).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from distill_kit.config import GenerationParams, ModelConfig


class Recipe(BaseModel):
    """Training settings. Defaults are sized for a CPU: short sequences, LoRA on the attention projections of
    the top layers only (the backward pass stops there), one pass over the pairs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    target_modules: tuple[str, ...] = Field(("q_proj", "k_proj", "v_proj", "o_proj"),
                                            description="Linear layers that get adapters.")
    top_layers: int = Field(0, ge=0, description="Adapters only on the last N transformer layers (0 = all). Fewer "
                            "layers: the backward pass stops earlier, so training is faster.")
    max_prompt_tokens: int = Field(64, ge=8, description="A longer prompt keeps its first tokens.")
    max_answer_tokens: int = Field(96, ge=8, description="A longer answer keeps its first tokens (no end token).")
    epochs: int = Field(1, ge=1, description="Passes over the pairs.")
    batch_size: int = Field(8, ge=1, description="Pairs per optimiser step.")
    learning_rate: float = Field(3e-3, gt=0, description="AdamW learning rate (constant after a short warm-up); "
                                 "3e-3 is what the recipe rule chose by held-out answer loss, measured with the benchmark's recipe "
                                 "(batch 4, LoRA on the top 6 layers; docs/students.md).")
    warmup_steps: int = Field(2, ge=0, description="Linear warm-up steps.")
    eval_share: float = Field(0.5, gt=0, lt=1, description="Share of prompts held out for evaluation (never "
                              "trained on), chosen by hashing each prompt id with the seed.")
    seed: int = Field(0, description="Seeds the split, the pair order, the adapter's initialisation and dropout.")
    checkpoint_every: int = Field(4, ge=1, description="Optimiser steps between two checkpoints (resume points).")


class Student(BaseModel):
    """A trained student: what made it and where its adapter is. Written last, so its presence means done."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Name in the store, tables and charts.")
    key: str = Field(description="Cache key: sha256 of (base, the pairs' digest, recipe).")
    base: str = Field(description="Base weights as the config names them ('' = the bundled SmolLM2 GGUF).")
    base_label: str = Field(description="The base's weights file or folder that was loaded.")
    teacher: str = Field(description="<source>/<model> of the teacher's answers.")
    dose: int = Field(description="Training pairs seen (per epoch).")
    answers_digest: str = Field(description="sha256 of the training pairs, in order.")
    recipe: Recipe
    train_prompt_ids: list[str] = Field(description="Prompt ids of the training pairs (the split's train side).")
    adapter: str = Field(description="LoRA adapter folder (peft).")
    device: str = Field(description="Where it trained: cpu or cuda.")
    steps: int = Field(description="Optimiser steps.")
    train_tokens: int = Field(description="Tokens in the training sequences (prompt + answer), all epochs.")
    seconds: float = Field(description="Training time of the run that finished it (a resumed run: that run's).")
    final_loss: float = Field(description="Mean answer-token loss over the last epoch.")
    first_loss: float = Field(description="Mean answer-token loss of the first step.")
    resumed_from: int = Field(0, description="Optimiser step the finishing run resumed from (0: trained in one go).")

    def model_config_for(self, concurrency: int = 8, max_tokens: int | None = None) -> ModelConfig:
        """The student as a ``transformers`` model: probe it through ``collect`` like any model."""
        params = GenerationParams(temperature=0.0, max_tokens=max_tokens or self.recipe.max_answer_tokens, seed=0)
        return ModelConfig(name=self.name, provider="transformers", model=f"student-{self.key[:16]}",
                           path=self.base or None, adapter=self.adapter, params=params, concurrency=concurrency,
                           timeout=3600.0, max_retries=0)


def student_key(base_label: str, answers_digest: str, recipe: Recipe) -> str:
    """sha256 of what changes the weights."""
    blob = json.dumps({"base": base_label, "answers": answers_digest, "recipe": recipe.model_dump(mode="json")},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_student(folder: Path) -> Student | None:
    """The record of a finished student in ``folder``, or None (not trained, or killed before the end)."""
    path = folder / "student.json"
    if not path.is_file():
        return None
    return Student.model_validate_json(path.read_text(encoding="utf-8"))
