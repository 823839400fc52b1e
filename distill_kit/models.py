"""Which model a name means: a ``configs/models.yaml`` entry (with the run's overlay) or a published model.

Why a module of its own above ``datasets``: ``replay:<dataset>/<model>`` names any published model, and a
replayed identity model carries its maker's fact (so it can be an ICE target), which only the data folder knows.
``config`` reads and validates the files; this module resolves names against them and the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, get_args

from pydantic import ValidationError

from distill_kit import datasets
from distill_kit.config import (
    ConfigError,
    ModelConfig,
    ReplaySource,
    default_models,
    load_models,
)


def replay_model(dataset: str, model: str) -> ModelConfig:
    """A model that answers with its published responses (no API, no GPU)."""
    try:
        source = ReplaySource(dataset=dataset, model=model)
    except ValidationError:
        known = ", ".join(get_args(ReplaySource.model_fields["dataset"].annotation))
        raise ConfigError(f"unknown replay dataset {dataset!r}; known: {known}") from None
    family = datasets.identity_family(model) if dataset == "identity" else None
    identity = datasets.identity_facts().get(family or "") if family else None
    return ModelConfig(name=model, provider="replay", model=model, replay=source,
                       family=family, identity=identity, concurrency=64, max_retries=0)


def get_model(name: str, path: str | Path | None = None) -> ModelConfig:
    """Look a model up by name; `replay:<dataset>/<model>` names any published model."""
    if name.startswith("replay:"):
        dataset, _, model = name[len("replay:"):].partition("/")
        if not model:
            raise ConfigError(f"replay model names look like replay:<dataset>/<model>, got {name!r}")
        return replay_model(dataset, model)
    models = load_models(path) if path else default_models()
    if name not in models:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(models))}")
    return models[name]


def live_configs(names: Sequence[str], max_tokens: int) -> list[ModelConfig]:
    """The configs of the models a step asks live, each answer capped at ``max_tokens``.

    Why one function: notebooks 02 and 04 and the cost estimate must name the same configs, since the cap is part
    of a request's store key (04 reuses 02's answers only when both cap alike). Replayed models are left as they
    are: their answers are published, not generated."""
    configs = [get_model(name) for name in names]
    return [m.with_params(max_tokens=max_tokens) if m.provider != "replay" else m for m in configs]
